//! What metrics and samplers observe: the observation kinds, arrays,
//! requests, checkpoints, and the training schedule and sampling mode.

use abi_stable::{
    std_types::{RString, RVec},
    StableAbi,
};

/// Names of the observations the host can hand to metrics.
pub mod observation {
    /// Hard predictions (argmax), `i64`, shape `[n]`.
    pub const PREDICTIONS: &str = "predictions";
    /// True labels, `i64`, shape `[n]`.
    pub const LABELS: &str = "labels";
    /// Softmax probabilities, `f32`, shape `[n, classes]`.
    pub const PROBABILITIES: &str = "probabilities";
    /// Logits, `f32`, shape `[n, classes]`.
    pub const LOGITS: &str = "logits";
    /// Penultimate-layer features, `f32`, shape `[n, d]`.
    pub const FEATURES: &str = "features";
    /// Per-example loss, `f32`, shape `[n]`.
    pub const LOSS: &str = "loss";
    /// Ids of the examples in the order of the other arrays, `i64`, shape
    /// `[n]`. On `train`, the id is the example's position in the stored
    /// order as first written, so it stays the example's id after a
    /// sampler's offline pass (Corgi²) rewrites the order, and per-example
    /// tables of different variants join on it.
    pub const EXAMPLE_IDS: &str = "example-ids";
    /// `train` only: each example's position in the stored order now (after
    /// any offline rewrite), `i64`, shape `[n]`.
    pub const STORED_POSITIONS: &str = "stored-positions";
    /// `train` only: the labels before `train.label_noise` flipped some
    /// (equal to `labels` without label noise), `i64`, shape `[n]`.
    pub const CLEAN_LABELS: &str = "clean-labels";
    /// `train` only, per step: every example trained since the last
    /// checkpoint, in training order, by its id (as `example-ids`), `i64`,
    /// shape `[k]`. With `step-index`, `step-loss` and `step-correct`, what
    /// happened to each example when it was trained (forgetting events,
    /// learning speed), from the training forward pass itself.
    pub const STEP_IDS: &str = "step-ids";
    /// `train` only, per step: the optimizer step (0-based) each of
    /// `step-ids` was trained in, `i64`, shape `[k]`.
    pub const STEP_INDEX: &str = "step-index";
    /// `train` only, per step: each of `step-ids`' loss in its training
    /// forward pass (before the step's update), `f32`, shape `[k]`.
    pub const STEP_LOSS: &str = "step-loss";
    /// `train` only, per step: whether that forward pass classified each of
    /// `step-ids` correctly (against its training label), `i64` 0/1, shape `[k]`.
    pub const STEP_CORRECT: &str = "step-correct";
    /// The per-step observations: asking for one records all four.
    pub const STEP_KINDS: [&str; 4] = [STEP_IDS, STEP_INDEX, STEP_LOSS, STEP_CORRECT];
    /// `train` only: the example ids visited so far in the current epoch, in
    /// visiting order (the whole epoch at its end), `i64`, shape `[k]`.
    pub const ORDER: &str = "order";
    /// `train` only: the storage block of each stored example, `i64`, shape `[n]`.
    pub const BLOCK_IDS: &str = "block-ids";
    /// Hard predictions of the manifest's `[reference]` classifier L (trained
    /// once before the run, so the same at every checkpoint), `i64`, shape `[n]`.
    pub const REFERENCE_PREDICTIONS: &str = "reference-predictions";
    /// Each example's cross-entropy loss under the `[reference]` classifier
    /// (against the split's labels), `f32`, shape `[n]`. With
    /// `reference.data = "validation"` it is RHO-LOSS's irreducible loss of
    /// each training example.
    pub const REFERENCE_LOSS: &str = "reference-loss";
    /// Every weight tensor's gradient norm ‖∂L/∂θ_t‖₂, where L is the mean
    /// loss over the split (its labels) at the model as training left it,
    /// for every tensor, trainable or frozen, in the order of
    /// [`crate::LayerInfo::tensors`] over the layers; `f32`, shape `[tensors]`.
    /// Computed only when asked (a forward and backward pass over the split).
    pub const GRADIENT_NORMS: &str = "gradient-norms";
    /// Every weight tensor's norm ‖θ_t‖₂, in the order of
    /// [`GRADIENT_NORMS`]; `f32`, shape `[tensors]`.
    pub const WEIGHT_NORMS: &str = "weight-norms";
    /// Each example's gradient norm with respect to the last layer's weights
    /// and bias, ‖∂ℓ_i/∂(W, b)‖₂ = ‖softmax(z_i) − e_{y_i}‖₂ · √(‖h_i‖² + 1)
    /// (h_i its features): GraNd's score restricted to the last layer;
    /// `f32`, shape `[n]`.
    pub const LAST_LAYER_GRADIENT_NORMS: &str = "last-layer-gradient-norms";
    /// Population experiments only: a_z(θ) = 1[f_θ(x_z) = y_z] for every member
    /// θ (rows) and point z (columns) of the split, `f32` 0/1, shape `[m, n]`.
    pub const POPULATION_CORRECT: &str = "population-correct";
    /// Population experiments only: each member's softmax probability of the
    /// true label at each point, `f32`, shape `[m, n]`.
    pub const POPULATION_TRUE_PROBABILITY: &str = "population-true-probability";
    /// Population experiments only: the training run each member comes from
    /// (checkpoints of one run share it), `i64`, shape `[m]`. Hold out whole
    /// runs, not members, when a protocol needs two independent halves.
    pub const POPULATION_RUN: &str = "population-run";
    /// Population experiments only: each member's softmax outputs on each
    /// point (kept with `population.probabilities = true`), `f32`, shape `[m, n, classes]`.
    pub const POPULATION_PROBABILITIES: &str = "population-probabilities";
    /// Population experiments only: one row per member, `i64`, shape `[m, 6]`:
    /// run, setting (index in `population.settings`), seed, step, examples
    /// seen, batch size.
    pub const POPULATION_MEMBERS: &str = "population-members";
    /// Population experiments only: each member's hard predictions (argmax)
    /// on each point, `i64`, shape `[m, n]`.
    pub const POPULATION_PREDICTIONS: &str = "population-predictions";
    /// Population experiments with label noise in a setting: the training
    /// labels each member was trained on (noised with its run's seed), `i64`,
    /// shape `[m, n_train]`; the split's `labels` are the clean ones.
    pub const POPULATION_TRAIN_LABELS: &str = "population-train-labels";
    /// The observations of population experiments (with `labels` and `example-ids`).
    pub const POPULATION_KINDS: [&str; 9] = [
        POPULATION_CORRECT,
        POPULATION_PREDICTIONS,
        POPULATION_TRAIN_LABELS,
        POPULATION_TRUE_PROBABILITY,
        POPULATION_PROBABILITIES,
        POPULATION_RUN,
        POPULATION_MEMBERS,
        LABELS,
        EXAMPLE_IDS,
    ];
    /// Every name above.
    pub const ALL: [&str; 27] = [
        STEP_IDS,
        STEP_INDEX,
        STEP_LOSS,
        STEP_CORRECT,
        PREDICTIONS,
        LABELS,
        PROBABILITIES,
        LOGITS,
        FEATURES,
        LOSS,
        EXAMPLE_IDS,
        STORED_POSITIONS,
        CLEAN_LABELS,
        ORDER,
        BLOCK_IDS,
        REFERENCE_PREDICTIONS,
        REFERENCE_LOSS,
        GRADIENT_NORMS,
        WEIGHT_NORMS,
        LAST_LAYER_GRADIENT_NORMS,
        POPULATION_CORRECT,
        POPULATION_TRUE_PROBABILITY,
        POPULATION_RUN,
        POPULATION_PROBABILITIES,
        POPULATION_MEMBERS,
        POPULATION_PREDICTIONS,
        POPULATION_TRAIN_LABELS,
    ];
}

/// The element data of an [`Array`].
#[repr(C, u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub enum ArrayData {
    /// 32-bit floats.
    F32(RVec<f32>),
    /// 64-bit integers.
    I64(RVec<i64>),
}

/// A dense row-major array with its shape.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Array {
    /// Extent of each dimension; the product is the number of elements.
    pub shape: RVec<u64>,
    /// The elements.
    pub data: ArrayData,
}

impl Array {
    /// A float array; panics if `shape` does not match `data.len()`.
    pub fn f32(shape: Vec<u64>, data: Vec<f32>) -> Self {
        assert_eq!(shape.iter().product::<u64>(), data.len() as u64, "shape does not match data");
        Array { shape: shape.into(), data: ArrayData::F32(data.into()) }
    }

    /// An integer array; panics if `shape` does not match `data.len()`.
    pub fn i64(shape: Vec<u64>, data: Vec<i64>) -> Self {
        assert_eq!(shape.iter().product::<u64>(), data.len() as u64, "shape does not match data");
        Array { shape: shape.into(), data: ArrayData::I64(data.into()) }
    }

    /// The elements as floats, if they are floats.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            ArrayData::F32(v) => Some(v.as_slice()),
            ArrayData::I64(_) => None,
        }
    }

    /// The elements as integers, if they are integers.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            ArrayData::I64(v) => Some(v.as_slice()),
            ArrayData::F32(_) => None,
        }
    }

    /// Number of elements held.
    pub fn len(&self) -> usize {
        match &self.data {
            ArrayData::F32(v) => v.len(),
            ArrayData::I64(v) => v.len(),
        }
    }

    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of rows (the first dimension; 1 for a scalar).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1) as usize
    }
}

/// One array observed at a checkpoint: `kind` (see [`observation`]) on `split`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Observation {
    /// The data split, e.g. `test` or `validation`.
    pub split: RString,
    /// What it is, one of [`observation::ALL`].
    pub kind: RString,
    /// The values.
    pub array: Array,
}

/// An observation a metric asks for.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct ObservationRequest {
    /// The data split, e.g. `test`.
    pub split: RString,
    /// What it is, one of [`observation::ALL`].
    pub kind: RString,
}

impl ObservationRequest {
    /// The `split` of the one request a metric's `requires` returns when it
    /// panicked (its `kind` is the panic message): the return type of
    /// `requires` cannot carry an error, so the SDK reports a panic this way
    /// and the host fails the variant, naming the component.
    pub const PANICKED: &'static str = "!panicked";

    /// Asks for `kind` on `split`.
    pub fn new(split: &str, kind: &str) -> Self {
        ObservationRequest { split: split.into(), kind: kind.into() }
    }
}

/// Where training stands when metrics observe it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq)]
pub struct Checkpoint {
    /// Optimizer steps taken so far, t.
    pub step: u64,
    /// Epochs completed so far (fractional within an epoch).
    pub epoch: f64,
    /// Training examples seen so far.
    pub examples_seen: u64,
    /// Whether this is the last checkpoint of the run.
    pub is_final: bool,
}

/// How a sampler's epoch orders visit the stored examples. The host checks
/// the two exact modes and counts visits in every mode (the `engine` role's
/// `visits_per_epoch`, `distinct_per_epoch`, `examples_never_seen`).
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sampling {
    /// Every example exactly once per epoch (checked; a violation fails the variant).
    #[default]
    Permutation,
    /// Each example at most once per epoch: a subset (curricula, data
    /// pruning). Checked: an id twice in one epoch fails the variant.
    Subset,
    /// Any ids, any number of times per epoch (importance sampling); the
    /// epoch is as long as the order.
    WithReplacement,
}

/// The training schedule a sampler plans by.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Epochs of the run.
    pub epochs: u64,
    /// Examples per minibatch.
    pub batch_size: u64,
    /// Optimizer steps of an epoch that visits every stored example once.
    pub steps_per_epoch: u64,
}
