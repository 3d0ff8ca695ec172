//! The host services a call hands a plugin: its seed, progress reports and
//! cancellation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use abi_stable::std_types::RStr;
use tessera_sdk::ffi::HostServices;

/// What the host lends a plugin during one call: the call's seed, a progress
/// sink and the run's cancellation flag.
pub struct CallContext {
    /// The seed handed to the plugin.
    pub seed: u64,
    /// Set when the user asks to stop.
    pub cancel: Arc<AtomicBool>,
    /// Where progress goes, if anywhere.
    pub progress: Option<indicatif::ProgressBar>,
}

extern "C" fn report_progress(context: *const (), done: u64, total: u64, message: RStr<'_>) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: `context` is the `CallContext` that `CallContext::services`
        // borrowed for the length of the call in progress.
        let ctx = unsafe { &*(context as *const CallContext) };
        if let Some(bar) = &ctx.progress {
            bar.set_length(total);
            bar.set_position(done);
            if !message.is_empty() {
                bar.set_message(message.to_string());
            }
        }
    });
}

extern "C" fn is_cancelled(context: *const ()) -> bool {
    // SAFETY: as in `report_progress`.
    let ctx = unsafe { &*(context as *const CallContext) };
    ctx.cancel.load(Ordering::Relaxed)
}

impl CallContext {
    /// A context with `seed` and no progress sink.
    pub fn new(seed: u64, cancel: Arc<AtomicBool>) -> Self {
        CallContext { seed, cancel, progress: None }
    }

    /// The raw services for one call; valid while `self` is borrowed.
    pub fn services(&self) -> HostServices {
        HostServices {
            context: self as *const CallContext as *const (),
            seed: self.seed,
            report_progress,
            is_cancelled,
        }
    }
}
