//! What storage costs: a per-request latency plus a bandwidth, with presets,
//! and the counts of a pass (requests, bytes, wall time).

use crate::choice::StoragePreset;
use serde::{Deserialize, Serialize};

/// A storage device or service: time = requests × latency + bytes / bandwidth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostModel {
    /// Seconds per request.
    pub latency_seconds: f64,
    /// Bytes per second.
    pub bandwidth_bytes_per_second: f64,
}

impl CostModel {
    /// A preset by name: `local-ssd` (0.1 ms, 2 GB/s), `hdd` (10 ms,
    /// 150 MB/s) or `cloud` (object storage: 20 ms, 100 MB/s).
    pub fn preset(preset: StoragePreset) -> CostModel {
        let (latency_seconds, bandwidth) = match preset {
            StoragePreset::LocalSsd => (1e-4, 2e9),
            StoragePreset::Hdd => (1e-2, 150e6),
            StoragePreset::Cloud => (2e-2, 100e6),
        };
        CostModel { latency_seconds, bandwidth_bytes_per_second: bandwidth }
    }

    /// Modeled seconds for `requests` requests moving `bytes` bytes.
    pub fn seconds(&self, requests: u64, bytes: u64) -> f64 {
        requests as f64 * self.latency_seconds + bytes as f64 / self.bandwidth_bytes_per_second
    }
}

/// The I/O of a pass over storage.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct IoStats {
    /// Read requests issued.
    pub requests: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Wall time spent in I/O calls, in seconds (on the thread doing them).
    pub io_seconds: f64,
    /// Wall time training waited for the reader, in seconds: the storage
    /// time prefetch did not hide.
    #[serde(default)]
    pub wait_seconds: f64,
}

impl IoStats {
    /// Adds another pass's counts.
    pub fn add(&mut self, other: &IoStats) {
        self.requests += other.requests;
        self.bytes += other.bytes;
        self.io_seconds += other.io_seconds;
        self.wait_seconds += other.wait_seconds;
    }

    /// Modeled time of these reads under `model`.
    pub fn modeled_seconds(&self, model: &CostModel) -> f64 {
        model.seconds(self.requests, self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_costs_latency_plus_bandwidth() {
        let cloud = CostModel::preset(StoragePreset::Cloud);
        // 100 requests of 1 MB: 100 × 20 ms + 100 MB / 100 MB/s = 3 s.
        assert!((cloud.seconds(100, 100_000_000) - 3.0).abs() < 1e-12);
    }
}
