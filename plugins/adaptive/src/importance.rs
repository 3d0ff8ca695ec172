//! Importance sampling by loss (Katharopoulos & Fleuret, 2018), once per
//! epoch.
//!
//! Before each epoch the host hands over every example's training loss L_i.
//! Draw N examples with replacement with probability
//! p_i = (1 − λ)·L_i / Σ_j L_j + λ/N (λ, the share of uniform sampling,
//! keeps every p_i above zero), and weight each drawn example's loss by
//! w_i = 1 / (N·p_i). Then E[w_i·∇L_i] over the draws is the full-data mean
//! gradient: the estimator is unbiased, and its variance is lower than a
//! uniform draw's when the loss tracks the gradient norm. The paper draws a
//! larger batch and resamples within it at every step; here the
//! distribution is refreshed once per epoch.
//!
//! Its report: per epoch, the effective sample size (Σw)²/Σw² over N and
//! the largest weight.

use tessera_sdk::prelude::*;

params! {
    /// Parameters of [`Importance`].
    pub struct ImportanceParams {
        /// λ: the share of uniform sampling mixed into p (0 to 1; 1 = uniform).
        pub uniform: f64 = 0.1,
        /// Weight the loss by 1/(N·p) (unbiased); false: biased sampling.
        pub reweight: bool = true,
        /// Example ids per chunk handed to the host.
        pub chunk: u64 = 65_536,
    }
}

/// Draws each epoch's examples with replacement in proportion to their
/// loss, and weights their losses so that the gradient stays unbiased.
pub struct Importance {
    uniform: f64,
    reweight: bool,
    chunk: u64,
    /// p_i of the epoch to come, from the last losses.
    probabilities: Vec<f64>,
    /// (effective sample size over N, largest weight) of each epoch.
    epochs: Vec<(f64, f64)>,
}

impl Component for Importance {
    fn save_state(&self) -> Result<State> {
        State::encode(&(&self.probabilities, &self.epochs))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        (self.probabilities, self.epochs) = State::decode::<(Vec<f64>, Vec<(f64, f64)>)>(bytes)?;
        Ok(())
    }

    const NAME: &'static str = "importance";
    const SUMMARY: &'static str =
        "Importance sampling by loss (Katharopoulos & Fleuret 2018): p ∝ loss mixed with uniform, losses weighted by 1/(N·p).";
    type Params = ImportanceParams;

    fn new(params: ImportanceParams) -> Result<Self> {
        if !(0.0..=1.0).contains(&params.uniform) {
            return Err(Error::invalid_param("uniform", "must be between 0 and 1"));
        }
        if params.chunk == 0 {
            return Err(Error::invalid_param("chunk", "must be at least 1"));
        }
        let (uniform, reweight, chunk) = (params.uniform, params.reweight, params.chunk);
        Ok(Importance { uniform, reweight, chunk, probabilities: Vec::new(), epochs: Vec::new() })
    }
}

/// p_i = (1 − λ)·L_i/ΣL + λ/N (uniform where every loss is 0).
fn probabilities(loss: &[f32], uniform: f64) -> Vec<f64> {
    let n = loss.len() as f64;
    let total: f64 = loss.iter().map(|&l| f64::from(l.max(0.0))).sum();
    let share = if total > 0.0 { 1.0 - uniform } else { 0.0 };
    loss.iter().map(|&l| share * f64::from(l.max(0.0)) / total.max(f64::MIN_POSITIVE) + (1.0 - share) / n).collect()
}

/// w_i = 1/(N·p_i).
fn weights(probabilities: &[f64]) -> Vec<f32> {
    let n = probabilities.len() as f64;
    probabilities.iter().map(|&p| (1.0 / (n * p)) as f32).collect()
}

impl Sampler for Importance {
    fn sampling(&self) -> Sampling {
        Sampling::WithReplacement
    }

    fn requires(&self) -> Vec<ObservationRequest> {
        super::loss_request()
    }

    fn observe(&mut self, _: &Schedule, _: &Checkpoint, observations: &Observations, _: &Host) -> Result<()> {
        self.probabilities = probabilities(observations.f32("train", observation::LOSS)?, self.uniform);
        Ok(())
    }

    fn epoch_order(&mut self, layout: &StorageLayout, epoch: u64, host: &Host) -> Result<OrderStream> {
        if self.probabilities.len() as u64 != layout.examples {
            bail!("no losses for this layout: the host observes before each epoch");
        }
        let mut cumulative = Vec::with_capacity(self.probabilities.len());
        let mut sum = 0.0;
        for p in &self.probabilities {
            sum += p;
            cumulative.push(sum);
        }
        let mut rng = host.rng(epoch);
        let last = cumulative.len() - 1;
        let draws: Vec<u64> = (0..layout.examples)
            .map(|_| {
                let u = rng.next_f64() * sum;
                cumulative.partition_point(|&c| c <= u).min(last) as u64
            })
            .collect();
        let chunks: Vec<Vec<u64>> = draws.chunks(self.chunk as usize).map(<[u64]>::to_vec).collect();
        Ok(Box::new(chunks.into_iter()))
    }

    fn example_weights(&mut self, _: &StorageLayout, _: u64, _: &Host) -> Result<Option<Vec<f32>>> {
        let w = weights(&self.probabilities);
        let (sum, squares) = w.iter().fold((0.0, 0.0), |(s, q), &x| (s + f64::from(x), q + f64::from(x).powi(2)));
        let largest = w.iter().copied().fold(0.0f32, f32::max);
        self.epochs.push((sum * sum / squares / w.len() as f64, f64::from(largest)));
        Ok(self.reweight.then_some(w))
    }

    fn finish(&mut self, _: &Host) -> Result<Report> {
        let mut report = Report::new();
        let x: Vec<f64> = (1..=self.epochs.len()).map(|e| e as f64).collect();
        let ess: Vec<f64> = self.epochs.iter().map(|e| e.0).collect();
        let largest: Vec<f64> = self.epochs.iter().map(|e| e.1).collect();
        report.series("effective_sample_size", "epoch", "ESS / N", x.clone(), ess.clone());
        report.series("largest_weight", "epoch", "max w", x, largest.clone());
        report.scalar("mean_effective_sample_size", ess.iter().sum::<f64>() / ess.len().max(1) as f64);
        report.scalar("largest_weight", largest.iter().copied().fold(0.0, f64::max));
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::testing::{self, TestHost};

    #[test]
    fn weights_make_the_weighted_draw_unbiased() {
        let loss = [4.0f32, 1.0, 0.0, 3.0];
        let p = probabilities(&loss, 0.2);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12 && p.iter().all(|&x| x > 0.0));
        assert!((p[0] - (0.8 * 0.5 + 0.05)).abs() < 1e-12);
        // E_p[w_i · f_i] = Σ p_i · f_i / (N p_i) = mean f, for any f.
        let w = weights(&p);
        let f = [2.0, -1.0, 5.0, 0.5];
        let expected: f64 = (0..4).map(|i| p[i] * f64::from(w[i]) * f[i]).sum();
        assert!((expected - f.iter().sum::<f64>() / 4.0).abs() < 1e-6, "{expected}");
        assert_eq!(probabilities(&[0.0, 0.0], 0.1), vec![0.5, 0.5], "no loss: uniform");
    }

    #[test]
    fn an_epoch_draws_high_loss_examples_more_and_reports_its_weights() {
        let mut s = Importance::new(ImportanceParams { uniform: 0.1, reweight: true, chunk: 100 }).unwrap();
        let loss: Vec<f32> = (0..1000).map(|i| if i < 100 { 9.0 } else { 0.1 }).collect();
        let obs = [testing::f32_observation("train", observation::LOSS, loss)];
        let host = TestHost::new(3);
        let (schedule, cp) = (testing::schedule(1, 10, 1000), testing::checkpoint(0));
        s.observe(&schedule, &cp, &testing::observations(&obs), &host.host()).unwrap();
        let layout = testing::layout(1000, 10);
        let ids = testing::collect_order(s.epoch_order(&layout, 0, &host.host()).unwrap());
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().filter(|&&i| i < 100).count() > 700, "the hard tenth draws most");
        let w = s.example_weights(&layout, 0, &host.host()).unwrap().unwrap();
        assert!(w[0] < 1.0 && w[500] > 1.0, "hard examples weigh less, easy ones more");
        let report = s.finish(&host.host()).unwrap();
        assert!(report.scalars.iter().any(|x| x.name.as_str() == "mean_effective_sample_size"));
    }
}
