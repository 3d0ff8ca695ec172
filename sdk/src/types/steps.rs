//! Per-step batch selection (SDK 0.3): the candidates of one step, as the
//! host hands them to a sampler, and the sampler's choice among them.

use abi_stable::{std_types::RVec, StableAbi};

use super::Array;

/// One step's candidate batch: B examples of the sampler's epoch order, each
/// with its loss and logits from a forward pass of the model as training
/// left it (evaluation mode, no gradient).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Candidates {
    /// The optimizer step this batch will train (0-based).
    pub step: u64,
    /// The epoch (0-based) whose order the candidates come from.
    pub epoch: u64,
    /// Examples the manifest trains per step (`train.batch_size`), b: the
    /// size a sampler usually keeps.
    pub batch_size: u64,
    /// The candidates' example ids, as the epoch order gave them.
    pub ids: RVec<u64>,
    /// Their training labels.
    pub labels: RVec<i64>,
    /// Each candidate's cross-entropy loss.
    pub losses: RVec<f32>,
    /// Their logits, `f32`, shape `[B, classes]`.
    pub logits: Array,
}

impl Candidates {
    /// Number of candidates, B.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there is no candidate (never, from the host).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A sampler's choice among one step's candidates: the positions (in
/// [`Candidates::ids`]) of the examples to train on, and optionally each
/// one's loss weight.
///
/// **Contract, checked by the host:** at least one position; each below B
/// and none twice; `weights` empty (every weight 1) or one per position,
/// finite and at least 0. A violation fails the variant, naming the sampler.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Default)]
pub struct Chosen {
    /// Positions of the chosen candidates.
    pub positions: RVec<u32>,
    /// Loss weight of each chosen candidate, or empty: all 1.
    pub weights: RVec<f32>,
}

impl Chosen {
    /// These positions, unweighted.
    pub fn positions(positions: Vec<u32>) -> Self {
        Chosen { positions: positions.into(), weights: RVec::new() }
    }

    /// The `keep` candidates of highest score (ties: the earlier position),
    /// unweighted; NaN scores rank last.
    pub fn top(scores: &[f32], keep: usize) -> Self {
        let mut order: Vec<u32> = (0..scores.len() as u32).collect();
        let key = |&p: &u32| {
            let s = scores[p as usize];
            if s.is_nan() {
                f32::NEG_INFINITY
            } else {
                s
            }
        };
        order.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.cmp(b)));
        order.truncate(keep.max(1));
        Chosen::positions(order)
    }

    /// The same choice with these loss weights (one per position).
    pub fn weighted(self, weights: Vec<f32>) -> Self {
        Chosen { weights: weights.into(), ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_keeps_the_highest_scores_in_rank_order() {
        let chosen = Chosen::top(&[0.5, 2.0, f32::NAN, 2.0, -1.0], 3);
        assert_eq!(chosen.positions.as_slice(), &[1, 3, 0]);
        assert!(chosen.weights.is_empty());
        assert_eq!(Chosen::top(&[1.0, 3.0], 5).positions.as_slice(), &[1, 0], "no more than there are");
        assert_eq!(Chosen::top(&[1.0, 3.0], 0).positions.len(), 1, "at least one");
    }
}
