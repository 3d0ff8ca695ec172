//! Log forwarding: each plugin library has its own copy of the `log` crate's
//! global logger, so at load the host hands over a sink and the plugin installs
//! a logger that forwards every record to it, target and all.

use abi_stable::std_types::RStr;

use crate::abi::HostLogger;

struct ForwardingLogger {
    sink: HostLogger,
}

fn level_number(level: log::Level) -> u8 {
    level as u8
}

/// The `log` filter for a host level number (0 = off .. 5 = trace).
pub fn level_filter(number: u8) -> log::LevelFilter {
    match number {
        0 => log::LevelFilter::Off,
        1 => log::LevelFilter::Error,
        2 => log::LevelFilter::Warn,
        3 => log::LevelFilter::Info,
        4 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}

/// The `log` level for a level number (1 = error .. 5 = trace).
pub fn level_from_number(number: u8) -> log::Level {
    match number {
        0 | 1 => log::Level::Error,
        2 => log::Level::Warn,
        3 => log::Level::Info,
        4 => log::Level::Debug,
        _ => log::Level::Trace,
    }
}

impl log::Log for ForwardingLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        level_number(metadata.level()) <= self.sink.max_level
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let message = record.args().to_string();
            (self.sink.log)(level_number(record.level()), RStr::from(record.target()), RStr::from(message.as_str()));
        }
    }

    fn flush(&self) {}
}

/// Installs the host's sink as this library's logger (once; later calls only
/// update the level).
pub fn install(sink: HostLogger) {
    let _ = log::set_boxed_logger(Box::new(ForwardingLogger { sink }));
    log::set_max_level(level_filter(sink.max_level));
}
