//! Plugin libraries: their file names, the SDK and libtorch versions a
//! library must match, and what loading one can fail with.

use std::path::{Path, PathBuf};

use tessera_sdk::{ComponentInfo, ComponentKind, PluginInfo, PluginModRef};

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
    pub(super) module: PluginModRef,
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
