//! The plugin's root module and the metadata it reports: the part of the ABI
//! that the host reads before anything else.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RResult, RStr, RString, RVec},
    StableAbi,
};

use crate::ffi::{FinetunerBox, GraphObjectiveBox, MetricBox, SamplerBox};

/// The four kinds of component a plugin can provide, one per host trait.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ComponentKind {
    /// Gives the order in which examples are visited ([`crate::Sampler`]).
    Sampler,
    /// Chooses which layers train ([`crate::Finetuner`]).
    Finetuner,
    /// Observes a run at checkpoints and reports figures ([`crate::Metric`]).
    Metric,
    /// Chooses seed sets on a graph ([`crate::GraphObjective`]).
    GraphObjective,
}

impl ComponentKind {
    /// All kinds, in the order the host lists them.
    pub const ALL: [ComponentKind; 4] =
        [ComponentKind::Sampler, ComponentKind::Finetuner, ComponentKind::Metric, ComponentKind::GraphObjective];

    /// The kind's name as manifests and `tessera plugins` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Sampler => "sampler",
            ComponentKind::Finetuner => "finetuner",
            ComponentKind::Metric => "metric",
            ComponentKind::GraphObjective => "graph-objective",
        }
    }
}

impl std::fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parameter of a component, as `tessera plugins` documents it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// The key in the manifest.
    pub name: RString,
    /// The Rust type, e.g. `u64` or `Option<f64>`.
    pub type_name: RString,
    /// The default as TOML text; empty when the parameter has no default value.
    pub default: RString,
    /// What the parameter means (the field's doc comment).
    pub doc: RString,
}

/// One component of a plugin: what it is and which parameters it takes.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ComponentInfo {
    /// Which host trait it implements.
    pub kind: ComponentKind,
    /// Its name within the plugin; a manifest names it `plugin.name`.
    pub name: RString,
    /// One line saying what it does.
    pub summary: RString,
    /// Its parameters with types, defaults and docs.
    pub params: RVec<ParamSpec>,
}

/// What a plugin says about itself when loaded.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct PluginInfo {
    /// The plugin's name: the first half of `plugin.component` in manifests.
    pub name: RString,
    /// The plugin crate's own version.
    pub version: RString,
    /// The version of tessera-sdk the plugin was built against.
    pub sdk_version: RString,
    /// The libtorch version the plugin links, or empty if it links none.
    pub libtorch_version: RString,
    /// Every component the plugin provides.
    pub components: RVec<ComponentInfo>,
}

/// What kind of failure a [`PluginError`] reports.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A component parameter is unknown, missing or of the wrong type or value.
    InvalidParams,
    /// The manifest names a component the plugin does not have.
    UnknownComponent,
    /// The component failed while working.
    Failed,
    /// The component panicked; the panic was caught at the boundary.
    Panicked,
    /// The host asked to stop and the component stopped.
    Cancelled,
}

/// An error crossing the plugin boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct PluginError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// A message for the user.
    pub message: RString,
    /// The parameter key at fault, where one is (empty otherwise).
    pub key: RString,
}

/// The host's log sink, handed to a plugin at load so that its `log::info!`
/// and friends reach the host's logger with the plugin's target.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct HostLogger {
    /// Receives one record: level (1 = error .. 5 = trace), target, message.
    pub log: extern "C" fn(level: u8, target: RStr<'_>, message: RStr<'_>),
    /// The most verbose level the host wants (0 = off .. 5 = trace).
    pub max_level: u8,
}

/// The root module every Tessera plugin exports (a prefix type: later SDK
/// versions may only append fields).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// The plugin's name, versions and components.
    pub info: extern "C" fn() -> PluginInfo,
    /// Installs the host's log sink in the plugin's copy of `log`.
    pub install_logger: extern "C" fn(logger: HostLogger),
    /// Creates the sampler `name` from its parameters (TOML text).
    pub new_sampler: extern "C" fn(name: RStr<'_>, params: RStr<'_>) -> RResult<SamplerBox, PluginError>,
    /// Creates the finetuner `name` from its parameters (TOML text).
    pub new_finetuner: extern "C" fn(name: RStr<'_>, params: RStr<'_>) -> RResult<FinetunerBox, PluginError>,
    /// Creates the metric `name` from its parameters (TOML text).
    pub new_metric: extern "C" fn(name: RStr<'_>, params: RStr<'_>) -> RResult<MetricBox, PluginError>,
    /// Creates the graph objective `name` from its parameters (TOML text).
    #[sabi(last_prefix_field)]
    pub new_graph_objective: extern "C" fn(name: RStr<'_>, params: RStr<'_>) -> RResult<GraphObjectiveBox, PluginError>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "tessera_plugin";
    const NAME: &'static str = "tessera_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
