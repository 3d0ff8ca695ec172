//! `experiment.reproducible`: which CPU kernels libtorch may choose.
//!
//! libtorch, MKL and oneDNN pick their kernels by the CPU they find, so the
//! same manifest and seed give other last bits on an AVX-512 Xeon than on an
//! AVX2-only node. Portable mode pins every such choice to AVX2 through the
//! environment variables the libraries read when they first run, which this
//! process sets before it touches libtorch (and its workers and Slurm tasks
//! inherit, and set again from the manifest they read).

use crate::choice::Reproducible;
use crate::manifest::Variant;

/// What portable mode sets, before libtorch starts: ATen's vectorized
/// kernels, MKL's code path (conditional numerical reproducibility) and
/// instruction set, and oneDNN's ISA (both of its names).
pub const PORTABLE_ENVIRONMENT: [(&str, &str); 5] = [
    ("ATEN_CPU_CAPABILITY", "avx2"),
    ("MKL_CBWR", "AVX2"),
    ("MKL_ENABLE_INSTRUCTIONS", "AVX2"),
    ("ONEDNN_MAX_CPU_ISA", "AVX2"),
    ("DNNL_MAX_CPU_ISA", "AVX2"),
];

/// Why the manifest's `reproducible` cannot be applied to this process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// Two variants ask for different modes; one process has one.
    #[error("variants `{0}` and `{1}` set different experiment.reproducible; one run has one kernel choice")]
    Mixed(String, String),
    /// Portable mode needs AVX2, which this CPU lacks.
    #[error("`reproducible = \"portable\"` pins kernels to AVX2, which this CPU ({0}) does not have")]
    NoAvx2(String),
}

/// The mode every variant of a manifest asks for (`native` for none).
pub fn mode_of(variants: &[Variant]) -> Result<Reproducible, KernelError> {
    let Some(first) = variants.first() else { return Ok(Reproducible::Native) };
    let mode = first.settings.experiment.reproducible;
    match variants.iter().find(|v| v.settings.experiment.reproducible != mode) {
        Some(other) => Err(KernelError::Mixed(first.name.clone(), other.name.clone())),
        None => Ok(mode),
    }
}

/// Pins this process's kernel choices for `mode`; call it before libtorch
/// runs anything. Native mode leaves the environment as it is.
pub fn pin(mode: Reproducible) -> Result<(), KernelError> {
    if mode == Reproducible::Native {
        return Ok(());
    }
    let cpu = crate::figures::cpu();
    if !has_avx2() {
        return Err(KernelError::NoAvx2(cpu));
    }
    for (key, value) in PORTABLE_ENVIRONMENT {
        // Edition 2021: set before libtorch, MKL or oneDNN read it; the
        // process's other threads (the Ctrl-C handler) read no environment.
        std::env::set_var(key, value);
    }
    log::debug!("kernels pinned to AVX2 on {cpu}");
    Ok(())
}

/// Whether this CPU has AVX2.
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_mode_leaves_the_environment_alone() {
        std::env::remove_var("DNNL_MAX_CPU_ISA");
        pin(Reproducible::Native).unwrap();
        assert!(std::env::var_os("DNNL_MAX_CPU_ISA").is_none());
    }
}
