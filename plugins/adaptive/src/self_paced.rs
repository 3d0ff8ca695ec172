//! Self-paced learning (Kumar, Packer & Koller, 2010).
//!
//! The model chooses its own curriculum: each epoch trains only on the
//! examples whose current loss is below a threshold, and the threshold
//! rises until every example is in. Here the threshold is the loss quantile
//! that keeps a share of the examples growing linearly from `start` at the
//! first epoch to all of them at epoch `full_at` × epochs; the kept examples
//! are visited in a fresh random order.

use tessera_sdk::prelude::*;

params! {
    /// Parameters of [`SelfPaced`].
    pub struct SelfPacedParams {
        /// Share of the examples (the easiest) the first epoch trains on.
        pub start: f64 = 0.5,
        /// Fraction of the run after which every example is in.
        pub full_at: f64 = 0.5,
        /// Example ids per chunk handed to the host.
        pub chunk: u64 = 65_536,
    }
}

/// Trains each epoch on the lowest-loss examples, a share that grows to all.
pub struct SelfPaced {
    start: f64,
    full_at: f64,
    chunk: u64,
    /// The ids of the next epoch, easiest first (before shuffling).
    kept: Vec<u64>,
}

impl Component for SelfPaced {
    const NAME: &'static str = "self-paced";
    const SUMMARY: &'static str =
        "Self-paced learning (Kumar et al. 2010): each epoch the lowest-loss examples only, a share growing to all.";
    type Params = SelfPacedParams;

    fn new(params: SelfPacedParams) -> Result<Self> {
        if !(params.start > 0.0 && params.start <= 1.0) {
            return Err(Error::invalid_param("start", "must be in (0, 1]"));
        }
        if !(params.full_at > 0.0 && params.full_at <= 1.0) {
            return Err(Error::invalid_param("full_at", "must be in (0, 1]"));
        }
        if params.chunk == 0 {
            return Err(Error::invalid_param("chunk", "must be at least 1"));
        }
        Ok(SelfPaced { start: params.start, full_at: params.full_at, chunk: params.chunk, kept: Vec::new() })
    }
}

impl SelfPaced {
    /// The share of examples epoch `epoch` of `epochs` trains on.
    fn share(&self, epoch: f64, epochs: u64) -> f64 {
        let ramp = (self.full_at * epochs as f64).max(1.0);
        (self.start + (1.0 - self.start) * epoch / ramp).min(1.0)
    }
}

impl Sampler for SelfPaced {
    fn sampling(&self) -> Sampling {
        Sampling::Subset
    }

    fn requires(&self) -> Vec<ObservationRequest> {
        super::loss_request()
    }

    fn observe(&mut self, schedule: &Schedule, at: &Checkpoint, observations: &Observations, _: &Host) -> Result<()> {
        let loss = observations.f32("train", observation::LOSS)?;
        let keep = (self.share(at.epoch, schedule.epochs) * loss.len() as f64).ceil() as usize;
        let mut by_loss: Vec<u64> = (0..loss.len() as u64).collect();
        by_loss.sort_by(|&a, &b| loss[a as usize].total_cmp(&loss[b as usize]));
        by_loss.truncate(keep.max(1));
        self.kept = by_loss;
        Ok(())
    }

    fn epoch_order(&mut self, layout: &StorageLayout, epoch: u64, host: &Host) -> Result<OrderStream> {
        if self.kept.is_empty() || self.kept.iter().any(|&id| id >= layout.examples) {
            return Err(Error::msg("no losses for this layout: the host observes before each epoch"));
        }
        let mut ids = std::mem::take(&mut self.kept);
        host.rng(epoch).shuffle(&mut ids);
        let chunks: Vec<Vec<u64>> = ids.chunks(self.chunk as usize).map(<[u64]>::to_vec).collect();
        Ok(Box::new(chunks.into_iter()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::ffi::HostServices;
    use tessera_sdk::Observation;

    #[test]
    fn the_first_epoch_keeps_the_easiest_share_and_the_share_grows_to_all() {
        let mut s = SelfPaced::new(SelfPacedParams { start: 0.25, full_at: 0.5, chunk: 3 }).unwrap();
        let loss = vec![0.9f32, 0.1, 0.5, 0.3, 0.8, 0.2, 0.7, 0.4];
        let obs =
            [Observation { split: "train".into(), kind: observation::LOSS.into(), array: Array::f32(vec![8], loss) }];
        let schedule = Schedule { epochs: 4, batch_size: 2, steps_per_epoch: 4 };
        let services = HostServices::detached(3);
        let host = Host::new(&services);
        let layout = StorageLayout { examples: 8, block_size: 2, bytes_per_example: 8 };
        let mut epoch_ids = |epoch: u64| {
            let cp = Checkpoint { step: 0, epoch: epoch as f64, examples_seen: 0, is_final: false };
            s.observe(&schedule, &cp, &Observations::new(&obs), &host).unwrap();
            let mut ids: Vec<u64> = s.epoch_order(&layout, epoch, &host).unwrap().flatten().collect();
            ids.sort_unstable();
            ids
        };
        assert_eq!(epoch_ids(0), vec![1, 5], "the two lowest losses");
        assert_eq!(epoch_ids(1).len(), 5, "a quarter, plus three quarters of the way at epoch 1 of a 2-epoch ramp");
        assert_eq!(epoch_ids(2), (0..8).collect::<Vec<_>>());
        assert_eq!(epoch_ids(3).len(), 8);
    }
}
