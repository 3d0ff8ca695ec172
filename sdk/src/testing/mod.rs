//! Test a plugin without the host: a host for calls, observation builders,
//! layouts, checkpoints and schedules, a scripted finetuning oracle, and
//! components built and called through the host's own path ([`sampler`],
//! [`metric`]: TOML parameters, constructor, boundary adapter, the report
//! contract).
//!
//! ```
//! use tessera_sdk::testing::{self, TestHost};
//! use tessera_sdk::observation;
//!
//! let host = TestHost::new(7);
//! let losses = testing::f32_observation("train", observation::LOSS, vec![0.5, 2.0]);
//! let observations = [losses];
//! let view = testing::observations(&observations);
//! assert_eq!(view.f32("train", observation::LOSS).unwrap(), &[0.5, 2.0]);
//! assert_eq!(host.host().seed(), 7);
//! ```

use abi_stable::std_types::{ROk, RResult, RSlice};

mod boundary;

pub use boundary::{metric, sampler, BoundaryMetric, BoundarySampler};

use crate::GraphView;

use crate::abi::PluginError;
use crate::ffi::{HostServices, OracleServices};
use crate::{
    Array, Checkpoint, Host, Observation, Observations, Oracle, OracleAnswer, OracleQuery, OrderStream, Schedule,
    StorageLayout,
};

/// The host's services for calls made in a test: a fixed seed, no progress
/// display, never cancelled.
pub struct TestHost {
    services: HostServices,
}

impl TestHost {
    /// A host whose calls get `seed`.
    pub fn new(seed: u64) -> Self {
        TestHost { services: HostServices::detached(seed) }
    }

    /// The [`Host`] to pass to a component's call.
    pub fn host(&self) -> Host<'_> {
        Host::new(&self.services)
    }
}

/// A one-dimensional float observation of `kind` on `split`.
pub fn f32_observation(split: &str, kind: &str, values: Vec<f32>) -> Observation {
    Observation { split: split.into(), kind: kind.into(), array: Array::f32(vec![values.len() as u64], values) }
}

/// A one-dimensional integer observation of `kind` on `split`.
pub fn i64_observation(split: &str, kind: &str, values: Vec<i64>) -> Observation {
    Observation { split: split.into(), kind: kind.into(), array: Array::i64(vec![values.len() as u64], values) }
}

/// An observation of `kind` on `split` of any shape: e.g. `logits` as
/// `[examples, classes]`, or a population's `[members, examples]`
/// predictions. Panics if `shape` does not match the values.
pub fn observation_of(split: &str, kind: &str, array: Array) -> Observation {
    Observation { split: split.into(), kind: kind.into(), array }
}

/// A float observation of `shape` (row-major `values`).
pub fn f32_observation_nd(split: &str, kind: &str, shape: &[u64], values: Vec<f32>) -> Observation {
    observation_of(split, kind, Array::f32(shape.to_vec(), values))
}

/// An integer observation of `shape` (row-major `values`).
pub fn i64_observation_nd(split: &str, kind: &str, shape: &[u64], values: Vec<i64>) -> Observation {
    observation_of(split, kind, Array::i64(shape.to_vec(), values))
}

/// The view a component's `observe` gets of `items`.
pub fn observations(items: &[Observation]) -> Observations<'_> {
    Observations::new(items)
}

/// A layout of `examples` examples in blocks of `block_size` (8 bytes an example).
pub fn layout(examples: u64, block_size: u64) -> StorageLayout {
    StorageLayout { examples, block_size, bytes_per_example: 8 }
}

/// The checkpoint before epoch `epoch` (or at its end, for a metric).
pub fn checkpoint(epoch: u64) -> Checkpoint {
    Checkpoint { step: 0, epoch: epoch as f64, examples_seen: 0, is_final: false }
}

/// The schedule of `epochs` epochs of `examples` examples in batches of `batch_size`.
pub fn schedule(epochs: u64, batch_size: u64, examples: u64) -> Schedule {
    Schedule { epochs, batch_size, steps_per_epoch: examples.div_ceil(batch_size.max(1)) }
}

/// A graph in CSR form (`offsets`: n + 1 of them; `targets`: the out-edges,
/// with `probabilities`, one per edge or none), without node features. It
/// lends no in-edges (as a host may not): a component that uses them builds
/// its own here.
pub fn graph<'a>(offsets: &'a [u64], targets: &'a [u32], probabilities: &'a [f32]) -> GraphView<'a> {
    GraphView {
        nodes: offsets.len().saturating_sub(1) as u64,
        offsets: RSlice::from_slice(offsets),
        targets: RSlice::from_slice(targets),
        probabilities: RSlice::from_slice(probabilities),
        in_offsets: RSlice::from_slice(&[]),
        in_sources: RSlice::from_slice(&[]),
        in_probabilities: RSlice::from_slice(&[]),
        target_probabilities: RSlice::from_slice(&[]),
        feature_dim: 0,
        features: RSlice::from_slice(&[]),
        theta_center: RSlice::from_slice(&[]),
        theta_radius: 0.0,
    }
}

/// [`graph`] with one probability per target node, as a host lends weighted
/// cascade and uniform models: p_uv = `target_probabilities[v]`.
pub fn graph_per_target<'a>(offsets: &'a [u64], targets: &'a [u32], target_probabilities: &'a [f32]) -> GraphView<'a> {
    GraphView { target_probabilities: RSlice::from_slice(target_probabilities), ..graph(offsets, targets, &[]) }
}

/// Every id of an order, chunks joined.
pub fn collect_order(order: OrderStream) -> Vec<u64> {
    order.flatten().collect()
}

/// A finetuning oracle whose answers come from a closure, for driving a
/// finetuner in a test.
pub struct ScriptedOracle {
    /// Boxed twice, so the address the services point at stays put when this moves.
    answer: Box<AnswerFn>,
    services: OracleServices,
    /// Every query asked, in order.
    pub queries: Vec<OracleQuery>,
}

type AnswerFn = Box<dyn FnMut(&OracleQuery) -> OracleAnswer>;

/// What the services' context points at: the closure and the query log.
struct Script<'a> {
    answer: &'a mut AnswerFn,
    queries: &'a mut Vec<OracleQuery>,
}

extern "C" fn scripted_ask(context: *mut (), query: &OracleQuery) -> RResult<OracleAnswer, PluginError> {
    // SAFETY: `context` is the `Script` that `ScriptedOracle::with_oracle`
    // built on its stack, alive and not otherwise borrowed during the call.
    let script = unsafe { &mut *(context as *mut Script) };
    script.queries.push(query.clone());
    ROk((script.answer)(query))
}

impl ScriptedOracle {
    /// An oracle whose every fold scores `score(trainable, folds)` (loss: 1 − score).
    pub fn new(mut score: impl FnMut(&[u32], u32) -> f64 + 'static) -> Self {
        Self::answering(move |query| {
            let accuracy = score(query.trainable.as_slice(), query.folds);
            let folds = query.folds.max(1) as usize;
            OracleAnswer {
                accuracy,
                loss: 1.0 - accuracy,
                fold_accuracy: vec![accuracy; folds].into(),
                fold_loss: vec![1.0 - accuracy; folds].into(),
                epochs: query.epochs,
            }
        })
    }

    /// An oracle that answers each query with `answer(query)`.
    pub fn answering(answer: impl FnMut(&OracleQuery) -> OracleAnswer + 'static) -> Self {
        let services = OracleServices { context: std::ptr::null_mut(), ask: scripted_ask };
        ScriptedOracle { answer: Box::new(Box::new(answer)), services, queries: Vec::new() }
    }

    /// Runs `f` with the [`Oracle`] to pass to a finetuner's `select`.
    pub fn with_oracle<R>(&mut self, f: impl FnOnce(&mut Oracle) -> R) -> R {
        let mut script = Script { answer: &mut self.answer, queries: &mut self.queries };
        self.services.context = &mut script as *mut Script as *mut ();
        let result = f(&mut Oracle::new(&mut self.services));
        self.services.context = std::ptr::null_mut();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scripted_oracle_answers_from_its_closure_and_logs_the_queries() {
        let mut oracle = ScriptedOracle::new(|trainable, folds| trainable.len() as f64 + folds as f64 / 10.0);
        assert_eq!(oracle.with_oracle(|o| o.score(&[0, 2], 3)).unwrap(), 2.3);
        let mut moved = oracle;
        let answer = moved.with_oracle(|o| o.ask(&OracleQuery::new(&[1]).folds(2).epochs(4))).unwrap();
        assert_eq!((answer.accuracy, answer.fold_accuracy.len(), answer.epochs), (1.2, 2, 4));
        assert_eq!(moved.queries.len(), 2);
        assert_eq!((moved.queries[1].folds, moved.queries[1].epochs), (2, 4));
    }

    #[test]
    fn builders_make_what_a_component_reads() {
        let items = [i64_observation("train", "labels", vec![1, 0])];
        assert_eq!(observations(&items).i64("train", "labels").unwrap(), &[1, 0]);
        assert_eq!(layout(10, 4).blocks(), 3);
        assert_eq!(schedule(2, 3, 10).steps_per_epoch, 4);
        assert_eq!(collect_order(Box::new(vec![vec![1, 2], vec![0]].into_iter())), vec![1, 2, 0]);
        assert_eq!(TestHost::new(5).host().seed(), 5);
        let g = graph(&[0, 2, 3, 3], &[1, 2, 0], &[]);
        assert_eq!((g.nodes, g.edges(), g.out_degree(0)), (3, 3, 2));
        let logits = f32_observation_nd("test", "logits", &[2, 3], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(logits.array.shape.as_slice(), &[2, 3]);
        let predictions = i64_observation_nd("test", "predictions", &[2, 2], vec![1, 0, 1, 1]);
        assert_eq!(observations(&[predictions]).i64("test", "predictions").unwrap(), &[1, 0, 1, 1]);
    }

    #[test]
    fn probabilities_read_the_same_per_edge_or_per_target() {
        let (offsets, targets) = ([0u64, 2, 3, 3], [1u32, 2, 0]);
        let per_edge = graph(&offsets, &targets, &[0.5, 0.25, 1.0]);
        let per_target = graph_per_target(&offsets, &targets, &[1.0, 0.5, 0.25]);
        assert_eq!(per_edge.edge_probabilities(), per_target.edge_probabilities());
        assert!((0..3).all(|e| per_edge.probability(e) == per_target.probability(e)));
        assert!(per_edge.has_probabilities() && per_target.has_probabilities());
        let none = graph(&offsets, &targets, &[]);
        assert!(!none.has_probabilities());
        assert_eq!(none.probability(1), 0.0);
    }
}
