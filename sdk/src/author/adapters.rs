//! The adapters that turn an author's component into the boundary's
//! `#[sabi_trait]` object, every call under `catch_unwind`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, RNone, ROk, ROption, RResult, RSlice, RSome, RVec};

use crate::abi::{ComponentKind, ErrorKind, PluginError};
use crate::ffi::{
    FfiFinetuner, FfiFinetuner_TO, FfiGraphObjective, FfiGraphObjective_TO, FfiMetric, FfiMetric_TO, FfiOrderStream,
    FfiOrderStream_TO, FfiSampler, FfiSampler_TO, FinetunerBox, GraphObjectiveBox, HostServices, MetricBox,
    OracleServices, OrderStreamBox, SamplerBox,
};
use crate::types::{
    Candidates, Checkpoint, Chosen, GraphView, LayerInfo, Observation, ObservationRequest, Report, Sampling,
    SavedState, Schedule, SeedChoice, Selection, StorageLayout,
};

use super::*;

/// Routes this plugin's panic messages to the host's log (debug level, with
/// the place) instead of stderr: the host reports a caught panic itself, as
/// the failure of the component's variant. A plugin library has a standard
/// library, and so a panic hook, of its own; the host's is untouched.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|info| log::debug!("plugin panic: {info}"))));
}

/// Runs `f`, turning a panic into an error that names `what`.
pub fn guard<T>(what: &str, f: impl FnOnce() -> Result<T>) -> RResult<T, PluginError> {
    quiet_panics();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => RErr(e.into_ffi()),
        Err(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            RErr(PluginError {
                kind: ErrorKind::Panicked,
                message: format!("{what} panicked: {text}").into(),
                key: "".into(),
            })
        }
    }
}

fn create<C: Component>(params: &str) -> Result<C> {
    C::new(parse_params::<C::Params>(params)?)
}

struct OrderStreamAdapter {
    what: &'static str,
    inner: OrderStream,
}

impl FfiOrderStream for OrderStreamAdapter {
    fn next_chunk(&mut self) -> RResult<ROption<RVec<u64>>, PluginError> {
        let inner = &mut self.inner;
        guard(self.what, || Ok(inner.next().map(RVec::from).into()))
    }
}

fn stream_box(what: &'static str, inner: OrderStream) -> OrderStreamBox {
    FfiOrderStream_TO::from_value(OrderStreamAdapter { what, inner }, TD_Opaque)
}

struct SamplerAdapter<S>(S);

impl<S: Sampler> FfiSampler for SamplerAdapter<S> {
    fn epoch_order(
        &mut self,
        layout: &StorageLayout,
        epoch: u64,
        host: &HostServices,
    ) -> RResult<OrderStreamBox, PluginError> {
        let inner = &mut self.0;
        guard(S::NAME, || Ok(stream_box(S::NAME, inner.epoch_order(layout, epoch, &Host::new(host))?)))
    }

    fn offline_order(
        &mut self,
        layout: &StorageLayout,
        host: &HostServices,
    ) -> RResult<ROption<OrderStreamBox>, PluginError> {
        let inner = &mut self.0;
        guard(S::NAME, || {
            Ok(match inner.offline_order(layout, &Host::new(host))? {
                Some(stream) => RSome(stream_box(S::NAME, stream)),
                None => RNone,
            })
        })
    }

    fn requires(&self) -> RVec<ObservationRequest> {
        guarded_requests(|| self.0.requires())
    }

    fn sampling(&self) -> Sampling {
        quiet_panics();
        // A panic here: the strictest mode, so the host's check names what went wrong.
        catch_unwind(AssertUnwindSafe(|| self.0.sampling())).unwrap_or_default()
    }

    fn observe(
        &mut self,
        schedule: &Schedule,
        checkpoint: &Checkpoint,
        observations: RSlice<'_, Observation>,
        host: &HostServices,
    ) -> RResult<(), PluginError> {
        let inner = &mut self.0;
        let observations = Observations::new(observations.as_slice());
        guard(S::NAME, || inner.observe(schedule, checkpoint, &observations, &Host::new(host)))
    }

    fn example_weights(
        &mut self,
        layout: &StorageLayout,
        epoch: u64,
        host: &HostServices,
    ) -> RResult<ROption<RVec<f32>>, PluginError> {
        let inner = &mut self.0;
        guard(S::NAME, || Ok(inner.example_weights(layout, epoch, &Host::new(host))?.map(RVec::from).into()))
    }

    fn finish(&mut self, host: &HostServices) -> RResult<Report, PluginError> {
        let inner = &mut self.0;
        guard(S::NAME, || inner.finish(&Host::new(host)))
    }

    fn candidates(&self) -> RResult<ROption<u32>, PluginError> {
        guard(S::NAME, || Ok(self.0.candidates().into()))
    }

    fn select(&mut self, candidates: &Candidates, host: &HostServices) -> RResult<Chosen, PluginError> {
        let inner = &mut self.0;
        guard(S::NAME, || inner.select(candidates, &Host::new(host)))
    }

    fn save_state(&self) -> RResult<SavedState, PluginError> {
        guard(S::NAME, || Ok(self.0.save_state()?.into_ffi()))
    }

    fn load_state(&mut self, bytes: RSlice<'_, u8>) -> RResult<(), PluginError> {
        let inner = &mut self.0;
        guard(S::NAME, || inner.load_state(bytes.as_slice()))
    }
}

/// `requires` across the boundary: a panic cannot be reported through the
/// return type, so it becomes the one request the host knows to mean a panic.
fn guarded_requests(requires: impl FnOnce() -> Vec<ObservationRequest>) -> RVec<ObservationRequest> {
    quiet_panics();
    catch_unwind(AssertUnwindSafe(requires))
        .unwrap_or_else(|payload| {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            vec![ObservationRequest::new(ObservationRequest::PANICKED, &text)]
        })
        .into()
}

struct FinetunerAdapter<F>(F);

impl<F: Finetuner> FfiFinetuner for FinetunerAdapter<F> {
    fn select(
        &mut self,
        layers: RSlice<'_, LayerInfo>,
        oracle: &mut OracleServices,
        host: &HostServices,
    ) -> RResult<Selection, PluginError> {
        let inner = &mut self.0;
        guard(F::NAME, || inner.select(layers.as_slice(), &mut Oracle { raw: oracle }, &Host::new(host)))
    }

    fn requires(&self) -> RVec<ObservationRequest> {
        guarded_requests(|| self.0.requires())
    }

    fn revise(
        &mut self,
        checkpoint: &Checkpoint,
        observations: RSlice<'_, Observation>,
        host: &HostServices,
    ) -> RResult<ROption<Selection>, PluginError> {
        let inner = &mut self.0;
        let observations = Observations::new(observations.as_slice());
        guard(F::NAME, || Ok(inner.revise(checkpoint, &observations, &Host::new(host))?.into()))
    }

    fn finish(&mut self, host: &HostServices) -> RResult<Report, PluginError> {
        let inner = &mut self.0;
        guard(F::NAME, || inner.finish(&Host::new(host)))
    }

    fn save_state(&self) -> RResult<SavedState, PluginError> {
        guard(F::NAME, || Ok(self.0.save_state()?.into_ffi()))
    }

    fn load_state(&mut self, bytes: RSlice<'_, u8>) -> RResult<(), PluginError> {
        let inner = &mut self.0;
        guard(F::NAME, || inner.load_state(bytes.as_slice()))
    }
}

struct MetricAdapter<M>(M);

impl<M: Metric> FfiMetric for MetricAdapter<M> {
    fn requires(&self) -> RVec<ObservationRequest> {
        guarded_requests(|| self.0.requires())
    }

    fn observe(
        &mut self,
        checkpoint: &Checkpoint,
        observations: RSlice<'_, Observation>,
        host: &HostServices,
    ) -> RResult<(), PluginError> {
        let inner = &mut self.0;
        guard(M::NAME, || inner.observe(checkpoint, &Observations::new(observations.as_slice()), &Host::new(host)))
    }

    fn finish(&mut self, host: &HostServices) -> RResult<Report, PluginError> {
        let inner = &mut self.0;
        guard(M::NAME, || inner.finish(&Host::new(host)))
    }

    fn save_state(&self) -> RResult<SavedState, PluginError> {
        guard(M::NAME, || Ok(self.0.save_state()?.into_ffi()))
    }

    fn load_state(&mut self, bytes: RSlice<'_, u8>) -> RResult<(), PluginError> {
        let inner = &mut self.0;
        guard(M::NAME, || inner.load_state(bytes.as_slice()))
    }
}

struct GraphObjectiveAdapter<G>(G);

impl<G: GraphObjective> FfiGraphObjective for GraphObjectiveAdapter<G> {
    fn choose(&mut self, graph: &GraphView<'_>, budget: u32, host: &HostServices) -> RResult<SeedChoice, PluginError> {
        let inner = &mut self.0;
        guard(G::NAME, || inner.choose(graph, budget, &Host::new(host)))
    }
}

/// Creates sampler `S` from TOML parameters, as a boundary object.
pub fn new_sampler<S: Sampler>(params: &str) -> Result<SamplerBox> {
    Ok(FfiSampler_TO::from_value(SamplerAdapter(create::<S>(params)?), TD_Opaque))
}

/// Creates finetuner `F` from TOML parameters, as a boundary object.
pub fn new_finetuner<F: Finetuner>(params: &str) -> Result<FinetunerBox> {
    Ok(FfiFinetuner_TO::from_value(FinetunerAdapter(create::<F>(params)?), TD_Opaque))
}

/// Creates metric `M` from TOML parameters, as a boundary object.
pub fn new_metric<M: Metric>(params: &str) -> Result<MetricBox> {
    Ok(FfiMetric_TO::from_value(MetricAdapter(create::<M>(params)?), TD_Opaque))
}

/// Creates graph objective `G` from TOML parameters, as a boundary object.
pub fn new_graph_objective<G: GraphObjective>(params: &str) -> Result<GraphObjectiveBox> {
    Ok(FfiGraphObjective_TO::from_value(GraphObjectiveAdapter(create::<G>(params)?), TD_Opaque))
}

/// The error for a component name the plugin does not have.
pub fn unknown_component(plugin: &str, kind: ComponentKind, name: &str) -> Error {
    Error {
        kind: ErrorKind::UnknownComponent,
        message: format!("plugin `{plugin}` has no {kind} named `{name}`"),
        key: None,
    }
}
