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
    fn save_state(&self) -> Result<State> {
        State::encode(&(&self.kept,))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        (self.kept,) = State::decode::<(Vec<u64>,)>(bytes)?;
        Ok(())
    }

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
    use tessera_sdk::testing::{self, TestHost};

    #[test]
    fn the_first_epoch_keeps_the_easiest_share_and_the_share_grows_to_all() {
        let mut s = SelfPaced::new(SelfPacedParams { start: 0.25, full_at: 0.5, chunk: 3 }).unwrap();
        let loss = vec![0.9f32, 0.1, 0.5, 0.3, 0.8, 0.2, 0.7, 0.4];
        let obs = [testing::f32_observation("train", observation::LOSS, loss)];
        let (schedule, layout, host) = (testing::schedule(4, 2, 8), testing::layout(8, 2), TestHost::new(3));
        let mut epoch_ids = |epoch: u64| {
            let cp = testing::checkpoint(epoch);
            s.observe(&schedule, &cp, &testing::observations(&obs), &host.host()).unwrap();
            let mut ids = testing::collect_order(s.epoch_order(&layout, epoch, &host.host()).unwrap());
            ids.sort_unstable();
            ids
        };
        assert_eq!(epoch_ids(0), vec![1, 5], "the two lowest losses");
        assert_eq!(epoch_ids(1).len(), 5, "a quarter, plus three quarters of the way at epoch 1 of a 2-epoch ramp");
        assert_eq!(epoch_ids(2), (0..8).collect::<Vec<_>>());
        assert_eq!(epoch_ids(3).len(), 8);
    }
}
