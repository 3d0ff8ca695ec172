//! Handles of created components (samplers and their order streams,
//! finetuners with the host's oracle, metrics, graph objectives): each call
//! across the boundary checked and its error named.

use abi_stable::std_types::{RErr, ROk, RResult, RSlice, RVec};
use tessera_sdk::ffi::{FinetunerBox, GraphObjectiveBox, MetricBox, OracleServices, OrderStreamBox, SamplerBox};
use tessera_sdk::{
    Candidates, Checkpoint, Chosen, ErrorKind, GraphView, LayerInfo, Observation, ObservationRequest, OracleAnswer,
    OracleQuery, PluginError, Report, Sampling, SavedState, Schedule, SeedChoice, Selection, StorageLayout,
};

use super::*;

/// A sampler created from a plugin.
pub struct SamplerHandle {
    /// `plugin.component`.
    pub id: String,
    pub(super) inner: SamplerBox,
}

/// A stream of example ids from a sampler.
pub struct OrderStream {
    id: String,
    inner: OrderStreamBox,
}

impl OrderStream {
    /// The next chunk, `None` at the end. The chunk stays in the plugin's
    /// allocation (an `RVec` derefs to a slice): no copy.
    pub fn next_chunk(&mut self) -> Result<Option<RVec<u64>>, ComponentError> {
        Ok(into_result(&self.id, self.inner.next_chunk())?.into_option())
    }
}

impl SamplerHandle {
    /// The order of epoch `epoch`.
    pub fn epoch_order(
        &mut self,
        layout: &StorageLayout,
        epoch: u64,
        ctx: &CallContext,
    ) -> Result<OrderStream, ComponentError> {
        let inner = into_result(&self.id, self.inner.epoch_order(layout, epoch, &ctx.services()))?;
        Ok(OrderStream { id: self.id.clone(), inner })
    }

    /// The offline reordering, if the sampler has one.
    pub fn offline_order(
        &mut self,
        layout: &StorageLayout,
        ctx: &CallContext,
    ) -> Result<Option<OrderStream>, ComponentError> {
        let inner = into_result(&self.id, self.inner.offline_order(layout, &ctx.services()))?;
        Ok(inner.into_option().map(|inner| OrderStream { id: self.id.clone(), inner }))
    }

    /// The observations it needs before each epoch; an error when `requires` panicked.
    pub fn requires(&self) -> Result<Vec<ObservationRequest>, ComponentError> {
        unpanicked_requests(&self.id, self.inner.requires().into_vec())
    }

    /// How its orders visit the examples.
    pub fn sampling(&self) -> Sampling {
        self.inner.sampling()
    }

    /// Hands it the observations it asked for, before an epoch's order.
    pub fn observe(
        &mut self,
        schedule: &Schedule,
        checkpoint: &Checkpoint,
        observations: &[Observation],
        ctx: &CallContext,
    ) -> Result<(), ComponentError> {
        let slice = RSlice::from_slice(observations);
        into_result(&self.id, self.inner.observe(schedule, checkpoint, slice, &ctx.services()))
    }

    /// The loss weights of epoch `epoch` (0-based) by example id, if the
    /// sampler gives any; an error when they break the contract.
    pub fn example_weights(
        &mut self,
        layout: &StorageLayout,
        epoch: u64,
        ctx: &CallContext,
    ) -> Result<Option<Vec<f32>>, CheckedError> {
        let weights = into_result(&self.id, self.inner.example_weights(layout, epoch, &ctx.services()))?;
        let Some(weights) = weights.into_option() else { return Ok(None) };
        crate::contract::example_weights(&self.id, epoch + 1, &weights, layout.examples)?;
        Ok(Some(weights.into_vec()))
    }

    /// Its report after training.
    pub fn finish(&mut self, ctx: &CallContext) -> Result<Report, ComponentError> {
        into_result(&self.id, self.inner.finish(&ctx.services()))
    }

    /// Its state between calls, for a checkpoint (SDK 0.4).
    pub fn save_state(&self) -> Result<SavedState, ComponentError> {
        into_result(&self.id, self.inner.save_state())
    }

    /// Restores a state it saved.
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<(), ComponentError> {
        into_result(&self.id, self.inner.load_state(bytes.into()))
    }

    /// The candidates per step it selects among, if it selects per step.
    pub fn candidates(&self) -> Result<Option<u32>, ComponentError> {
        Ok(into_result(&self.id, self.inner.candidates())?.into_option())
    }

    /// Its choice among one step's candidates; an error when the choice
    /// breaks the contract.
    pub fn select(&mut self, candidates: &Candidates, ctx: &CallContext) -> Result<Chosen, CheckedError> {
        let chosen = into_result(&self.id, self.inner.select(candidates, &ctx.services()))?;
        crate::contract::chosen(&self.id, candidates.step, &chosen, candidates.len())?;
        Ok(chosen)
    }
}

/// Why a component's answer was refused: its error, or a broken contract.
#[derive(Debug, thiserror::Error)]
pub enum CheckedError {
    /// The sampler failed.
    #[error(transparent)]
    Component(#[from] ComponentError),
    /// The weights broke the contract.
    #[error(transparent)]
    Contract(#[from] crate::contract::Violation),
}

/// Requests as `requires` returned them, or the panic one of them reports.
fn unpanicked_requests(id: &str, requests: Vec<ObservationRequest>) -> Result<Vec<ObservationRequest>, ComponentError> {
    match requests.iter().find(|r| r.split.as_str() == ObservationRequest::PANICKED) {
        Some(r) => Err(ComponentError {
            component: id.to_string(),
            kind: ErrorKind::Panicked,
            message: format!("in requires: {}", r.kind),
            key: None,
            hint: None,
        }),
        None => Ok(requests),
    }
}

/// A finetuner created from a plugin.
pub struct FinetunerHandle {
    /// `plugin.component`.
    pub id: String,
    pub(super) inner: FinetunerBox,
}

/// Why the host's oracle could not answer: the implementor's own error (the
/// training crate's), handed back to the finetuner as its message chain.
pub type OracleError = Box<dyn std::error::Error + Send + Sync>;

/// The host side of the finetuning oracle.
pub trait OracleImpl {
    /// Trains with the layers the query names and returns the held-out scores.
    fn ask(&mut self, query: &OracleQuery) -> Result<OracleAnswer, OracleError>;
}

struct OracleState<'a> {
    oracle: &'a mut dyn OracleImpl,
}

extern "C" fn oracle_ask(context: *mut (), query: &OracleQuery) -> RResult<OracleAnswer, PluginError> {
    // SAFETY: `context` is the `OracleState` borrowed by `FinetunerHandle::select`.
    let state = unsafe { &mut *(context as *mut OracleState) };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.oracle.ask(query)));
    let failed =
        |message: String| RErr(PluginError { kind: ErrorKind::Failed, message: message.into(), key: "".into() });
    match result {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => failed(format!("oracle: {}", tessera_util::error::chain(e.as_ref()))),
        Err(payload) => {
            let what = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            let first_line = what.lines().next().unwrap_or(what);
            failed(format!("oracle: the host's training panicked: {first_line}"))
        }
    }
}

impl FinetunerHandle {
    /// Asks the finetuner which layers to train; an error when its answer
    /// breaks the contract.
    pub fn select(
        &mut self,
        layers: &[LayerInfo],
        oracle: &mut dyn OracleImpl,
        ctx: &CallContext,
    ) -> Result<Selection, CheckedError> {
        let mut state = OracleState { oracle };
        let mut services = OracleServices { context: &mut state as *mut OracleState as *mut (), ask: oracle_ask };
        let selection =
            into_result(&self.id, self.inner.select(RSlice::from_slice(layers), &mut services, &ctx.services()))?;
        crate::contract::selection(&self.id, &selection, layers)?;
        Ok(selection)
    }

    /// The observations it needs before each epoch; an error when `requires` panicked.
    pub fn requires(&self) -> Result<Vec<ObservationRequest>, ComponentError> {
        unpanicked_requests(&self.id, self.inner.requires().into_vec())
    }

    /// Hands it the observations it asked for before an epoch; its new
    /// selection, if any, checked against the model's `layers`.
    pub fn revise(
        &mut self,
        checkpoint: &Checkpoint,
        observations: &[Observation],
        layers: &[LayerInfo],
        ctx: &CallContext,
    ) -> Result<Option<Selection>, CheckedError> {
        let slice = RSlice::from_slice(observations);
        let revised = into_result(&self.id, self.inner.revise(checkpoint, slice, &ctx.services()))?.into_option();
        if let Some(selection) = &revised {
            crate::contract::selection(&self.id, selection, layers)?;
        }
        Ok(revised)
    }

    /// Its report after training.
    pub fn finish(&mut self, ctx: &CallContext) -> Result<Report, ComponentError> {
        into_result(&self.id, self.inner.finish(&ctx.services()))
    }

    /// Its state between calls, for a checkpoint (SDK 0.4).
    pub fn save_state(&self) -> Result<SavedState, ComponentError> {
        into_result(&self.id, self.inner.save_state())
    }

    /// Restores a state it saved.
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<(), ComponentError> {
        into_result(&self.id, self.inner.load_state(bytes.into()))
    }
}

/// A metric created from a plugin.
pub struct MetricHandle {
    /// `plugin.component`.
    pub id: String,
    pub(super) inner: MetricBox,
}

impl MetricHandle {
    /// The observations it needs; an error when `requires` panicked.
    pub fn requires(&self) -> Result<Vec<ObservationRequest>, ComponentError> {
        unpanicked_requests(&self.id, self.inner.requires().into_vec())
    }

    /// Hands it one checkpoint's observations.
    pub fn observe(
        &mut self,
        checkpoint: &Checkpoint,
        observations: &[Observation],
        ctx: &CallContext,
    ) -> Result<(), ComponentError> {
        into_result(&self.id, self.inner.observe(checkpoint, RSlice::from_slice(observations), &ctx.services()))
    }

    /// Its final report.
    pub fn finish(&mut self, ctx: &CallContext) -> Result<Report, ComponentError> {
        into_result(&self.id, self.inner.finish(&ctx.services()))
    }

    /// Its state between calls, for a checkpoint (SDK 0.4).
    pub fn save_state(&self) -> Result<SavedState, ComponentError> {
        into_result(&self.id, self.inner.save_state())
    }

    /// Restores a state it saved.
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<(), ComponentError> {
        into_result(&self.id, self.inner.load_state(bytes.into()))
    }
}

/// A graph objective created from a plugin.
pub struct GraphObjectiveHandle {
    /// `plugin.component`.
    pub id: String,
    pub(super) inner: GraphObjectiveBox,
}

impl GraphObjectiveHandle {
    /// Chooses seed sets of at most `budget` nodes.
    pub fn choose(
        &mut self,
        graph: &GraphView<'_>,
        budget: u32,
        ctx: &CallContext,
    ) -> Result<SeedChoice, ComponentError> {
        into_result(&self.id, self.inner.choose(graph, budget, &ctx.services()))
    }
}

/// A sampler's order stream is what the block loader reads an epoch from.
impl crate::storage::EpochOrder for OrderStream {
    fn next_chunk(&mut self) -> Result<Option<RVec<u64>>, tessera_data::DataError> {
        OrderStream::next_chunk(self).map_err(|e: ComponentError| tessera_data::DataError::Upstream(Box::new(e)))
    }
}
