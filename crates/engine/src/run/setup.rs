//! What every unit sets up first: the device, libtorch's threads and seed,
//! the seeds of each role, progress bars, and the memory peak.

use std::sync::OnceLock;

#[cfg(feature = "torch")]
use crate::error::{bail, Result};
#[cfg(feature = "torch")]
use tch::Device;
use tessera_sdk::SeedRng;

use super::RunOptions;
#[cfg(feature = "torch")]
use crate::choice::DeviceChoice;
use crate::manifest::{ExperimentKind, Settings};
pub use tessera_util::process::peak_rss_mb;

/// This process's share of the cores, when it shares them with other
/// workers (the `processes` executor's `cores / jobs`, a Slurm task's CPUs):
/// the libtorch threads of units whose `experiment.threads` is 0. A unit
/// that sets `experiment.threads` gets exactly that many, whatever runs it,
/// since libtorch's results can change in their last bits with the thread
/// count.
static THREAD_SHARE: OnceLock<usize> = OnceLock::new();

/// Sets this process's share of the cores; once per process.
pub fn set_thread_share(threads: usize) {
    let _ = THREAD_SHARE.set(threads.max(1));
}

/// The GPUs libtorch sees (none in a build without libtorch).
pub fn gpu_count() -> usize {
    #[cfg(feature = "torch")]
    return tch::Cuda::device_count().max(0) as usize;
    #[cfg(not(feature = "torch"))]
    0
}

/// How results.json names the device a variant runs on: graph experiments
/// run on the CPU, the others where `experiment.device` resolves (none if it
/// does not).
pub fn variant_device(settings: &Settings) -> Option<String> {
    match settings.experiment.kind {
        ExperimentKind::Graph => Some("cpu".into()),
        #[cfg(feature = "torch")]
        _ => resolve_device(settings.experiment.device).ok().map(device_name),
        #[cfg(not(feature = "torch"))]
        _ => None,
    }
}

/// The libtorch device `choice` names on this machine.
#[cfg(feature = "torch")]
pub fn resolve_device(choice: DeviceChoice) -> Result<Device> {
    let gpus = gpu_count();
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda if gpus > 0 => Ok(Device::Cuda(0)),
        DeviceChoice::CudaIndex(n) if n < gpus => Ok(Device::Cuda(n)),
        other => bail!("experiment.device = \"{other}\", and libtorch sees {gpus} GPU(s); use \"cpu\" or \"auto\""),
    }
}

/// How results.json names a device.
#[cfg(feature = "torch")]
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The device of `[experiment]`, with libtorch's threads and global seed set
/// (anything that still draws from its global generator: dropout, say).
#[cfg(feature = "torch")]
pub(super) fn set_up_libtorch(experiment: &crate::manifest::ExperimentConfig) -> Result<Device> {
    let device = resolve_device(experiment.device)?;
    let threads = match (experiment.threads, THREAD_SHARE.get().copied()) {
        (0, share) => share.unwrap_or(0),
        (n, _) => n,
    };
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
    tch::manual_seed(experiment.seed as i64);
    Ok(device)
}

/// A seed for role `role` of a variant with seed `seed`.
pub(super) fn role_seed(seed: u64, role: &str) -> u64 {
    let hash = role.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    SeedRng::derive(seed, hash).next_u64()
}

/// A progress bar under the run's bars, if it shows any.
pub(super) fn progress_bar(options: &RunOptions, len: u64, message: String) -> Option<indicatif::ProgressBar> {
    let multi = options.progress.as_ref()?;
    let bar = multi.add(indicatif::ProgressBar::new(len));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:<28} [{bar:20}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message);
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "torch")]
    fn devices_parse() {
        assert_eq!(resolve_device(DeviceChoice::Cpu).unwrap(), Device::Cpu);
        assert_eq!(resolve_device(DeviceChoice::Auto).unwrap(), Device::cuda_if_available());
        assert!(resolve_device(DeviceChoice::CudaIndex(1000)).is_err());
    }

    #[test]
    fn role_seeds_differ_by_role_and_repeat() {
        assert_eq!(role_seed(1, "model"), role_seed(1, "model"));
        assert_ne!(role_seed(1, "model"), role_seed(1, "sampler"));
    }
}
