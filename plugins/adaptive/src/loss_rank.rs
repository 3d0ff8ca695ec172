//! Online batch selection by loss rank (Loshchilov & Hutter, 2015).
//!
//! Rank the examples by their latest loss, largest first (rank 0). Draw each
//! example of the epoch independently with probability
//! p(r) ∝ exp(−ln(s) · r / n), so the hardest example is s times as likely
//! as the easiest (s, the selection pressure). The paper re-ranks during
//! the epoch from the losses of the batches just trained; here the ranks
//! come from a full forward pass before each epoch.

use tessera_sdk::prelude::*;

params! {
    /// Parameters of [`LossRank`].
    pub struct LossRankParams {
        /// Selection pressure s: how many times likelier the hardest example
        /// is than the easiest (1 = uniform).
        pub pressure: f64 = 100.0,
        /// Example ids per chunk handed to the host.
        pub chunk: u64 = 65_536,
    }
}

/// Draws each epoch's examples with replacement, favouring high-loss ones.
pub struct LossRank {
    pressure: f64,
    chunk: u64,
    /// Cumulative selection probabilities by example id, from the last losses.
    cumulative: Vec<f64>,
}

impl Component for LossRank {
    fn save_state(&self) -> Result<State> {
        State::encode(&(&self.cumulative,))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        (self.cumulative,) = State::decode::<(Vec<f64>,)>(bytes)?;
        Ok(())
    }

    const NAME: &'static str = "loss-rank";
    const SUMMARY: &'static str =
        "Online batch selection by loss rank (Loshchilov & Hutter 2015): draws examples with replacement, p ∝ exp(−ln(s)·rank/n).";
    type Params = LossRankParams;

    fn new(params: LossRankParams) -> Result<Self> {
        if !(params.pressure >= 1.0 && params.pressure.is_finite()) {
            return Err(Error::invalid_param("pressure", "must be a finite number of at least 1"));
        }
        if params.chunk == 0 {
            return Err(Error::invalid_param("chunk", "must be at least 1"));
        }
        Ok(LossRank { pressure: params.pressure, chunk: params.chunk, cumulative: Vec::new() })
    }
}

/// Selection probabilities by id: exp(−ln(s)·rank/n), normalised, as a
/// running sum (ties keep id order).
fn cumulative_by_rank(loss: &[f32], pressure: f64) -> Vec<f64> {
    let n = loss.len();
    let mut by_loss: Vec<usize> = (0..n).collect();
    by_loss.sort_by(|&a, &b| loss[b].total_cmp(&loss[a]));
    let mut weight = vec![0.0; n];
    for (rank, &id) in by_loss.iter().enumerate() {
        weight[id] = (-pressure.ln() * rank as f64 / n as f64).exp();
    }
    let total: f64 = weight.iter().sum();
    weight
        .iter()
        .scan(0.0, |sum, w| {
            *sum += w / total;
            Some(*sum)
        })
        .collect()
}

impl Sampler for LossRank {
    fn sampling(&self) -> Sampling {
        Sampling::WithReplacement
    }

    fn requires(&self) -> Vec<ObservationRequest> {
        super::loss_request()
    }

    fn observe(&mut self, _: &Schedule, _: &Checkpoint, observations: &Observations, _: &Host) -> Result<()> {
        let loss = observations.f32("train", observation::LOSS)?;
        self.cumulative = cumulative_by_rank(loss, self.pressure);
        Ok(())
    }

    fn epoch_order(&mut self, layout: &StorageLayout, epoch: u64, host: &Host) -> Result<OrderStream> {
        if self.cumulative.len() as u64 != layout.examples {
            return Err(Error::msg("no losses for this layout: the host observes before each epoch"));
        }
        let (n, chunk) = (layout.examples, self.chunk);
        let cumulative = std::mem::take(&mut self.cumulative);
        let mut rng = host.rng(epoch);
        let draws: Vec<u64> = (0..n)
            .map(|_| {
                let u = rng.next_f64() * cumulative[cumulative.len() - 1];
                cumulative.partition_point(|&c| c <= u).min(cumulative.len() - 1) as u64
            })
            .collect();
        let chunks: Vec<Vec<u64>> = draws.chunks(chunk as usize).map(<[u64]>::to_vec).collect();
        Ok(Box::new(chunks.into_iter()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::testing::{self, TestHost};

    fn observed(sampler: &mut LossRank, loss: Vec<f32>) {
        let n = loss.len() as u64;
        let obs = [testing::f32_observation("train", observation::LOSS, loss)];
        let (schedule, cp) = (testing::schedule(1, 1, n), testing::checkpoint(0));
        sampler.observe(&schedule, &cp, &testing::observations(&obs), &TestHost::new(1).host()).unwrap();
    }

    #[test]
    fn the_hardest_example_is_pressure_times_as_likely_as_the_easiest() {
        let cumulative = cumulative_by_rank(&[0.1, 3.0, 1.0, 2.0], 8.0);
        let p: Vec<f64> = cumulative.iter().scan(0.0, |prev, &c| Some(c - std::mem::replace(prev, c))).collect();
        // Ranks: id 1 (0), id 3 (1), id 2 (2), id 0 (3); ratio of neighbours 8^(1/4).
        let step = 8f64.powf(0.25);
        assert!((p[1] / p[3] - step).abs() < 1e-9 && (p[3] / p[2] - step).abs() < 1e-9);
        assert!((p[1] / p[0] - step.powi(3)).abs() < 1e-9);
        assert!((cumulative[3] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn an_epoch_draws_n_ids_mostly_the_hard_ones_and_is_reproducible() {
        let layout = testing::layout(1000, 10);
        let loss: Vec<f32> = (0..1000).map(|i| if i < 100 { 5.0 } else { 0.1 }).collect();
        let host = TestHost::new(7);
        let draw = || {
            let mut s = LossRank::new(LossRankParams { pressure: 1000.0, chunk: 300 }).unwrap();
            observed(&mut s, loss.clone());
            testing::collect_order(s.epoch_order(&layout, 0, &host.host()).unwrap())
        };
        let ids = draw();
        assert_eq!(ids.len(), 1000);
        let hard = ids.iter().filter(|&&i| i < 100).count();
        assert!(hard > 500, "{hard} of 1000 draws from the 100 hardest");
        assert_eq!(ids, draw());
    }
}
