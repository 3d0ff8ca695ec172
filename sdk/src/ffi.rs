//! The traits as they cross the boundary (`#[sabi_trait]`), and the host
//! services passed into every call. Plugin authors implement the plain traits
//! in the crate root instead; [`crate::export_plugin!`] adapts them to these.

#![allow(non_local_definitions)] // emitted by #[sabi_trait]
use abi_stable::{
    sabi_trait,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RVec},
    StableAbi,
};

use crate::abi::PluginError;
use crate::types::{
    Candidates, Checkpoint, Chosen, GraphView, LayerInfo, Observation, ObservationRequest, OracleAnswer, OracleQuery,
    Report, Sampling, SavedState, Schedule, SeedChoice, Selection, StorageLayout,
};

/// Services the host lends to a plugin for the length of one call.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct HostServices {
    /// Opaque host state passed back to the callbacks.
    pub context: *const (),
    /// The seed of this call (derived by the host from the run's seed).
    pub seed: u64,
    /// Reports progress: `done` of `total` units, with a short message.
    pub report_progress: extern "C" fn(context: *const (), done: u64, total: u64, message: RStr<'_>),
    /// Whether the user asked to stop (Ctrl-C, or a failed sibling).
    pub is_cancelled: extern "C" fn(context: *const ()) -> bool,
}

extern "C" fn no_progress(_: *const (), _: u64, _: u64, _: RStr<'_>) {}

extern "C" fn never_cancelled(_: *const ()) -> bool {
    false
}

impl HostServices {
    /// Services outside any host (for a plugin's own tests and tools): the
    /// given seed, progress dropped, never cancelled.
    pub fn detached(seed: u64) -> Self {
        HostServices { context: std::ptr::null(), seed, report_progress: no_progress, is_cancelled: never_cancelled }
    }
}

/// The host's oracle for finetuners: trains the model with the given layers
/// trainable (the rest frozen) and returns the held-out scores.
#[repr(C)]
#[derive(StableAbi)]
pub struct OracleServices {
    /// Opaque host state passed back to `ask`.
    pub context: *mut (),
    /// Trains and scores the layer set the query names.
    pub ask: extern "C" fn(context: *mut (), query: &OracleQuery) -> RResult<OracleAnswer, PluginError>,
}

/// A stream of example ids, in chunks; `ROption::RNone` ends it.
#[sabi_trait]
pub trait FfiOrderStream: Send {
    /// The next chunk of example ids.
    #[sabi(last_prefix_field)]
    fn next_chunk(&mut self) -> RResult<ROption<RVec<u64>>, PluginError>;
}

/// An owned order stream.
pub type OrderStreamBox = FfiOrderStream_TO<'static, RBox<()>>;

/// [`crate::Sampler`] across the boundary.
#[sabi_trait]
pub trait FfiSampler: Send {
    /// The visiting order of epoch `epoch`.
    fn epoch_order(
        &mut self,
        layout: &StorageLayout,
        epoch: u64,
        host: &HostServices,
    ) -> RResult<OrderStreamBox, PluginError>;
    /// An order to rewrite the stored data in before training, if any.
    fn offline_order(
        &mut self,
        layout: &StorageLayout,
        host: &HostServices,
    ) -> RResult<ROption<OrderStreamBox>, PluginError>;
    /// The observations it needs before each epoch's order (a panic is
    /// reported as one request of split [`ObservationRequest::PANICKED`]).
    fn requires(&self) -> RVec<ObservationRequest>;
    /// How its orders visit the examples.
    fn sampling(&self) -> Sampling;
    /// Receives the observations it asked for, before the order of epoch
    /// `checkpoint.epoch` (the model as training left it).
    fn observe(
        &mut self,
        schedule: &Schedule,
        checkpoint: &Checkpoint,
        observations: RSlice<'_, Observation>,
        host: &HostServices,
    ) -> RResult<(), PluginError>;
    /// The weights of epoch `epoch`'s losses by example id, if not all 1.
    fn example_weights(
        &mut self,
        layout: &StorageLayout,
        epoch: u64,
        host: &HostServices,
    ) -> RResult<ROption<RVec<f32>>, PluginError>;
    /// Its report after training.
    fn finish(&mut self, host: &HostServices) -> RResult<Report, PluginError>;
    /// Candidates per step for per-step selection, if it selects.
    fn candidates(&self) -> RResult<ROption<u32>, PluginError>;
    /// Chooses among one step's candidates.
    fn select(&mut self, candidates: &Candidates, host: &HostServices) -> RResult<Chosen, PluginError>;
    /// Its state between calls ([`crate::Component::save_state`]).
    fn save_state(&self) -> RResult<SavedState, PluginError>;
    /// Restores a saved state ([`crate::Component::load_state`]).
    #[sabi(last_prefix_field)]
    fn load_state(&mut self, bytes: RSlice<'_, u8>) -> RResult<(), PluginError>;
}

/// An owned sampler.
pub type SamplerBox = FfiSampler_TO<'static, RBox<()>>;

/// [`crate::Finetuner`] across the boundary.
#[sabi_trait]
pub trait FfiFinetuner: Send {
    /// Chooses the layers to train, asking the oracle as often as it likes.
    fn select(
        &mut self,
        layers: RSlice<'_, LayerInfo>,
        oracle: &mut OracleServices,
        host: &HostServices,
    ) -> RResult<Selection, PluginError>;
    /// The observations it needs before each epoch (a panic is reported as
    /// one request of split [`ObservationRequest::PANICKED`]).
    fn requires(&self) -> RVec<ObservationRequest>;
    /// Receives them before an epoch; a new selection, if any.
    fn revise(
        &mut self,
        checkpoint: &Checkpoint,
        observations: RSlice<'_, Observation>,
        host: &HostServices,
    ) -> RResult<ROption<Selection>, PluginError>;
    /// Its report after training.
    fn finish(&mut self, host: &HostServices) -> RResult<Report, PluginError>;
    /// Its state between calls ([`crate::Component::save_state`]).
    fn save_state(&self) -> RResult<SavedState, PluginError>;
    /// Restores a saved state ([`crate::Component::load_state`]).
    #[sabi(last_prefix_field)]
    fn load_state(&mut self, bytes: RSlice<'_, u8>) -> RResult<(), PluginError>;
}

/// An owned finetuner.
pub type FinetunerBox = FfiFinetuner_TO<'static, RBox<()>>;

/// [`crate::Metric`] across the boundary.
#[sabi_trait]
pub trait FfiMetric: Send {
    /// The observations the metric needs at each checkpoint.
    fn requires(&self) -> RVec<ObservationRequest>;
    /// Receives the observations of one checkpoint.
    fn observe(
        &mut self,
        checkpoint: &Checkpoint,
        observations: RSlice<'_, Observation>,
        host: &HostServices,
    ) -> RResult<(), PluginError>;
    /// Reports the figures after the last checkpoint.
    fn finish(&mut self, host: &HostServices) -> RResult<Report, PluginError>;
    /// Its state between calls ([`crate::Component::save_state`]).
    fn save_state(&self) -> RResult<SavedState, PluginError>;
    /// Restores a saved state ([`crate::Component::load_state`]).
    #[sabi(last_prefix_field)]
    fn load_state(&mut self, bytes: RSlice<'_, u8>) -> RResult<(), PluginError>;
}

/// An owned metric.
pub type MetricBox = FfiMetric_TO<'static, RBox<()>>;

/// [`crate::GraphObjective`] across the boundary.
#[sabi_trait]
pub trait FfiGraphObjective: Send {
    /// Chooses at most `budget` seeds per set on `graph`.
    #[sabi(last_prefix_field)]
    fn choose(&mut self, graph: &GraphView<'_>, budget: u32, host: &HostServices) -> RResult<SeedChoice, PluginError>;
}

/// An owned graph objective.
pub type GraphObjectiveBox = FfiGraphObjective_TO<'static, RBox<()>>;
