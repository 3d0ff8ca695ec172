//! Stopping on a signal: SIGINT (Ctrl-C), SIGTERM and SIGUSR1 (what Slurm
//! sends before a time limit) set the run's cancel flag; each `train` unit
//! then saves its state at its next step boundary and stops, and the
//! command exits with [`STOPPED`]. A second Ctrl-C kills at once.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};

/// The exit status of a run stopped on a signal with its units' states
/// saved: `tessera resume` continues it (sysexits' `EX_TEMPFAIL`).
pub(crate) const STOPPED: u8 = 75;

/// The flag the handler sets; one per process.
static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The first stopping signal received (0: none yet).
static FIRST: AtomicI32 = AtomicI32::new(0);

/// The run's cancel flag, which SIGINT, SIGTERM and SIGUSR1 set.
///
/// A second Ctrl-C ends the process with `_exit`: no exit handlers, no C++
/// static destructors run under threads still inside libtorch (which is how
/// `exit` crashed). What is already computed is on disk by then: each unit's
/// `result.json` and its newest saved state, and `results.json` of the
/// variants finished so far, are written (atomically) as they finish.
pub(crate) fn stop_flag() -> Arc<AtomicBool> {
    let flag = FLAG.get_or_init(|| Arc::new(AtomicBool::new(false))).clone();
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1] {
        // SAFETY: installs a handler that only touches atomics and calls
        // `write` and `_exit`, both async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
    flag
}

/// Whether a signal asked this process to stop.
pub(crate) fn stop_asked() -> bool {
    FLAG.get().is_some_and(|flag| flag.load(Ordering::SeqCst))
}

/// The first signal that asked this process to stop, if any.
pub(crate) fn first_signal() -> Option<libc::c_int> {
    Some(FIRST.load(Ordering::SeqCst)).filter(|&s| s != 0)
}

/// The exit code of a run that did not finish every variant: [`STOPPED`]
/// when a signal stopped it (said on stderr with what to do), else 1.
pub(crate) fn unfinished(dir: Option<&std::path::Path>) -> ExitCode {
    if !stop_asked() {
        return ExitCode::from(1);
    }
    match dir {
        Some(dir) => {
            eprintln!(
                "stopped, resumable: `tessera resume {}` runs the units not done (train units from their saved state)",
                dir.display()
            )
        }
        None => eprintln!("stopped, resumable: `tessera resume` runs the units not done"),
    }
    ExitCode::from(STOPPED)
}

extern "C" fn on_signal(signal: libc::c_int) {
    let Some(flag) = FLAG.get() else { return };
    let _ = FIRST.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    let again = flag.swap(true, Ordering::SeqCst);
    let said: &[u8] = match (again, signal == libc::SIGINT) {
        (true, true) => b"killed; the results finished so far and the saved states are in the run folder (`tessera resume` continues)\n",
        (true, false) => return,
        (false, _) => b"stopping at the next step: each unit saves its state (Ctrl-C again to kill)\n",
    };
    // SAFETY: a write of a static buffer to stderr's descriptor (no lock
    // another thread may hold), then, for a second Ctrl-C, `_exit`.
    unsafe {
        libc::write(2, said.as_ptr().cast(), said.len());
        if again {
            libc::_exit(130)
        }
    }
}
