//! Reducible holdout loss selection, RHO-LOSS (Mindermann et al., 2022),
//! with online batch selection by loss (Loshchilov & Hutter, 2015) and a
//! uniform choice as its controls.
//!
//! Each step draws a large batch B_t of n_B candidates (the epoch order's
//! next n_B ids) and trains on the n_b of them with the highest score:
//!
//! - `reducible` (RHO-LOSS): L[y | x; D_t] − L[y | x; D_ho], the training
//!   loss minus the *irreducible* loss under a model trained on held-out
//!   data only. The host trains that model once per run
//!   (`[reference] data = "validation"`) and hands its loss on every training
//!   example as the `reference-loss` observation. Points that are noisy
//!   (high irreducible loss), already learnt (low training loss), or less
//!   relevant are skipped; points that are learnable and not yet learnt are
//!   kept.
//! - `loss`: the highest training loss alone. Under label noise it keeps
//!   choosing the mislabeled points, which RHO-LOSS avoids.
//! - `uniform`: n_b candidates at random: the same extra forward passes,
//!   no selection (what plain training would do with the same steps).
//!
//! The host computes the candidates' losses with a forward pass that takes
//! no gradient, and counts those passes in the engine's report
//! (`selection_forward_examples`); the ids trained at each step are its
//! `selected_steps`/`selected_ids` arrays.
//!
//! Its report: per epoch, the share of mislabeled points (training label ≠
//! clean label) among the candidates and among those selected.

use tessera_sdk::prelude::*;
use tessera_sdk::serde::{Deserialize, Serialize};

/// What ranks a step's candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", crate = "tessera_sdk::serde")]
pub enum Score {
    /// Training loss minus the held-out model's loss (RHO-LOSS).
    #[default]
    Reducible,
    /// Training loss (online batch selection by loss).
    Loss,
    /// None: a uniformly random choice.
    Uniform,
}

params! {
    /// Parameters of [`RhoLoss`].
    pub struct RhoLossParams {
        /// n_B: candidates per step (at least `train.batch_size`, which is
        /// n_b; the paper uses n_b/n_B = 0.1).
        pub candidates: u32 = 320,
        /// `reducible` (RHO-LOSS; needs `[reference] data = "validation"`),
        /// `loss` (highest loss) or `uniform` (random).
        pub score: Score = Score::Reducible,
        /// Example ids per chunk handed to the host.
        pub chunk: u64 = 65_536,
    }
}

/// Trains each step on the candidates with the highest reducible holdout
/// loss (or loss, or at random).
pub struct RhoLoss {
    candidates: u32,
    score: Score,
    chunk: u64,
    /// L[y | x; D_ho] of every training example, by id.
    irreducible: Vec<f32>,
    /// Whether each training example's label differs from its clean label.
    noisy: Vec<bool>,
    /// Per epoch: (candidates, noisy candidates, selected, noisy selected).
    epochs: Vec<[u64; 4]>,
}

impl Component for RhoLoss {
    fn save_state(&self) -> Result<State> {
        State::encode(&(&self.irreducible, &self.noisy, &self.epochs))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        (self.irreducible, self.noisy, self.epochs) = State::decode::<(Vec<f32>, Vec<bool>, Vec<[u64; 4]>)>(bytes)?;
        Ok(())
    }

    const NAME: &'static str = "rho-loss";
    const SUMMARY: &'static str =
        "RHO-LOSS (Mindermann et al. 2022): each step trains on the candidates of highest training minus held-out loss.";
    type Params = RhoLossParams;

    fn new(params: RhoLossParams) -> Result<Self> {
        if params.candidates == 0 {
            return Err(Error::invalid_param("candidates", "must be at least 1 (and at least train.batch_size)"));
        }
        if params.chunk == 0 {
            return Err(Error::invalid_param("chunk", "must be at least 1"));
        }
        Ok(RhoLoss {
            candidates: params.candidates,
            score: params.score,
            chunk: params.chunk,
            irreducible: Vec::new(),
            noisy: Vec::new(),
            epochs: Vec::new(),
        })
    }
}

impl RhoLoss {
    /// Each candidate's score: higher trains first.
    fn scores(&self, candidates: &Candidates) -> Result<Vec<f32>> {
        let ids = candidates.ids.iter().map(|&id| id as usize);
        match self.score {
            Score::Loss => Ok(candidates.losses.to_vec()),
            Score::Reducible => ids
                .zip(candidates.losses.iter())
                .map(|(id, &loss)| match self.irreducible.get(id) {
                    Some(&irreducible) => Ok(loss - irreducible),
                    None => bail!("no irreducible loss for example {id}: the host observes before each epoch"),
                })
                .collect(),
            Score::Uniform => Ok(Vec::new()),
        }
    }

    /// Counts the step's candidates and choice towards its epoch's shares.
    fn count(&mut self, candidates: &Candidates, chosen: &Chosen) {
        let epoch = candidates.epoch as usize;
        if self.epochs.len() <= epoch {
            self.epochs.resize(epoch + 1, [0; 4]);
        }
        let noisy = |id: u64| u64::from(self.noisy.get(id as usize).copied().unwrap_or(false));
        let counts = &mut self.epochs[epoch];
        counts[0] += candidates.ids.len() as u64;
        counts[1] += candidates.ids.iter().map(|&id| noisy(id)).sum::<u64>();
        counts[2] += chosen.positions.len() as u64;
        counts[3] += chosen.positions.iter().map(|&p| noisy(candidates.ids[p as usize])).sum::<u64>();
    }
}

impl Sampler for RhoLoss {
    fn requires(&self) -> Vec<ObservationRequest> {
        let mut kinds = vec![observation::LABELS, observation::CLEAN_LABELS];
        if self.score == Score::Reducible {
            kinds.push(observation::REFERENCE_LOSS);
        }
        kinds.into_iter().map(|kind| ObservationRequest::new("train", kind)).collect()
    }

    fn observe(&mut self, _: &Schedule, _: &Checkpoint, observations: &Observations, _: &Host) -> Result<()> {
        let labels = observations.i64("train", observation::LABELS)?;
        let clean = observations.i64("train", observation::CLEAN_LABELS)?;
        self.noisy = labels.iter().zip(clean).map(|(a, b)| a != b).collect();
        if self.score == Score::Reducible {
            self.irreducible = observations.f32("train", observation::REFERENCE_LOSS)?.to_vec();
        }
        Ok(())
    }

    fn epoch_order(&mut self, layout: &StorageLayout, epoch: u64, host: &Host) -> Result<OrderStream> {
        let mut ids: Vec<u64> = (0..layout.examples).collect();
        host.rng(epoch).shuffle(&mut ids);
        let chunks: Vec<Vec<u64>> = ids.chunks(self.chunk as usize).map(<[u64]>::to_vec).collect();
        Ok(Box::new(chunks.into_iter()))
    }

    fn candidates(&self) -> Option<u32> {
        Some(self.candidates)
    }

    fn select(&mut self, candidates: &Candidates, host: &Host) -> Result<Chosen> {
        let keep = candidates.batch_size as usize;
        let chosen = match self.score {
            Score::Uniform => {
                let mut positions: Vec<u32> = (0..candidates.len() as u32).collect();
                host.rng(candidates.step).shuffle(&mut positions);
                positions.truncate(keep.max(1));
                Chosen::positions(positions)
            }
            _ => Chosen::top(&self.scores(candidates)?, keep),
        };
        self.count(candidates, &chosen);
        Ok(chosen)
    }

    fn finish(&mut self, _: &Host) -> Result<Report> {
        let mut report = Report::new();
        let share = |noisy: u64, all: u64| if all == 0 { 0.0 } else { noisy as f64 / all as f64 };
        let x: Vec<f64> = (1..=self.epochs.len()).map(|e| e as f64).collect();
        let selected: Vec<f64> = self.epochs.iter().map(|c| share(c[3], c[2])).collect();
        let offered: Vec<f64> = self.epochs.iter().map(|c| share(c[1], c[0])).collect();
        report.series("selected_noisy_share", "epoch", "mislabeled share of selected", x.clone(), selected);
        report.series("candidate_noisy_share", "epoch", "mislabeled share of candidates", x, offered);
        let total = self.epochs.iter().fold([0u64; 4], |mut t, c| {
            t.iter_mut().zip(c).for_each(|(t, c)| *t += c);
            t
        });
        report.scalar("selected_noisy_share", share(total[3], total[2]));
        report.scalar("candidate_noisy_share", share(total[1], total[0]));
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::testing::TestHost;

    fn candidates(losses: Vec<f32>) -> Candidates {
        let n = losses.len();
        Candidates {
            step: 0,
            epoch: 0,
            batch_size: 2,
            ids: (0..n as u64).collect::<Vec<_>>().into(),
            labels: vec![0; n].into(),
            losses: losses.into(),
            logits: Array::f32(vec![n as u64, 1], vec![0.0; n]),
        }
    }

    fn sampler(score: Score) -> RhoLoss {
        RhoLoss::new(RhoLossParams { score, candidates: 4, ..Default::default() }).unwrap()
    }

    #[test]
    fn rho_loss_keeps_learnable_points_and_skips_noisy_and_learnt_ones() {
        // Example 0: noisy (high loss, high irreducible loss); 1: learnt (low,
        // low); 2 and 3: learnable, not yet learnt (high, low).
        let mut rho = sampler(Score::Reducible);
        rho.irreducible = vec![3.0, 0.1, 0.2, 0.1];
        rho.noisy = vec![true, false, false, false];
        let host = TestHost::new(1);
        let chosen = rho.select(&candidates(vec![3.5, 0.2, 2.0, 1.5]), &host.host()).unwrap();
        assert_eq!(chosen.positions.as_slice(), &[2, 3]);
        let by_loss = sampler(Score::Loss).select(&candidates(vec![3.5, 0.2, 2.0, 1.5]), &host.host()).unwrap();
        assert_eq!(by_loss.positions.as_slice(), &[0, 2], "by loss alone, the noisy point first");
        let report = rho.finish(&host.host()).unwrap();
        let scalar = |name: &str| report.scalars.iter().find(|s| s.name.as_str() == name).unwrap().value;
        assert_eq!((scalar("selected_noisy_share"), scalar("candidate_noisy_share")), (0.0, 0.25));
    }

    #[test]
    fn uniform_keeps_a_batch_of_distinct_candidates() {
        let host = TestHost::new(3);
        let chosen = sampler(Score::Uniform).select(&candidates(vec![0.0; 4]), &host.host()).unwrap();
        let mut positions = chosen.positions.to_vec();
        positions.sort_unstable();
        positions.dedup();
        assert_eq!(positions.len(), 2);
    }
}
