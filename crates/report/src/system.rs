//! The machine and the build a run's figures come from: results.json's
//! `system`. Trained figures are bit-identical on one kind of CPU with one
//! libtorch, so a researcher reading them needs both, and the commit.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// What the `tessera` binary was built from (set once by the binary).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    /// The git commit of the checkout (`-dirty` with uncommitted changes),
    /// or `unknown` outside a git checkout.
    pub commit: String,
    /// The libtorch it links (`2.13.0+cu130`), or `none` for `tessera-graph`.
    pub libtorch: String,
}

static BUILD: OnceLock<Build> = OnceLock::new();

/// Records the binary's build; the first call wins.
pub fn set_build(build: Build) {
    let _ = BUILD.set(build);
}

/// The build [`set_build`] recorded (`unknown` for a library user's).
pub fn build() -> Build {
    BUILD.get().cloned().unwrap_or_else(|| Build { commit: "unknown".into(), libtorch: "unknown".into() })
}

/// The machine and build of a run, as results.json records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemInfo {
    /// The CPU's model name and the vector extensions libtorch's kernels use.
    pub cpu: String,
    /// Cores this process may use (its affinity mask).
    pub cores: usize,
    /// libtorch threads per unit (the manifest's `experiment.threads`; 0: libtorch's default).
    pub threads: usize,
    /// The host name.
    pub host: String,
    /// The operating system and architecture.
    pub os: String,
    /// The tessera version.
    pub tessera_version: String,
    /// The build commit.
    pub commit: String,
    /// The libtorch version.
    pub libtorch: String,
    /// `experiment.reproducible`: `native` (kernels chosen by this CPU) or
    /// `portable` (pinned to AVX2, the same bits on any x86-64 CPU with it);
    /// empty before schema 2.1.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kernels: String,
}

impl SystemInfo {
    /// This machine, running units with `threads` libtorch threads each.
    pub fn here(threads: usize) -> SystemInfo {
        let build = build();
        SystemInfo {
            cpu: crate::figures::cpu(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads,
            host: host_name(),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            tessera_version: env!("CARGO_PKG_VERSION").into(),
            commit: build.commit,
            libtorch: build.libtorch,
            kernels: String::new(),
        }
    }
}

/// This machine's host name (`unknown` where it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_has_a_cpu_cores_and_a_build() {
        let here = SystemInfo::here(2);
        assert!(here.cores >= 1 && here.threads == 2);
        assert!(!here.cpu.is_empty() && !here.commit.is_empty(), "{here:?}");
    }
}
