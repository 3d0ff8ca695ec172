//! The registry: every loaded plugin by name, its components resolved by
//! id (with did-you-mean), and components created from it; plugins' log
//! records forwarded to the host's logger.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::std_types::RStr;
use tessera_sdk::{ComponentInfo, ComponentKind, HostLogger, PluginModRef};

use super::*;

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

pub(super) fn layout_summary(dump: &str) -> Vec<String> {
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
