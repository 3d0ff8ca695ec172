//! Per-step batch selection (SDK 0.3): each step, the host scores a sampler's
//! B candidates with a forward pass (evaluation mode, no gradient), the
//! sampler keeps some of them, and the step trains on those alone. What it
//! costs (the extra forward passes) and what was chosen are logged.

use std::time::Instant;

use tch::{Kind, Tensor};
use tessera_sdk::{Array, Candidates, Chosen};

use super::{per_example, to_vec_f32, Batch};
use crate::error::Result;
use crate::model::Model;

/// Chooses among a step's candidates: the sampler behind the host's checks.
pub type SelectHook<'a> = dyn FnMut(&Candidates) -> Result<Chosen> + 'a;

/// A per-step selection: B candidates per step and who chooses among them.
pub struct StepSelection<'a, 'b> {
    /// Candidates per step, B (at least `train.batch_size`).
    pub candidates: usize,
    /// The sampler's choice.
    pub choose: &'a mut SelectHook<'b>,
}

/// What per-step selection did in a run: its cost and its choices.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SelectionLog {
    /// Candidates scored by the extra forward passes.
    pub forward_examples: u64,
    /// Seconds of those forward passes (the sampler's choice included).
    pub forward_seconds: f64,
    /// The optimizer step each chosen example trained in, in training order.
    pub steps: Vec<u64>,
    /// The chosen examples' ids (positions in the stored order), aligned with `steps`.
    pub ids: Vec<u64>,
}

impl SelectionLog {
    /// Scores `batch`, asks `selection` to choose, logs the choice; the
    /// chosen examples (at most `limit` of them) and their step weights.
    pub fn select(
        &mut self,
        model: &Model,
        batch: &Batch,
        (step, epoch, batch_size): (u64, u64, usize),
        selection: &mut StepSelection,
        limit: usize,
    ) -> Result<(Batch, Option<Vec<f32>>)> {
        let started = Instant::now();
        let candidates = candidates(model, batch, step, epoch, batch_size)?;
        let mut chosen = (selection.choose)(&candidates)?;
        self.forward_examples += batch.ids.len() as u64;
        self.forward_seconds += started.elapsed().as_secs_f64();
        chosen.positions.truncate(limit.max(1));
        let (kept, weights) = narrow(batch, &chosen);
        self.steps.extend(std::iter::repeat_n(step, kept.ids.len()));
        self.ids.extend_from_slice(&kept.ids);
        Ok((kept, weights))
    }
}

/// The candidates of one step: ids, labels, losses and logits of `batch`
/// from a forward pass in evaluation mode, without a gradient.
fn candidates(model: &Model, batch: &Batch, step: u64, epoch: u64, batch_size: usize) -> Result<Candidates> {
    let logits = tch::no_grad(|| model.forward(&batch.x));
    let (losses, _) = per_example(&logits, &batch.y)?;
    let shape = vec![logits.size()[0] as u64, logits.size()[1] as u64];
    Ok(Candidates {
        step,
        epoch,
        batch_size: batch_size as u64,
        ids: batch.ids.clone().into(),
        labels: Vec::<i64>::try_from(&batch.y)?.into(),
        losses: losses.into(),
        logits: Array::f32(shape, to_vec_f32(&logits.to_kind(Kind::Float))?),
    })
}

/// The chosen rows of `batch` (in the order chosen) and their weights.
fn narrow(batch: &Batch, chosen: &Chosen) -> (Batch, Option<Vec<f32>>) {
    let positions: Vec<i64> = chosen.positions.iter().map(|&p| i64::from(p)).collect();
    let index = Tensor::from_slice(&positions).to_device(batch.x.device());
    let ids = positions.iter().map(|&p| batch.ids[p as usize]).collect();
    let kept = Batch { x: batch.x.index_select(0, &index), y: batch.y.index_select(0, &index), ids };
    let weights = chosen.weights.as_slice();
    let weights = (!weights.is_empty()).then(|| weights[..positions.len()].to_vec());
    (kept, weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chosen_rows_keep_their_features_labels_ids_and_weights() {
        let x = Tensor::from_slice(&[0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]).view([3, 2]);
        let batch = Batch { x, y: Tensor::from_slice(&[7i64, 8, 9]), ids: vec![30, 10, 20] };
        let (kept, weights) = narrow(&batch, &Chosen::positions(vec![2, 0]).weighted(vec![0.5, 2.0]));
        assert_eq!(kept.ids, vec![20, 30]);
        assert_eq!(Vec::<i64>::try_from(&kept.y).unwrap(), vec![9, 7]);
        assert_eq!(Vec::<f32>::try_from(kept.x.flatten(0, -1)).unwrap(), vec![4.0, 5.0, 0.0, 1.0]);
        assert_eq!(weights, Some(vec![0.5, 2.0]));
        assert_eq!(narrow(&batch, &Chosen::positions(vec![1])).1, None);
    }
}
