//! What a plugin author implements: plain Rust traits with std types. The
//! adapters here turn them into the `#[sabi_trait]` objects of [`crate::ffi`],
//! running every call under `catch_unwind` so that a panic becomes an error
//! naming the component instead of an abort of the host.

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, RNone, ROk, ROption, RResult, RSlice, RSome, RStr, RVec};
use serde::{de::DeserializeOwned, Serialize};

use crate::abi::{ComponentInfo, ComponentKind, ErrorKind, ParamSpec, PluginError};
use crate::ffi::{
    FfiFinetuner, FfiFinetuner_TO, FfiGraphObjective, FfiGraphObjective_TO, FfiMetric, FfiMetric_TO, FfiOrderStream,
    FfiOrderStream_TO, FfiSampler, FfiSampler_TO, FinetunerBox, GraphObjectiveBox, HostServices, MetricBox,
    OracleServices, OrderStreamBox, SamplerBox,
};
use crate::rng::SeedRng;
use crate::types::{
    Array, Checkpoint, GraphView, LayerInfo, Observation, ObservationRequest, OracleAnswer, OracleQuery, Report,
    Sampling, Schedule, SeedChoice, Selection, StorageLayout,
};

/// An error from a component, with the parameter key at fault where one is.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    key: Option<String>,
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A failure while working.
    pub fn msg(message: impl std::fmt::Display) -> Self {
        Error { kind: ErrorKind::Failed, message: message.to_string(), key: None }
    }

    /// A bad value of parameter `key`.
    pub fn invalid_param(key: &str, message: impl std::fmt::Display) -> Self {
        Error { kind: ErrorKind::InvalidParams, message: message.to_string(), key: Some(key.to_string()) }
    }

    /// A population metric (one that observes a population experiment's
    /// matrices once) finished without them; `needs` says what its
    /// `[population]` should hold, e.g. "every_checkpoint = true".
    pub fn no_population(component: &str, needs: &str) -> Self {
        let needs = if needs.is_empty() { String::new() } else { format!(", with {needs}") };
        Error::msg(format!(
            "{component} received no population: it runs in population experiments (`[experiment] kind = \"population\"`{needs})"
        ))
    }

    /// The run was cancelled.
    pub fn cancelled() -> Self {
        Error { kind: ErrorKind::Cancelled, message: "cancelled".into(), key: None }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The parameter key at fault, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    fn into_ffi(self) -> PluginError {
        PluginError { kind: self.kind, message: self.message.into(), key: self.key.unwrap_or_default().into() }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(key) => write!(f, "parameter `{key}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::msg(e)
    }
}

impl From<String> for Error {
    fn from(e: String) -> Self {
        Error::msg(e)
    }
}

impl From<&str> for Error {
    fn from(e: &str) -> Self {
        Error::msg(e)
    }
}

/// Returns early with an [`Error`] built from a format string.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::Error::msg(format!($($arg)*))) };
}

/// The host's services during one call: the component's seed, progress,
/// cancellation.
pub struct Host<'a> {
    raw: &'a HostServices,
}

impl<'a> Host<'a> {
    /// Wraps the raw services (used by the adapters and by host-side tests).
    pub fn new(raw: &'a HostServices) -> Self {
        Host { raw }
    }

    /// The component's seed in this variant: one per role (`sampler`,
    /// `finetuner`, `objective`, or a metric's report key, so two copies of
    /// one metric differ) and run seed, the same for each of its calls; the
    /// same manifest and seed give the same value. Draw with
    /// [`Host::rng`], a stream per purpose (e.g. the epoch).
    pub fn seed(&self) -> u64 {
        self.raw.seed
    }

    /// An independent random stream derived from the component's seed and `stream`.
    pub fn rng(&self, stream: u64) -> SeedRng {
        SeedRng::derive(self.raw.seed, stream)
    }

    /// Reports progress: `done` of `total` units.
    pub fn progress(&self, done: u64, total: u64, message: &str) {
        (self.raw.report_progress)(self.raw.context, done, total, RStr::from(message));
    }

    /// Whether the user asked to stop.
    pub fn is_cancelled(&self) -> bool {
        (self.raw.is_cancelled)(self.raw.context)
    }

    /// `Err(cancelled)` if the user asked to stop: call it in long loops.
    pub fn check_cancelled(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::cancelled())
        } else {
            Ok(())
        }
    }
}

/// The host's training oracle, as a finetuner sees it.
pub struct Oracle<'a> {
    raw: &'a mut OracleServices,
}

impl<'a> Oracle<'a> {
    /// Wraps the host's oracle (the host does this; tests may build their own
    /// [`OracleServices`] to drive a finetuner with a synthetic oracle).
    pub fn new(raw: &'a mut OracleServices) -> Self {
        Oracle { raw }
    }

    /// Trains with exactly the layers at positions `trainable` (plus a fresh
    /// head) from the pretrained weights, and returns the mean held-out
    /// accuracy over `folds` folds (1 = the validation split), each fold
    /// training the manifest's `train.oracle_epochs`.
    pub fn score(&mut self, trainable: &[u32], folds: u32) -> Result<f64> {
        Ok(self.ask(&OracleQuery::new(trainable).folds(folds))?.accuracy)
    }

    /// Trains and scores as `query` says (layers, folds, epochs) and returns
    /// every fold's accuracy and loss with their means.
    pub fn ask(&mut self, query: &OracleQuery) -> Result<OracleAnswer> {
        match (self.raw.ask)(self.raw.context, query) {
            ROk(v) => Ok(v),
            RErr(e) => Err(Error { kind: e.kind, message: e.message.into(), key: None }),
        }
    }
}

/// The observations of one checkpoint, as a metric sees them.
pub struct Observations<'a> {
    items: &'a [Observation],
}

impl<'a> Observations<'a> {
    /// Wraps a slice of observations.
    pub fn new(items: &'a [Observation]) -> Self {
        Observations { items }
    }

    /// The array `kind` on `split`, or an error saying it is missing.
    pub fn get(&self, split: &str, kind: &str) -> Result<&'a Array> {
        self.items
            .iter()
            .find(|o| o.split.as_str() == split && o.kind.as_str() == kind)
            .map(|o| &o.array)
            .ok_or_else(|| Error::msg(format!("the host gave no `{kind}` observation on split `{split}`")))
    }

    /// Integer data of `kind` on `split`.
    pub fn i64(&self, split: &str, kind: &str) -> Result<&'a [i64]> {
        self.get(split, kind)?
            .as_i64()
            .ok_or_else(|| Error::msg(format!("observation `{kind}` on `{split}` is not integer")))
    }

    /// Float data of `kind` on `split`.
    pub fn f32(&self, split: &str, kind: &str) -> Result<&'a [f32]> {
        self.get(split, kind)?
            .as_f32()
            .ok_or_else(|| Error::msg(format!("observation `{kind}` on `{split}` is not float")))
    }

    /// All observations.
    pub fn all(&self) -> &'a [Observation] {
        self.items
    }
}

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
}

/// Decides which layers of a pretrained model train (SubTuning, baselines).
///
/// **Contract, checked by the host:** the selection names positions of
/// `layers` only, and its report keeps to [`Metric`]'s report contract and
/// uses none of the names the host adds in the `finetuner` role
/// (`search_seconds`, `trainable_blocks`, `trainable_parameters`, the
/// `oracle_*` and `cache_*` figures, the `oracle_calls` and
/// `trainable_layers` tables). A violation fails the variant, naming the
/// finetuner.
pub trait Finetuner: Component {
    /// Chooses the layers to train among `layers`, scoring candidates with
    /// `oracle` as needed.
    fn select(&mut self, layers: &[LayerInfo], oracle: &mut Oracle, host: &Host) -> Result<Selection>;
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

/// The descriptor of component `C` of kind `kind`.
pub fn component_info<C: Component>(kind: ComponentKind) -> ComponentInfo {
    ComponentInfo { kind, name: C::NAME.into(), summary: C::SUMMARY.into(), params: C::Params::specs().into() }
}

/// Parses parameters from TOML text, naming the key at fault on error.
pub fn parse_params<P: Params>(text: &str) -> Result<P> {
    toml::from_str::<P>(text).map_err(|e| {
        let key = e.span().and_then(|span| key_at(text, span.start));
        let message = e.message().trim().to_string();
        match key {
            Some(key) => Error::invalid_param(&key, message),
            None => Error { kind: ErrorKind::InvalidParams, message, key: None },
        }
    })
}

/// The key of the `key = value` line holding byte `offset` of `text`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let key = line.split('=').next()?.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_string())
}

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
