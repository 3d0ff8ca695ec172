//! Finding, loading and calling plugins.
//!
//! Every library is opened with `lib_header_from_path(..)?.init_root_module()`
//! and kept by canonical path: `RootModule::load_from_file` would cache one
//! module per type and silently hand back the first plugin for every file.
//! Calls into plugins go through the handles here, which turn the boundary's
//! `RResult`s into [`ComponentError`]s that name the component.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::std_types::{RErr, ROk, RResult, RSlice, RStr, RVec};
use tessera_sdk::ffi::{
    FinetunerBox, GraphObjectiveBox, HostServices, MetricBox, OracleServices, OrderStreamBox, SamplerBox,
};
use tessera_sdk::{
    Checkpoint, ComponentInfo, ComponentKind, ErrorKind, GraphView, HostLogger, LayerInfo, Observation,
    ObservationRequest, OracleAnswer, OracleQuery, PluginError, PluginInfo, PluginModRef, Report, Sampling, Schedule,
    SeedChoice, Selection, StorageLayout,
};
pub use tessera_util::suggest::closest;

/// The SDK version this host was built with.
pub const HOST_SDK_VERSION: &str = tessera_sdk::SDK_VERSION;

/// The platform's file name for plugin `stem`: `libtessera_<stem>.so` on Linux.
pub fn library_file_name(stem: &str) -> String {
    format!("{}{stem}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

/// Whether a file in a search folder is taken for a plugin: a dynamic library
/// named `tessera_*` (e.g. `libtessera_baselines.so`).
pub fn is_plugin_file_name(name: &str) -> bool {
    name.strip_prefix(std::env::consts::DLL_PREFIX)
        .and_then(|rest| rest.strip_suffix(std::env::consts::DLL_SUFFIX))
        .is_some_and(|stem| stem.starts_with("tessera_"))
}

/// Why a plugin library could not be used.
#[derive(Debug)]
pub enum LoadError {
    /// The file is missing or the dynamic loader refused it.
    Open { path: PathBuf, reason: String },
    /// The library is not a Tessera plugin.
    NotAPlugin { path: PathBuf },
    /// Built against an incompatible tessera-sdk version.
    SdkVersion { path: PathBuf, plugin_sdk: String },
    /// Same version, but the types differ (built against a modified SDK).
    Layout { path: PathBuf, plugin_sdk: String, summary: Vec<String>, full: String },
    /// Built against another libtorch than the host's.
    Libtorch { path: PathBuf, plugin: String, plugin_libtorch: String },
    /// Two libraries provide the same plugin name.
    Duplicate { name: String, first: PathBuf, second: PathBuf },
    /// Anything else abi_stable reports.
    Other { path: PathBuf, message: String },
}

/// Whether a plugin built against SDK `plugin` can load into a host built
/// against SDK `host`: Cargo's caret rule, which abi_stable follows (for
/// 0.y.z the same y and a patch at least the host's; from 1.0 the same major
/// and a version at least the host's).
pub fn sdk_compatible(host: &str, plugin: &str) -> bool {
    // Cargo's caret rule: `^host` (0.x: the same minor; else the same major).
    match (semver::VersionReq::parse(&format!("^{host}")), semver::Version::parse(plugin)) {
        (Ok(required), Ok(built)) => required.matches(&built),
        _ => false,
    }
}

fn sdk_minor(version: &str) -> String {
    semver::Version::parse(version).map_or_else(|_| version.to_string(), |v| format!("{}.{}", v.major, v.minor))
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rebuild = format!("rebuild it against tessera-sdk {}", sdk_minor(HOST_SDK_VERSION));
        match self {
            LoadError::Open { path, reason } => write!(f, "cannot open plugin library {}: {reason}", path.display()),
            LoadError::NotAPlugin { path } => write!(
                f,
                "{} is not a Tessera plugin (it exports no tessera-sdk root module); plugins end with `tessera_sdk::export_plugin!`",
                path.display()
            ),
            LoadError::SdkVersion { path, plugin_sdk } => write!(
                f,
                "plugin library {} was built against tessera-sdk {plugin_sdk}, but this host uses tessera-sdk {HOST_SDK_VERSION}: {rebuild}",
                path.display()
            ),
            LoadError::Layout { path, plugin_sdk, summary, .. } => {
                write!(
                    f,
                    "plugin library {} was built against a tessera-sdk {plugin_sdk} whose types differ from this host's: {rebuild}",
                    path.display()
                )?;
                for line in summary {
                    write!(f, "\n  {line}")?;
                }
                Ok(())
            }
            LoadError::Libtorch { path, plugin, plugin_libtorch } => write!(
                f,
                "plugin `{plugin}` ({}) links libtorch {plugin_libtorch}, but this host links libtorch {}: rebuild it with the host's LIBTORCH",
                path.display(),
                host_libtorch_version()
            ),
            LoadError::Duplicate { name, first, second } => write!(
                f,
                "two libraries provide plugin `{name}`: {} and {}; remove one or drop its folder from the plugin paths",
                first.display(),
                second.display()
            ),
            LoadError::Other { path, message } => write!(f, "cannot load plugin library {}: {message}", path.display()),
        }
    }
}

impl std::error::Error for LoadError {}

impl LoadError {
    /// The full abi_stable report, where there is one (shown under `-v`).
    pub fn details(&self) -> Option<&str> {
        match self {
            LoadError::Layout { full, .. } => Some(full),
            _ => None,
        }
    }
}

/// Whether a plugin that links libtorch `plugin` ("" = none) can share the
/// host's libtorch `host`: tensors cross the boundary only between equal builds.
pub fn libtorch_compatible(host: &str, plugin: &str) -> bool {
    plugin.is_empty() || plugin == host
}

/// The libtorch version the host links (from the build's LIBTORCH), or "".
pub fn host_libtorch_version() -> &'static str {
    option_env!("TESSERA_LIBTORCH_VERSION").unwrap_or("")
}

/// The Python of the torch wheel whose libtorch the host links (for
/// comparisons with PyTorch and for exporting TorchScript models):
/// `TESSERA_PYTHON` if set, else `<venv>/bin/python3` of the set-up's wheel.
pub fn libtorch_python() -> PathBuf {
    if let Some(p) = std::env::var_os("TESSERA_PYTHON") {
        return p.into();
    }
    // <venv>/lib/python3.X/site-packages/torch/lib -> <venv>/bin/python3
    let lib = Path::new(option_env!("TESSERA_LIBTORCH_LIB").unwrap_or(""));
    lib.ancestors().nth(5).map_or_else(|| PathBuf::from("python3"), |venv| venv.join("bin/python3"))
}

/// A loaded plugin: where it came from, what it says about itself.
pub struct LoadedPlugin {
    /// Canonical path of the library.
    pub path: PathBuf,
    /// Its self-description.
    pub info: PluginInfo,
    module: PluginModRef,
}

impl LoadedPlugin {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        self.info.name.as_str()
    }

    /// The component `name` of `kind`, if the plugin has it.
    pub fn component(&self, kind: ComponentKind, name: &str) -> Option<&ComponentInfo> {
        self.info.components.iter().find(|c| c.kind == kind && c.name.as_str() == name)
    }
}

/// The plugins a run can use, keyed by name and by canonical path.
#[derive(Default)]
pub struct Registry {
    plugins: Vec<LoadedPlugin>,
    by_name: BTreeMap<String, usize>,
    /// Names provided by more than one library: using one is an error.
    conflicts: BTreeMap<String, LoadError>,
    /// Libraries found in search folders that could not be loaded.
    pub failures: Vec<LoadError>,
}

fn layout_summary(dump: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in dump.lines().map(str::trim).filter(|l| l.starts_with("Error:") || l.contains("Error:")) {
        if !lines.iter().any(|l| l == line) {
            lines.push(line.to_string());
        }
        if lines.len() == 4 {
            break;
        }
    }
    lines
}

impl Registry {
    /// An empty registry (the host's logger is installed into each plugin loaded).
    pub fn new() -> Self {
        Self::default()
    }

    /// Every loaded plugin, in load order.
    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }

    /// Names that more than one library provides.
    pub fn conflicts(&self) -> impl Iterator<Item = &LoadError> {
        self.conflicts.values()
    }

    /// Loads the library at `path` (a second load of the same file is a no-op)
    /// and returns the plugin's name.
    pub fn load_file(&mut self, path: &Path) -> Result<String, LoadError> {
        let canonical =
            path.canonicalize().map_err(|e| LoadError::Open { path: path.to_path_buf(), reason: e.to_string() })?;
        if let Some(p) = self.plugins.iter().find(|p| p.path == canonical) {
            return Ok(p.name().to_string());
        }
        let header = lib_header_from_path(&canonical).map_err(|e| match e {
            LibraryError::OpenError { err, .. } => LoadError::Open { path: canonical.clone(), reason: err.to_string() },
            LibraryError::GetSymbolError { .. } => LoadError::NotAPlugin { path: canonical.clone() },
            other => LoadError::Other { path: canonical.clone(), message: other.to_string() },
        })?;
        let plugin_sdk = header.version_strings().version.to_string();
        let module = header.init_root_module::<PluginModRef>().map_err(|e| match e {
            // abi_stable finds a version difference either way; say it plainly.
            _ if !sdk_compatible(HOST_SDK_VERSION, &plugin_sdk) => {
                LoadError::SdkVersion { path: canonical.clone(), plugin_sdk: plugin_sdk.clone() }
            }
            LibraryError::IncompatibleVersionNumber { .. } | LibraryError::ParseVersionError(_) => {
                LoadError::SdkVersion { path: canonical.clone(), plugin_sdk: plugin_sdk.clone() }
            }
            LibraryError::AbiInstability(err) => {
                let full = err.to_string();
                LoadError::Layout {
                    path: canonical.clone(),
                    plugin_sdk: plugin_sdk.clone(),
                    summary: layout_summary(&full),
                    full,
                }
            }
            other => LoadError::Other { path: canonical.clone(), message: other.to_string() },
        })?;
        let info = (module.info())();
        let name = info.name.to_string();
        let libtorch = info.libtorch_version.as_str();
        if !libtorch_compatible(host_libtorch_version(), libtorch) {
            return Err(LoadError::Libtorch { path: canonical, plugin: name, plugin_libtorch: libtorch.to_string() });
        }
        (module.install_logger())(HostLogger { log: forward_log, max_level: log::max_level() as u8 });
        if let Some(&first) = self.by_name.get(&name) {
            let err = LoadError::Duplicate {
                name: name.clone(),
                first: self.plugins[first].path.clone(),
                second: canonical.clone(),
            };
            log::warn!("{err}");
            self.conflicts.entry(name.clone()).or_insert(err);
        } else {
            self.by_name.insert(name.clone(), self.plugins.len());
        }
        self.plugins.push(LoadedPlugin { path: canonical, info, module });
        Ok(name)
    }

    /// Loads every `tessera_*` library in `dir`; failures are kept in
    /// [`Registry::failures`] and logged, not fatal.
    pub fn load_dir(&mut self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut files: Vec<PathBuf> =
            entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect();
        files.sort();
        let name = |p: &Path| p.file_name().and_then(|n| n.to_str()).map(str::to_string).unwrap_or_default();
        for other in files.iter().filter(|p| !is_plugin_file_name(&name(p))) {
            if name(other).ends_with(std::env::consts::DLL_SUFFIX) {
                log::debug!(
                    "{}: a library, not loaded: plugins are named {}, i.e. their [lib] name starts with tessera_",
                    other.display(),
                    library_file_name("tessera_<name>")
                );
            }
        }
        files.retain(|p| is_plugin_file_name(&name(p)));
        for file in files {
            if let Err(e) = self.load_file(&file) {
                log::warn!("{e}");
                self.failures.push(e);
            }
        }
    }

    /// The plugin named `name`, or why it cannot be used.
    pub fn plugin(&self, name: &str) -> Result<&LoadedPlugin, Unresolved> {
        if let Some(conflict) = self.conflicts.get(name) {
            return Err(Unresolved::new(conflict.to_string(), None));
        }
        match self.by_name.get(name) {
            Some(&i) => Ok(&self.plugins[i]),
            None => {
                let known: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
                let mut unresolved = Unresolved::new(
                    format!("no plugin named `{name}` was found"),
                    closest(name, known.iter().copied()).map(str::to_string),
                );
                if !known.is_empty() {
                    unresolved.context.push_str(&format!("; loaded: {}", known.join(", ")));
                }
                for failure in &self.failures {
                    unresolved.context.push_str(&format!("\n  note: {failure}"));
                }
                Err(unresolved)
            }
        }
    }

    /// Every `plugin.component` of `kind` that is loaded.
    pub fn component_ids(&self, kind: ComponentKind) -> Vec<String> {
        self.plugins
            .iter()
            .flat_map(|p| {
                p.info
                    .components
                    .iter()
                    .filter(move |c| c.kind == kind)
                    .map(move |c| format!("{}.{}", p.name(), c.name))
            })
            .collect()
    }

    /// Resolves `plugin.component` of `kind` to the plugin and component info.
    pub fn resolve(&self, kind: ComponentKind, id: &str) -> Result<(&LoadedPlugin, &ComponentInfo), Unresolved> {
        let Some((plugin_name, component)) = id.split_once('.') else {
            let message = format!("`{id}` should name a component as `plugin.component`, e.g. `baselines.sequential`");
            return Err(Unresolved::new(message, None));
        };
        let plugin = self.plugin(plugin_name)?;
        match plugin.component(kind, component) {
            Some(info) => Ok((plugin, info)),
            None => {
                let ids = self.component_ids(kind);
                let best = closest(id, ids.iter().map(String::as_str)).map(str::to_string);
                Err(Unresolved::new(format!("plugin `{plugin_name}` has no {kind} named `{component}`"), best))
            }
        }
    }

    /// Creates the sampler `id` from its parameters (TOML text).
    pub fn new_sampler(&self, id: &str, params: &str) -> Result<SamplerHandle, ComponentError> {
        let plugin = self.resolve(ComponentKind::Sampler, id).map_err(|u| ComponentError::unresolved(id, u))?.0;
        let (_, name) = id.split_once('.').unwrap_or_default();
        let inner = into_result(id, (plugin.module.new_sampler())(RStr::from(name), RStr::from(params)))?;
        Ok(SamplerHandle { id: id.to_string(), inner })
    }

    /// Creates the finetuner `id` from its parameters (TOML text).
    pub fn new_finetuner(&self, id: &str, params: &str) -> Result<FinetunerHandle, ComponentError> {
        let plugin = self.resolve(ComponentKind::Finetuner, id).map_err(|u| ComponentError::unresolved(id, u))?.0;
        let (_, name) = id.split_once('.').unwrap_or_default();
        let inner = into_result(id, (plugin.module.new_finetuner())(RStr::from(name), RStr::from(params)))?;
        Ok(FinetunerHandle { id: id.to_string(), inner })
    }

    /// Creates the metric `id` from its parameters (TOML text).
    pub fn new_metric(&self, id: &str, params: &str) -> Result<MetricHandle, ComponentError> {
        let plugin = self.resolve(ComponentKind::Metric, id).map_err(|u| ComponentError::unresolved(id, u))?.0;
        let (_, name) = id.split_once('.').unwrap_or_default();
        let inner = into_result(id, (plugin.module.new_metric())(RStr::from(name), RStr::from(params)))?;
        Ok(MetricHandle { id: id.to_string(), inner })
    }

    /// Creates the graph objective `id` from its parameters (TOML text).
    pub fn new_graph_objective(&self, id: &str, params: &str) -> Result<GraphObjectiveHandle, ComponentError> {
        let plugin = self.resolve(ComponentKind::GraphObjective, id).map_err(|u| ComponentError::unresolved(id, u))?.0;
        let (_, name) = id.split_once('.').unwrap_or_default();
        let inner = into_result(id, (plugin.module.new_graph_objective())(RStr::from(name), RStr::from(params)))?;
        Ok(GraphObjectiveHandle { id: id.to_string(), inner })
    }
}

extern "C" fn forward_log(level: u8, target: RStr<'_>, message: RStr<'_>) {
    let _ = std::panic::catch_unwind(|| {
        log::logger().log(
            &log::Record::builder()
                .level(tessera_sdk::logging::level_from_number(level))
                .target(target.as_str())
                .args(format_args!("{}", message.as_str()))
                .build(),
        );
    });
}

/// An error from a component call, naming the component (`plugin.component`).
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentError {
    /// `plugin.component`.
    pub component: String,
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
    /// The parameter key at fault, if any.
    pub key: Option<String>,
    /// What to do, where the host knows: the closest known name.
    pub hint: Option<String>,
}

impl ComponentError {
    /// `component` names nothing usable.
    fn unresolved(component: &str, unresolved: Unresolved) -> Self {
        ComponentError {
            component: component.to_string(),
            kind: ErrorKind::UnknownComponent,
            message: format!("{}{}", unresolved.message, unresolved.context),
            key: None,
            hint: unresolved.suggestion.map(|s| format!("did you mean `{s}`?")),
        }
    }
}

/// Why a plugin or `plugin.component` names nothing usable.
#[derive(Debug, Clone, PartialEq)]
pub struct Unresolved {
    /// What is wrong.
    pub message: String,
    /// The closest known name, if one is close enough to suggest.
    pub suggestion: Option<String>,
    /// What else the user may need: the plugins loaded, the libraries that
    /// did not load.
    pub context: String,
}

impl Unresolved {
    fn new(message: String, suggestion: Option<String>) -> Self {
        Unresolved { message, suggestion, context: String::new() }
    }
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(best) = &self.suggestion {
            write!(f, " (did you mean `{best}`?)")?;
        }
        f.write_str(&self.context)
    }
}

impl std::error::Error for Unresolved {}

impl std::fmt::Display for ComponentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.kind, &self.key) {
            (ErrorKind::InvalidParams, Some(key)) => {
                write!(f, "{}: parameter `{key}`: {}", self.component, self.message)
            }
            (ErrorKind::Panicked, _) => write!(f, "plugin component {} panicked: {}", self.component, self.message),
            _ => {
                write!(f, "{}: {}", self.component, self.message)?;
                self.hint.as_ref().map_or(Ok(()), |hint| write!(f, " ({hint})"))
            }
        }
    }
}

impl std::error::Error for ComponentError {}

fn into_result<T>(component: &str, r: RResult<T, PluginError>) -> Result<T, ComponentError> {
    match r {
        ROk(v) => Ok(v),
        RErr(e) => {
            let message = e.message.to_string();
            // The SDK's guard prefixes "<what> panicked: "; keep only the panic text.
            let message = match e.kind {
                ErrorKind::Panicked => message.split_once("panicked: ").map_or(message.clone(), |(_, m)| m.to_string()),
                _ => message,
            };
            Err(ComponentError {
                component: component.to_string(),
                kind: e.kind,
                message,
                key: (!e.key.is_empty()).then(|| e.key.to_string()),
                hint: None,
            })
        }
    }
}

/// What the host lends a plugin during one call: the call's seed, a progress
/// sink and the run's cancellation flag.
pub struct CallContext {
    /// The seed handed to the plugin.
    pub seed: u64,
    /// Set when the user asks to stop.
    pub cancel: Arc<AtomicBool>,
    /// Where progress goes, if anywhere.
    pub progress: Option<indicatif::ProgressBar>,
}

extern "C" fn report_progress(context: *const (), done: u64, total: u64, message: RStr<'_>) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: `context` is the `CallContext` that `CallContext::services`
        // borrowed for the length of the call in progress.
        let ctx = unsafe { &*(context as *const CallContext) };
        if let Some(bar) = &ctx.progress {
            bar.set_length(total);
            bar.set_position(done);
            if !message.is_empty() {
                bar.set_message(message.to_string());
            }
        }
    });
}

extern "C" fn is_cancelled(context: *const ()) -> bool {
    // SAFETY: as in `report_progress`.
    let ctx = unsafe { &*(context as *const CallContext) };
    ctx.cancel.load(Ordering::Relaxed)
}

impl CallContext {
    /// A context with `seed` and no progress sink.
    pub fn new(seed: u64, cancel: Arc<AtomicBool>) -> Self {
        CallContext { seed, cancel, progress: None }
    }

    /// The raw services for one call; valid while `self` is borrowed.
    pub fn services(&self) -> HostServices {
        HostServices {
            context: self as *const CallContext as *const (),
            seed: self.seed,
            report_progress,
            is_cancelled,
        }
    }
}

/// A sampler created from a plugin.
pub struct SamplerHandle {
    /// `plugin.component`.
    pub id: String,
    inner: SamplerBox,
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
    inner: FinetunerBox,
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
    /// Asks the finetuner which layers to train.
    pub fn select(
        &mut self,
        layers: &[LayerInfo],
        oracle: &mut dyn OracleImpl,
        ctx: &CallContext,
    ) -> Result<Selection, ComponentError> {
        let mut state = OracleState { oracle };
        let mut services = OracleServices { context: &mut state as *mut OracleState as *mut (), ask: oracle_ask };
        into_result(&self.id, self.inner.select(RSlice::from_slice(layers), &mut services, &ctx.services()))
    }
}

/// A metric created from a plugin.
pub struct MetricHandle {
    /// `plugin.component`.
    pub id: String,
    inner: MetricBox,
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
}

/// A graph objective created from a plugin.
pub struct GraphObjectiveHandle {
    /// `plugin.component`.
    pub id: String,
    inner: GraphObjectiveBox,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_file_names() {
        assert!(is_plugin_file_name(&library_file_name("tessera_baselines")));
        assert!(!is_plugin_file_name(&library_file_name("faulty_fixture")));
        assert!(!is_plugin_file_name("tessera_baselines.txt"));
    }

    #[test]
    fn suggestions_are_close_names_only() {
        let names = ["baselines.sequential", "baselines.full-shuffle"];
        assert_eq!(closest("baselines.sequentail", names.iter().copied()), Some("baselines.sequential"));
        assert_eq!(closest("corgi2.corgipile", names.iter().copied()), None);
    }

    #[test]
    fn sdk_compatibility_follows_abi_stable() {
        assert!(sdk_compatible("0.1.0", "0.1.0"));
        assert!(sdk_compatible("0.1.0", "0.1.3"));
        assert!(!sdk_compatible("0.1.2", "0.1.0"));
        assert!(!sdk_compatible("0.1.0", "0.2.0"));
        assert!(sdk_compatible("1.2.0", "1.3.0"));
        assert!(!sdk_compatible("1.2.0", "2.0.0"));
    }

    #[test]
    fn libtorch_must_match_only_for_plugins_that_link_it() {
        assert!(libtorch_compatible("2.13.0", ""));
        assert!(libtorch_compatible("2.13.0", "2.13.0"));
        assert!(!libtorch_compatible("2.13.0", "2.12.1"));
        // The engine's torch feature turns on the host's, which records it.
        if cfg!(feature = "torch") {
            assert_eq!(host_libtorch_version(), "2.13.0");
        }
    }

    #[test]
    fn layout_summary_keeps_error_lines() {
        let dump = "blah\n  Error: field a differs\nmore\n  Error: field a differs\nError: size differs\n";
        assert_eq!(layout_summary(dump), vec!["Error: field a differs", "Error: size differs"]);
    }
}
