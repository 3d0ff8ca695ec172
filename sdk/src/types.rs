//! Plain data exchanged between the host and plugins. Every type here is
//! `#[repr(C)]` and `StableAbi`, built only from abi_stable's R-types.

use abi_stable::{
    std_types::{RSlice, RString, RVec},
    StableAbi,
};

/// How a dataset is laid out in storage, as a sampler sees it: `examples`
/// examples in blocks of `block_size` (the last block may be partial), each
/// block one storage request. Example `i` lives in block `i / block_size`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageLayout {
    /// Number of examples, N·b in the CorgiPile paper's notation (roughly).
    pub examples: u64,
    /// Examples per block, b.
    pub block_size: u64,
    /// Bytes one example takes on storage (for cost accounting).
    pub bytes_per_example: u64,
}

impl StorageLayout {
    /// Number of blocks, N = ⌈examples / b⌉.
    pub fn blocks(&self) -> u64 {
        if self.block_size == 0 {
            0
        } else {
            self.examples.div_ceil(self.block_size)
        }
    }

    /// The example ids of block `block` (the last block may be shorter).
    pub fn block_range(&self, block: u64) -> std::ops::Range<u64> {
        let start = block * self.block_size;
        start..(start + self.block_size).min(self.examples)
    }

    /// The block that holds example `example`.
    pub fn block_of(&self, example: u64) -> u64 {
        example / self.block_size
    }
}

/// One named layer (block) of a model, as a finetuner sees it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct LayerInfo {
    /// The block's name, e.g. `layer3.1`.
    pub name: RString,
    /// Number of parameters in the block.
    pub parameters: u64,
    /// Forward FLOPs of the block for one example.
    pub flops: u64,
    /// Position from the input (0 = first block).
    pub position: u32,
}

/// Which layers a finetuner chose to train, with its report.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Selection {
    /// Positions ([`LayerInfo::position`]) of the layers that train. The
    /// head (the last layer) always trains, listed or not.
    pub trainable: RVec<u32>,
    /// Whatever the finetuner wants in results.json (e.g. its search path).
    pub report: Report,
}

/// What a finetuner asks the host's oracle: train these layers, score them.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct OracleQuery {
    /// Positions of the layers to train; the head always trains.
    pub trainable: RVec<u32>,
    /// 1: train on the training split, score on the validation split;
    /// k > 1: k-fold cross-validation on the training split.
    pub folds: u32,
    /// Epochs each fold trains; 0: the manifest's `train.oracle_epochs`.
    pub epochs: u64,
}

impl OracleQuery {
    /// Layers `trainable`, scored on the validation split, for the
    /// manifest's `train.oracle_epochs`.
    pub fn new(trainable: &[u32]) -> Self {
        OracleQuery { trainable: trainable.to_vec().into(), folds: 1, epochs: 0 }
    }

    /// Scored by `folds`-fold cross-validation (1: the validation split).
    pub fn folds(mut self, folds: u32) -> Self {
        self.folds = folds;
        self
    }

    /// Each fold trains `epochs` epochs (0: the manifest's).
    pub fn epochs(mut self, epochs: u64) -> Self {
        self.epochs = epochs;
        self
    }
}

/// The oracle's answer to an [`OracleQuery`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Default)]
pub struct OracleAnswer {
    /// Mean held-out accuracy over the folds.
    pub accuracy: f64,
    /// Mean held-out cross-entropy over the folds.
    pub loss: f64,
    /// Each fold's held-out accuracy, in fold order.
    pub fold_accuracy: RVec<f64>,
    /// Each fold's held-out cross-entropy, in fold order.
    pub fold_loss: RVec<f64>,
    /// Epochs each fold trained.
    pub epochs: u64,
}

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
    pub const ALL: [&str; 23] = [
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

/// One cell of a [`Table`].
#[repr(C, u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub enum Cell {
    /// A real number.
    Number(f64),
    /// An integer.
    Integer(i64),
    /// Text.
    Text(RString),
}

/// A named number in a report.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Scalar {
    /// The figure's name, e.g. `test_accuracy`.
    pub name: RString,
    /// Its value.
    pub value: f64,
}

/// A curve y(x) in a report; the host plots every series.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Series {
    /// The curve's name, e.g. `test_accuracy`.
    pub name: RString,
    /// What x is, e.g. `step`.
    pub x_label: RString,
    /// What y is, e.g. `accuracy`.
    pub y_label: RString,
    /// The x values.
    pub x: RVec<f64>,
    /// The y values, as many as x.
    pub y: RVec<f64>,
}

/// A table in a report; the host writes each as CSV.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Table {
    /// The table's name (the CSV file's stem).
    pub name: RString,
    /// Column headers.
    pub columns: RVec<RString>,
    /// Rows, each as long as `columns`.
    pub rows: RVec<RVec<Cell>>,
}

/// A named array in a report; the host writes it as a `.npy` file.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct NamedArray {
    /// The file's stem: letters, digits, `_`, `-` and `.`.
    pub name: RString,
    /// The array.
    pub array: Array,
}

/// What a component reports: scalars, series and tables, all of which land
/// in results.json (series are also plotted, tables also written as CSV),
/// and arrays, written as `.npy` files of the run folder (for recomputing a
/// figure independently), listed in results.json by path.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Named numbers.
    pub scalars: RVec<Scalar>,
    /// Named curves.
    pub series: RVec<Series>,
    /// Named tables.
    pub tables: RVec<Table>,
    /// Named arrays (raw data behind a figure).
    pub arrays: RVec<NamedArray>,
    /// Names of the scalars that are the method's headline figures: the
    /// console summary and the run's report page show them first.
    pub headlines: RVec<RString>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a named number. The host refuses a report whose scalars are not
    /// finite or whose names repeat (the variant fails, naming the
    /// component): use [`Report::defined`] for a figure that can be undefined.
    pub fn scalar(&mut self, name: &str, value: f64) -> &mut Self {
        self.scalars.push(Scalar { name: name.into(), value });
        self
    }

    /// Adds a named number and marks it as a headline figure (what a reader
    /// of the paper looks for first; shown first in summaries).
    pub fn headline(&mut self, name: &str, value: f64) -> &mut Self {
        self.headlines.push(name.into());
        self.scalar(name, value)
    }

    /// [`Report::headline`] only where the number is defined (finite), as
    /// [`Report::defined`].
    pub fn defined_headline(&mut self, name: &str, value: f64) -> &mut Self {
        if value.is_finite() {
            self.headline(name, value);
        }
        self
    }

    /// Adds a named number only where it is defined (finite): a mean of
    /// nothing or a ratio over zero is left out of the report, not written
    /// as NaN.
    pub fn defined(&mut self, name: &str, value: f64) -> &mut Self {
        if value.is_finite() {
            self.scalar(name, value);
        }
        self
    }

    /// Adds a curve; panics if `x` and `y` differ in length.
    pub fn series(&mut self, name: &str, x_label: &str, y_label: &str, x: Vec<f64>, y: Vec<f64>) -> &mut Self {
        assert_eq!(x.len(), y.len(), "series {name}: x and y differ in length");
        self.series.push(Series {
            name: name.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x: x.into(),
            y: y.into(),
        });
        self
    }

    /// Adds an array, saved as `arrays/<variant>/<role>--<name>.npy` in the
    /// run folder. The host refuses a name other than letters, digits, `_`,
    /// `-` and `.`, or repeated.
    pub fn array(&mut self, name: &str, array: Array) -> &mut Self {
        self.arrays.push(NamedArray { name: name.into(), array });
        self
    }

    /// Adds a table; panics if a row's length differs from the header's.
    pub fn table(&mut self, name: &str, columns: &[&str], rows: Vec<Vec<Cell>>) -> &mut Self {
        for row in &rows {
            assert_eq!(row.len(), columns.len(), "table {name}: row length differs from header");
        }
        self.tables.push(Table {
            name: name.into(),
            columns: columns.iter().map(|c| RString::from(*c)).collect(),
            rows: rows.into_iter().map(RVec::from).collect(),
        });
        self
    }
}

/// A directed graph in CSR form, borrowed from the host: the out-edges of node
/// `u` are `targets[offsets[u]..offsets[u+1]]`, with `probabilities` (the
/// independent-cascade p_uv of each edge, same indexing) where the host has them.
/// The host also lends the in-edges (the reverse CSR, built once per graph
/// and shared by every variant on it): the in-neighbours of `v` are
/// `in_sources[in_offsets[v]..in_offsets[v+1]]`, with `in_probabilities`.
///
/// Where every edge into a node has the same probability (weighted cascade:
/// 1 / indeg(v); uniform: p), the host lends that one value per node as
/// `target_probabilities` instead, and `probabilities` and
/// `in_probabilities` are empty: 4n bytes instead of 8m.
/// [`GraphView::edge_probabilities`] and [`GraphView::probability`] read
/// either form.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct GraphView<'a> {
    /// Number of nodes n.
    pub nodes: u64,
    /// CSR offsets, n + 1 of them.
    pub offsets: RSlice<'a, u64>,
    /// Edge targets, m of them.
    pub targets: RSlice<'a, u32>,
    /// Edge probabilities p_uv, m of them, or empty.
    pub probabilities: RSlice<'a, f32>,
    /// Reverse CSR offsets, n + 1 of them, or empty where the host built none.
    pub in_offsets: RSlice<'a, u64>,
    /// Edge sources in reverse CSR order (by target, then source), m of them, or empty.
    pub in_sources: RSlice<'a, u32>,
    /// p_uv in reverse CSR order, m of them, or empty.
    pub in_probabilities: RSlice<'a, f32>,
    /// p_uv = `target_probabilities[v]` for every edge into v, n of them, or
    /// empty (then the per-edge `probabilities` hold the model).
    pub target_probabilities: RSlice<'a, f32>,
    /// Dimension d of the node features.
    pub feature_dim: u32,
    /// Node features x_u, n·d of them, row-major, or empty.
    pub features: RSlice<'a, f32>,
    /// Hyperparametric model: the centre θ_c of the box Θ = θ_c + [−B, B]^{2d}
    /// of edge-probability parameters (2d values; `probabilities` are p at
    /// θ_c); empty when the probabilities are fixed.
    pub theta_center: RSlice<'a, f32>,
    /// Hyperparametric model: the box radius B.
    pub theta_radius: f64,
}

impl<'a> GraphView<'a> {
    /// Number of edges m.
    pub fn edges(&self) -> u64 {
        self.targets.len() as u64
    }

    /// Out-degree of node `u`.
    pub fn out_degree(&self, u: u32) -> u64 {
        self.offsets[u as usize + 1] - self.offsets[u as usize]
    }

    /// Out-neighbours of node `u`.
    pub fn out_neighbors(&self, u: u32) -> &[u32] {
        let (a, b) = (self.offsets[u as usize] as usize, self.offsets[u as usize + 1] as usize);
        &self.targets.as_slice()[a..b]
    }

    /// Whether the host lent the in-edges (`in_offsets`, `in_sources`).
    pub fn has_in_edges(&self) -> bool {
        self.in_offsets.len() as u64 == self.nodes + 1 && self.in_sources.len() == self.targets.len()
    }

    /// In-neighbours of node `v`; panics if the host lent no in-edges.
    pub fn in_neighbors(&self, v: u32) -> &[u32] {
        let (a, b) = (self.in_offsets[v as usize] as usize, self.in_offsets[v as usize + 1] as usize);
        &self.in_sources.as_slice()[a..b]
    }

    /// Whether the host lent edge probabilities, in either form.
    pub fn has_probabilities(&self) -> bool {
        self.target_probabilities.len() as u64 == self.nodes || self.probabilities.len() == self.targets.len()
    }

    /// p_uv of out-edge `edge` (its index into `targets`); 0 where the host
    /// lent no probabilities.
    pub fn probability(&self, edge: usize) -> f32 {
        let per_target = self.target_probabilities.as_slice();
        let per_edge = self.probabilities.as_slice();
        match per_target.is_empty() {
            false => per_target[self.targets[edge] as usize],
            true => per_edge.get(edge).copied().unwrap_or(0.0),
        }
    }

    /// p_uv of every out-edge in CSR order: the lent slice, or made from
    /// `target_probabilities` (m values) where the host lent those.
    pub fn edge_probabilities(&self) -> std::borrow::Cow<'a, [f32]> {
        let per_target = self.target_probabilities.as_slice();
        if per_target.is_empty() {
            return std::borrow::Cow::Borrowed(self.probabilities.as_slice());
        }
        std::borrow::Cow::Owned(self.targets.iter().map(|&v| per_target[v as usize]).collect())
    }

    /// Whether the edge probabilities come from a hyperparametric model
    /// (then [`GraphView::probabilities_at`] gives them for any θ).
    pub fn is_hyperparametric(&self) -> bool {
        !self.theta_center.is_empty()
    }

    /// The hyperparametric edge probabilities at `theta` (2d values):
    /// p_uv = σ(θᵀ [x_u; x_v]) for every edge, in CSR order. Panics if `theta`
    /// does not have 2d values.
    pub fn probabilities_at(&self, theta: &[f32]) -> Vec<f32> {
        let d = self.feature_dim as usize;
        assert_eq!(theta.len(), 2 * d, "θ has 2d = {} values", 2 * d);
        let mut out = Vec::with_capacity(self.targets.len());
        for u in 0..self.nodes as u32 {
            let xu = self.half_score(&theta[..d], u);
            out.extend(self.out_neighbors(u).iter().map(|&v| sigmoid(xu + self.half_score(&theta[d..], v))));
        }
        out
    }

    /// θ_halfᵀ x_u, for one half (d values) of θ.
    fn half_score(&self, theta_half: &[f32], u: u32) -> f32 {
        let d = self.feature_dim as usize;
        let x = &self.features.as_slice()[u as usize * d..(u as usize + 1) * d];
        theta_half.iter().zip(x).map(|(t, x)| t * x).sum()
    }
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// A seed set with its probability in a (possibly randomized) solution.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct WeightedSeeds {
    /// Probability of playing this set; the weights of a choice sum to 1.
    pub weight: f64,
    /// The seed nodes.
    pub seeds: RVec<u32>,
}

/// A graph objective's answer: a distribution over seed sets (one set with
/// weight 1 for a deterministic method), with its report.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct SeedChoice {
    /// The seed sets and their weights.
    pub sets: RVec<WeightedSeeds>,
    /// Whatever the objective wants in results.json.
    pub report: Report,
}

impl SeedChoice {
    /// A deterministic answer: one seed set.
    pub fn single(seeds: Vec<u32>, report: Report) -> Self {
        SeedChoice { sets: vec![WeightedSeeds { weight: 1.0, seeds: seeds.into() }].into(), report }
    }
}
