//! The host's logger: records go to stderr (filtered by -q/-v, drawn around
//! the progress bars) and, once a run folder exists, all of them at debug
//! level to its `run.log`. Plugins' records arrive here through the SDK's
//! forwarding logger, with the plugin's own target.

use std::fs::File;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use log::{LevelFilter, Log, Metadata, Record};

struct HostLogger {
    stderr_level: LevelFilter,
    file: Mutex<Option<File>>,
    progress: indicatif::MultiProgress,
}

static LOGGER: OnceLock<HostLogger> = OnceLock::new();

impl Log for HostLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.stderr_level || metadata.level() <= LevelFilter::Debug
    }

    fn log(&self, record: &Record) {
        let line = format!("[{:<5} {}] {}", record.level(), record.target(), record.args());
        if let Ok(mut file) = self.file.lock() {
            if let Some(f) = file.as_mut() {
                if record.level() <= LevelFilter::Debug {
                    let _ = writeln!(f, "{} {line}", chrono::Local::now().format("%H:%M:%S%.3f"));
                }
            }
        }
        if record.level() <= self.stderr_level {
            self.progress.suspend(|| eprintln!("{line}"));
        }
    }

    fn flush(&self) {
        if let Ok(mut file) = self.file.lock() {
            if let Some(f) = file.as_mut() {
                let _ = f.flush();
            }
        }
    }
}

/// Installs the logger: `verbosity` -1 = errors only, 0 = info, 1 = debug,
/// 2 = trace. Returns the progress-bar container that log lines respect.
pub fn init(verbosity: i8) -> indicatif::MultiProgress {
    let stderr_level = match verbosity {
        i8::MIN..=-1 => LevelFilter::Error,
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let logger = LOGGER.get_or_init(|| HostLogger {
        stderr_level,
        file: Mutex::new(None),
        progress: indicatif::MultiProgress::new(),
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(stderr_level.max(LevelFilter::Debug));
    }
    logger.progress.clone()
}

/// Sends every record from now on to `file` as well (opened for appending,
/// through [`crate::confined::Confined::append`]: a run's collect and resume
/// add to its `run.log`).
pub fn set_log_file(file: File) {
    if let Some(logger) = LOGGER.get() {
        if let Ok(mut slot) = logger.file.lock() {
            *slot = Some(file);
        }
    }
}
