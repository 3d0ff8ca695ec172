//! A `train` unit's saved state: what the engine keeps during a fit besides
//! the loop's own state (the curve, the step logs, the components' states,
//! libtorch's generator), and how it is written beside the model and the
//! optimizer into the unit's [`UnitCheckpoints`], and read back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tessera_sdk::{SavedState, StateKind};

use crate::error::{invalid, Result};
use crate::run::checkpoints::{Saved, UnitCheckpoints};
use crate::train::{CurvePoint, FitState, StepLog};

/// The model's weights in a saved state.
pub(super) const MODEL: &str = "model.safetensors";
/// The optimizer's state in a saved state.
pub(super) const OPTIMIZER: &str = "optimizer.pt";
/// Everything else, CBOR-encoded [`UnitState`].
pub(in crate::run) const STATE: &str = "state.cbor";

/// A component's state as saved: nothing to keep, or its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) enum Kept {
    /// A new instance continues as well.
    Stateless,
    /// What it saved.
    Bytes(Vec<u8>),
}

impl Kept {
    /// From what a component returned; `None` when it cannot save its state.
    pub(super) fn from_saved(saved: SavedState) -> Option<Kept> {
        match saved.kind {
            StateKind::Stateless => Some(Kept::Stateless),
            StateKind::Saved => Some(Kept::Bytes(saved.bytes.into_vec())),
            StateKind::Unsupported => None,
        }
    }

    /// The bytes to load, if any.
    pub(super) fn bytes(&self) -> Option<&[u8]> {
        match self {
            Kept::Stateless => None,
            Kept::Bytes(bytes) => Some(bytes),
        }
    }
}

/// What a `train` unit keeps besides the model and the optimizer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct UnitState {
    /// The training loop's state.
    pub fit: FitState,
    /// libtorch's CPU generator.
    pub rng: Vec<u8>,
    /// The test curve so far.
    pub curve: Vec<CurvePoint>,
    /// (step, examples seen) at the last checkpoint the metrics observed.
    pub progress: (u64, u64),
    /// The step logs not yet observed, by observer.
    pub metric_steps: StepLog,
    pub sampler_steps: StepLog,
    pub finetuner_steps: StepLog,
    /// The sampler as it was when asked for the stopped epoch's order.
    pub sampler_at_epoch: Kept,
    /// The sampler now.
    pub sampler: Kept,
    /// Each metric, in the manifest's order.
    pub metrics: Vec<Kept>,
    /// A finetuner that revises its selection during training.
    pub finetuner: Option<FinetunerState>,
}

/// A revising finetuner's part of a saved state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct FinetunerState {
    /// What it saved.
    pub kept: Kept,
    /// Each selection in force so far, from the epoch it started at.
    pub revisions: Vec<(f64, Vec<f32>)>,
    /// The selection in force when saved.
    pub in_force: super::finetune::InForce,
}

/// Where a unit saves its states, how often, and the state it continues from.
pub(in crate::run) struct Resuming {
    /// The unit's saved states.
    pub store: UnitCheckpoints,
    /// What they must have been saved from.
    pub fingerprint: String,
    /// The interval between saves (none: only when stopped).
    pub every: Option<Duration>,
}

impl Resuming {
    /// The unit's saved states and their interval (`checkpoint_minutes`).
    pub(in crate::run) fn new(store: UnitCheckpoints, variant: &crate::manifest::Variant) -> Self {
        let minutes = variant.settings.experiment.checkpoint_minutes;
        let every = (minutes > 0.0).then(|| Duration::from_secs_f64(minutes * 60.0));
        Resuming { store, fingerprint: fingerprint(variant), every }
    }

    /// The newest saved state of this unit that checks out, decoded.
    pub(super) fn load(&self) -> Result<Option<(UnitState, Saved)>> {
        let Some(saved) = self.store.newest(&self.fingerprint) else { return Ok(None) };
        let bytes = self.store.read(&saved, STATE)?;
        let state: UnitState = ciborium::from_reader(bytes.as_slice())
            .map_err(|e| invalid!("{}: not a training state: {e}", saved.dir.join(STATE).display()))?;
        Ok(Some((state, saved)))
    }

    /// Saves `state` with the model's and the optimizer's files, which `write_tensors` writes.
    pub(super) fn save(
        &self,
        state: &UnitState,
        write_tensors: impl FnOnce(&Path, &Path) -> tessera_torch::Result<()>,
    ) -> Result<()> {
        let mut bytes = Vec::new();
        ciborium::into_writer(state, &mut bytes).map_err(|e| invalid!("encoding the training state: {e}"))?;
        let files: [(&str, &[u8]); 1] = [(STATE, &bytes)];
        self.store.save((state.fit.step, &self.fingerprint), &files, |dir| {
            Ok(write_tensors(&dir.join(MODEL), &dir.join(OPTIMIZER))?)
        })
    }
}

/// The optimizer's file of a saved state.
pub(super) fn optimizer_file(saved: &Saved) -> PathBuf {
    saved.dir.join(OPTIMIZER)
}

/// What a unit's saved states must match: the variant as resolved (every
/// setting and component) and this Tessera's version.
fn fingerprint(variant: &crate::manifest::Variant) -> String {
    let text = format!("{}|{}|{variant:?}", env!("CARGO_PKG_VERSION"), tessera_sdk::SDK_VERSION);
    format!("{:016x}", crate::run::checkpoints::fnv64(text.as_bytes()))
}
