//! Data pruning by an early-training score: every example for the first
//! epochs, then the hardest share only.

use tessera_sdk::prelude::*;
use tessera_sdk::serde::{Deserialize, Serialize};

/// What ranks the examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", crate = "tessera_sdk::serde")]
pub enum Score {
    /// ‖p(x) − e_y‖₂.
    #[default]
    El2n,
    /// ‖∇ ℓ‖₂ of the last layer.
    Grand,
    /// None: a random share (the baseline).
    Random,
}

params! {
    /// Parameters of [`Prune`].
    pub struct PruneParams {
        /// `el2n`, `grand` or `random`.
        pub score: Score = Score::El2n,
        /// The share of the training examples kept after scoring (0 to 1].
        pub keep: f64 = 0.5,
        /// Epochs on every example before scoring (at least 1).
        pub score_after: u64 = 2,
        /// Example ids per chunk handed to the host.
        pub chunk: u64 = 65_536,
    }
}

/// Trains on everything for `score_after` epochs, then on the `keep` share
/// of highest score.
pub struct Prune {
    score: Score,
    keep: f64,
    score_after: u64,
    chunk: u64,
    /// The kept ids, once scored.
    kept: Option<Vec<u64>>,
    /// Each example's score at the scoring epoch.
    scores: Vec<f32>,
    /// Whether each example's label was flipped (`clean-labels` ≠ `labels`).
    noisy: Vec<bool>,
}

impl Component for Prune {
    /// The kept subset, once chosen, and the scores and noise flags behind it.
    fn save_state(&self) -> Result<State> {
        State::encode(&(&self.kept, &self.scores, &self.noisy))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        (self.kept, self.scores, self.noisy) = State::decode(bytes)?;
        Ok(())
    }

    const NAME: &'static str = "prune";
    const SUMMARY: &'static str =
        "Data diet (Paul et al. 2021): after a few epochs keep the examples of highest EL2N or GraNd score (or a random share).";
    type Params = PruneParams;

    fn new(params: PruneParams) -> Result<Self> {
        if !(params.keep > 0.0 && params.keep <= 1.0) {
            return Err(Error::invalid_param("keep", "must be in (0, 1]"));
        }
        if params.score_after == 0 {
            return Err(Error::invalid_param(
                "score_after",
                "must be at least 1: the scores come from a trained model",
            ));
        }
        if params.chunk == 0 {
            return Err(Error::invalid_param("chunk", "must be at least 1"));
        }
        let PruneParams { score, keep, score_after, chunk } = params;
        Ok(Prune { score, keep, score_after, chunk, kept: None, scores: Vec::new(), noisy: Vec::new() })
    }
}

/// EL2N of each example: ‖p − e_y‖₂ from `[n, classes]` probabilities.
pub fn el2n(probabilities: &[f32], labels: &[i64]) -> Vec<f32> {
    let classes = probabilities.len() / labels.len().max(1);
    probabilities
        .chunks(classes.max(1))
        .zip(labels)
        .map(|(p, &y)| {
            let error = |(c, &q): (usize, &f32)| if c as i64 == y { q - 1.0 } else { q };
            p.iter().enumerate().map(error).map(|e| e * e).sum::<f32>().sqrt()
        })
        .collect()
}

/// The `keep` share of `0..n` with the highest scores (ties: lower id).
fn hardest(scores: &[f32], keep: usize) -> Vec<u64> {
    let mut ids: Vec<u64> = (0..scores.len() as u64).collect();
    ids.sort_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]).then(a.cmp(&b)));
    ids.truncate(keep);
    ids
}

impl Prune {
    /// How many examples of `n` are kept.
    fn kept_count(&self, n: usize) -> usize {
        ((self.keep * n as f64).round() as usize).clamp(1, n.max(1))
    }

    /// Scores from the observations and the kept ids.
    fn choose(&mut self, observations: &Observations, host: &Host) -> Result<()> {
        let labels = observations.i64("train", observation::LABELS)?;
        self.scores = match self.score {
            Score::El2n => el2n(observations.f32("train", observation::PROBABILITIES)?, labels),
            Score::Grand => observations.f32("train", observation::LAST_LAYER_GRADIENT_NORMS)?.to_vec(),
            Score::Random => {
                let mut rng = host.rng(u64::MAX);
                labels.iter().map(|_| rng.next_f64() as f32).collect()
            }
        };
        self.kept = Some(hardest(&self.scores, self.kept_count(labels.len())));
        Ok(())
    }
}

impl Sampler for Prune {
    fn sampling(&self) -> Sampling {
        Sampling::Subset
    }

    fn requires(&self) -> Vec<ObservationRequest> {
        let score = match self.score {
            Score::El2n => observation::PROBABILITIES,
            Score::Grand => observation::LAST_LAYER_GRADIENT_NORMS,
            Score::Random => observation::LABELS,
        };
        [score, observation::LABELS, observation::CLEAN_LABELS]
            .into_iter()
            .map(|kind| ObservationRequest::new("train", kind))
            .collect()
    }

    fn observe(&mut self, _: &Schedule, at: &Checkpoint, observations: &Observations, host: &Host) -> Result<()> {
        if at.epoch as u64 == self.score_after && self.kept.is_none() {
            let labels = observations.i64("train", observation::LABELS)?;
            let clean = observations.i64("train", observation::CLEAN_LABELS)?;
            self.noisy = labels.iter().zip(clean).map(|(a, b)| a != b).collect();
            self.choose(observations, host)?;
        }
        Ok(())
    }

    fn epoch_order(&mut self, layout: &StorageLayout, epoch: u64, host: &Host) -> Result<OrderStream> {
        let mut ids = match &self.kept {
            Some(kept) if epoch >= self.score_after => kept.clone(),
            _ => (0..layout.examples).collect(),
        };
        host.rng(epoch).shuffle(&mut ids);
        let chunks: Vec<Vec<u64>> = ids.chunks(self.chunk as usize).map(<[u64]>::to_vec).collect();
        Ok(Box::new(chunks.into_iter()))
    }

    fn finish(&mut self, _: &Host) -> Result<Report> {
        let mut report = Report::new();
        let Some(kept) = &self.kept else { return Ok(report) };
        report.scalar("kept_examples", kept.len() as f64);
        report.scalar("kept_share", kept.len() as f64 / self.scores.len().max(1) as f64);
        let noisy = kept.iter().filter(|&&id| self.noisy.get(id as usize) == Some(&true)).count();
        report.scalar("kept_noisy_share", noisy as f64 / kept.len().max(1) as f64);
        report.array("scores", Array::f32(vec![self.scores.len() as u64], self.scores.clone()));
        report.array("kept_ids", Array::i64(vec![kept.len() as u64], kept.iter().map(|&i| i as i64).collect()));
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::testing;

    #[test]
    fn el2n_is_the_error_vector_s_norm() {
        let scores = el2n(&[0.7, 0.2, 0.1, 0.1, 0.1, 0.8], &[0, 0]);
        assert!((scores[0] - (0.09f32 + 0.04 + 0.01).sqrt()).abs() < 1e-6);
        assert!((scores[1] - (0.81f32 + 0.01 + 0.64).sqrt()).abs() < 1e-6);
        assert_eq!(hardest(&[0.1, 0.9, 0.5, 0.9], 2), vec![1, 3]);
    }

    #[test]
    fn after_scoring_it_trains_on_the_hardest_share_only() {
        let mut prune = testing::sampler::<Prune>("keep = 0.5\nscore_after = 1").unwrap();
        let layout = testing::layout(4, 1);
        assert_eq!(prune.epoch_order(&layout, 0).unwrap().len(), 4, "every example before scoring");
        let probabilities = vec![0.9, 0.1, 0.2, 0.8, 0.5, 0.5, 0.99, 0.01];
        let items = [
            testing::f32_observation_nd("train", observation::PROBABILITIES, &[4, 2], probabilities),
            testing::i64_observation("train", observation::LABELS, vec![0, 0, 0, 0]),
            testing::i64_observation("train", observation::CLEAN_LABELS, vec![0, 1, 0, 0]),
        ];
        let at = Checkpoint { step: 3, epoch: 1.0, examples_seen: 4, is_final: false };
        prune.observe(&testing::schedule(2, 1, 4), &at, &items).unwrap();
        let mut kept = prune.epoch_order(&layout, 1).unwrap();
        kept.sort_unstable();
        assert_eq!(kept, vec![1, 2], "the two of highest EL2N");
        let report = prune.finish().unwrap();
        let scalar = |name: &str| report.scalars.iter().find(|s| s.name.as_str() == name).unwrap().value;
        assert_eq!((scalar("kept_examples"), scalar("kept_noisy_share")), (2.0, 0.5));
        assert!(testing::sampler::<Prune>("keep = 0").err().unwrap().to_string().contains("keep"));
    }
}
