//! Facts about this process.

/// This process's peak resident memory (VmHWM) in MB; NaN where
/// `/proc/self/status` cannot be read.
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Freed memory up to this many bytes stays with the process rather than
/// going back to the kernel: a batched model's activations (megabytes a
/// step) would otherwise be mapped, zeroed by page faults and unmapped at
/// every step, which took 45% of a 32-CNN batch's time.
const KEPT_FREED_BYTES: i32 = 512 << 20;

/// Tells glibc's allocator to serve allocations up to 256 MB from its heap
/// and to keep up to [`KEPT_FREED_BYTES`] of freed memory for reuse. Call
/// once, first thing; elsewhere than glibc it does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's thresholds.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, KEPT_FREED_BYTES / 2);
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEPT_FREED_BYTES);
    }
}
