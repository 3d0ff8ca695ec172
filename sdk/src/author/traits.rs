//! The traits a plugin author implements: a component with its parameters,
//! and the four kinds (sampler, finetuner, metric, graph objective).

use serde::{de::DeserializeOwned, Serialize};

use crate::abi::ParamSpec;
use crate::types::{
    Candidates, Checkpoint, Chosen, GraphView, LayerInfo, ObservationRequest, Report, Sampling, Schedule, SeedChoice,
    Selection, StorageLayout,
};

use super::*;

/// A component's parameters: a serde struct with defaults. Write it with
/// [`crate::params!`], which also fills in [`Params::specs`].
pub trait Params: DeserializeOwned + Serialize + Default {
    /// The documented parameters, for `tessera plugins`.
    fn specs() -> Vec<ParamSpec>;
}

/// The parameters of a component that takes none.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

impl Params for NoParams {
    fn specs() -> Vec<ParamSpec> {
        Vec::new()
    }
}

/// What every component declares: its name, summary, parameters, constructor.
pub trait Component: Sized + Send + 'static {
    /// The name manifests use after the plugin's name: `plugin.NAME`.
    const NAME: &'static str;
    /// One line saying what it does.
    const SUMMARY: &'static str;
    /// Its parameters.
    type Params: Params;
    /// Builds the component from validated parameters; reject bad values with
    /// [`Error::invalid_param`].
    fn new(params: Self::Params) -> Result<Self>;

    /// Its state between calls, saved with a unit's checkpoint so that a
    /// stopped run continues bit for bit (SDK 0.4). Return
    /// [`State::Stateless`] if a new instance would continue as well,
    /// [`State::encode`] of what it keeps otherwise. The default,
    /// [`State::Unsupported`], makes a stopped unit that uses it start over
    /// from step 0 (with a warning naming it).
    fn save_state(&self) -> Result<State> {
        Ok(State::Unsupported)
    }

    /// Restores what [`Component::save_state`] saved, on a new instance
    /// built from the same parameters (only called for [`State::Saved`]).
    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let _ = bytes;
        Err(Error::msg(format!("{} saved a state it cannot load", Self::NAME)))
    }
}

/// A stream of example ids, yielded in chunks so that an order over a billion
/// examples never has to be one `Vec`.
pub type OrderStream = Box<dyn Iterator<Item = Vec<u64>> + Send>;

/// Decides the order in which training visits examples (CorgiPile,
/// shuffles, and adaptive samplers that learn from training).
///
/// **Contract, checked by the host:** every whole epoch's order visits the
/// ids in `0..layout.examples` as [`Sampler::sampling`] declares: each
/// exactly once ([`Sampling::Permutation`], the default), each at most once
/// ([`Sampling::Subset`]), or any of them any number of times
/// ([`Sampling::WithReplacement`]); an offline order is a permutation. An id
/// outside that range, a repeat or an omission the mode forbids, or an empty
/// order fails the variant with an error naming the sampler and the ids (the
/// variants before and after it keep their results).
///
/// **Training signal.** A sampler that returns observation requests from
/// [`Sampler::requires`] (the kinds metrics get, e.g. `loss` or
/// `predictions` on `train`) receives them in [`Sampler::observe`] before
/// every epoch's order, computed on the model as training left it (before
/// epoch 0: the initial model), with the run's [`Schedule`].
pub trait Sampler: Component {
    /// The visiting order of epoch `epoch` (0-based), in chunks.
    fn epoch_order(&mut self, layout: &StorageLayout, epoch: u64, host: &Host) -> Result<OrderStream>;

    /// How the epoch orders visit the examples (default: a permutation).
    fn sampling(&self) -> Sampling {
        Sampling::Permutation
    }

    /// The observations to receive before each epoch (default: none, and
    /// [`Sampler::observe`] is never called).
    fn requires(&self) -> Vec<ObservationRequest> {
        Vec::new()
    }

    /// Receives the requested observations before the order of epoch
    /// `checkpoint.epoch` (as a whole number).
    fn observe(
        &mut self,
        schedule: &Schedule,
        checkpoint: &Checkpoint,
        observations: &Observations,
        host: &Host,
    ) -> Result<()> {
        let _ = (schedule, checkpoint, observations, host);
        Ok(())
    }

    /// An order in which the host should rewrite the stored data once before
    /// training (Corgi²'s offline pass), or `None` (the default): a
    /// permutation of `0..layout.examples`.
    fn offline_order(&mut self, layout: &StorageLayout, host: &Host) -> Result<Option<OrderStream>> {
        let _ = (layout, host);
        Ok(None)
    }

    /// The weight of each example's loss in epoch `epoch`, by id (one per
    /// example of `layout`), asked right after that epoch's order; `None`
    /// (the default): every weight 1. The host multiplies each visited
    /// example's loss by its weight before the batch mean, so that
    /// importance sampling with w_i = 1/(N·p_i) is unbiased.
    ///
    /// **Contract, checked by the host:** one weight per example, each finite
    /// and at least 0; otherwise the variant fails naming the sampler.
    fn example_weights(&mut self, layout: &StorageLayout, epoch: u64, host: &Host) -> Result<Option<Vec<f32>>> {
        let _ = (layout, epoch, host);
        Ok(None)
    }

    /// Per-step selection: the number of candidates B to draw per step, or
    /// `None` (the default): train on the order's batches as they come.
    /// With B, the host takes B ids of the epoch order per step, computes
    /// their losses and logits without a gradient, and trains on the ones
    /// [`Sampler::select`] keeps (online batch selection, RHO-LOSS). B must
    /// be at least `train.batch_size`; an epoch is then one pass over the
    /// order's candidates, ⌈N/B⌉ steps.
    fn candidates(&self) -> Option<u32> {
        None
    }

    /// Chooses which of one step's candidates to train on (only called when
    /// [`Sampler::candidates`] is `Some`). See [`Chosen`] for the contract.
    fn select(&mut self, candidates: &Candidates, host: &Host) -> Result<Chosen> {
        let _ = host;
        Ok(Chosen::top(&candidates.losses, candidates.batch_size as usize))
    }

    /// Its figures after training (default: none), under its own role
    /// (`plugin.component`) as a metric's are, and with a metric's report
    /// contract.
    fn finish(&mut self, host: &Host) -> Result<Report> {
        let _ = host;
        Ok(Report::new())
    }
}

/// Decides which layers of a pretrained model train, and how fast (SubTuning,
/// surgical fine-tuning, baselines).
///
/// **Revising during training.** A finetuner that returns observation
/// requests from [`Finetuner::requires`] (e.g. `gradient-norms` and
/// `weight-norms` on `train`) receives them in [`Finetuner::revise`]
/// before every epoch, on the model as training left it, and may return a
/// new selection: other layers, or other learning-rate multipliers.
///
/// **Contract, checked by the host:** the selection names positions of
/// `layers` only; multipliers, if given, are one per tensor, finite and at
/// least 0; and its report keeps to [`Metric`]'s report contract and
/// uses none of the names the host adds in the `finetuner` role
/// (`search_seconds`, `trainable_blocks`, `trainable_parameters`, the
/// `oracle_*` and `cache_*` figures, the `oracle_calls` and
/// `trainable_layers` tables). A violation fails the variant, naming the
/// finetuner.
pub trait Finetuner: Component {
    /// Chooses the layers to train among `layers`, scoring candidates with
    /// `oracle` as needed.
    fn select(&mut self, layers: &[LayerInfo], oracle: &mut Oracle, host: &Host) -> Result<Selection>;

    /// The observations to receive before each epoch (default: none, and
    /// [`Finetuner::revise`] is never called).
    fn requires(&self) -> Vec<ObservationRequest> {
        Vec::new()
    }

    /// Receives the requested observations before epoch `checkpoint.epoch`
    /// (as a whole number); a new selection replaces the current one, `None`
    /// (the default) keeps it. A revision's `report` is not kept: report in
    /// [`Finetuner::finish`].
    fn revise(
        &mut self,
        checkpoint: &Checkpoint,
        observations: &Observations,
        host: &Host,
    ) -> Result<Option<Selection>> {
        let _ = (checkpoint, observations, host);
        Ok(None)
    }

    /// Its figures after training (default: none), under its own role with
    /// the report of its selection.
    fn finish(&mut self, host: &Host) -> Result<Report> {
        let _ = host;
        Ok(Report::new())
    }
}

/// Observes a run at checkpoints and reports figures.
///
/// **Contract, checked by the host:** `requires` names known splits and
/// observations (see [`crate::observation`]) that the manifest can provide
/// (`shifted` needs `[data.shift]`, `reference-predictions` a `[reference]`,
/// the `population-*` kinds a population experiment); `tessera check`
/// refuses the manifest otherwise, naming the metric. The report has unique,
/// non-empty names; finite scalars (use [`Report::defined`] for a figure
/// that can be undefined); series whose `x` and `y` are finite and of one
/// length; table rows as long as their header. A report that breaks this
/// fails the variant, naming the metric, and nothing of it is written.
pub trait Metric: Component {
    /// The observations it needs at each checkpoint. A panic here is
    /// reported as the component's failure, like a panic anywhere else.
    fn requires(&self) -> Vec<ObservationRequest>;
    /// Receives one checkpoint's observations.
    fn observe(&mut self, checkpoint: &Checkpoint, observations: &Observations, host: &Host) -> Result<()>;
    /// Reports its figures after the last checkpoint.
    fn finish(&mut self, host: &Host) -> Result<Report>;
}

/// Chooses seed sets on a graph (influence maximization and baselines).
///
/// **Contract, checked by the host:** at least one seed set; each of at
/// most `budget` distinct nodes of the graph; weights finite, non-negative
/// and summing to 1 (within 1e-6); a report that keeps to [`Metric`]'s
/// report contract and uses none of the names the host adds in the
/// `objective` role (`expected_spread`, `worst_case_*`, `graph_*`,
/// `seed_sets`, …). A violation fails the variant, naming the objective.
pub trait GraphObjective: Component {
    /// Chooses seed sets of at most `budget` nodes on `graph`.
    fn choose(&mut self, graph: &GraphView, budget: u32, host: &Host) -> Result<SeedChoice>;
}
