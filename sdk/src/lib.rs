//! # tessera-sdk
//!
//! The stable ABI of Tessera, and all a plugin author sees. A plugin is a
//! `cdylib` crate that implements one or more of four traits —
//! [`Sampler`], [`Finetuner`], [`Metric`], [`GraphObjective`] — on plain
//! structs, declares their parameters with [`params!`], and exports them with
//! one [`export_plugin!`] line:
//!
//! ```ignore
//! use tessera_sdk::{export_plugin, params, Component, Host, OrderStream, Result, Sampler, StorageLayout};
//!
//! params! {
//!     /// Parameters of [`Reverse`].
//!     pub struct ReverseParams {
//!         /// Example ids per chunk handed to the host.
//!         pub chunk: u64 = 4096,
//!     }
//! }
//!
//! pub struct Reverse(ReverseParams);
//!
//! impl Component for Reverse {
//!     const NAME: &'static str = "reverse";
//!     const SUMMARY: &'static str = "Visits examples from last to first.";
//!     type Params = ReverseParams;
//!     fn new(params: ReverseParams) -> Result<Self> { Ok(Reverse(params)) }
//! }
//!
//! impl Sampler for Reverse {
//!     fn epoch_order(&mut self, layout: &StorageLayout, _epoch: u64, _host: &Host) -> Result<OrderStream> {
//!         let ids: Vec<u64> = (0..layout.examples).rev().collect();
//!         let chunks: Vec<Vec<u64>> = ids.chunks(self.0.chunk.max(1) as usize).map(<[u64]>::to_vec).collect();
//!         Ok(Box::new(chunks.into_iter()))
//!     }
//! }
//!
//! export_plugin! { name: "hello", samplers: [Reverse] }
//! ```
//!
//! Only abi_stable R-types cross the boundary ([`ffi`], [`abi`], and the data
//! types re-exported here); every entry point runs under `catch_unwind`, so a
//! panicking plugin fails its call with an error, never the host.

#![deny(missing_docs)]

// Lets `params!` name `tessera_sdk::serde` inside this crate too.
extern crate self as tessera_sdk;

pub mod abi;
mod author;
pub mod ffi;
pub mod logging;
mod rng;
pub mod testing;
mod types;

pub use abi::{
    ComponentInfo, ComponentKind, ErrorKind, HostLogger, ParamSpec, PluginError, PluginInfo, PluginMod, PluginModRef,
};
pub use author::{
    component_info, guard, new_finetuner, new_graph_objective, new_metric, new_sampler, parse_params,
    unknown_component, Component, Error, Finetuner, GraphObjective, Host, Metric, NoParams, Observations, Oracle,
    OrderStream, Params, Result, Sampler, State,
};
pub use rng::{FeistelPermutation, SeedRng};
pub use types::{
    observation, Array, ArrayData, Candidates, Cell, Checkpoint, Chosen, GraphView, LayerInfo, NamedArray, Observation,
    ObservationRequest, OracleAnswer, OracleQuery, Report, Sampling, SavedState, Scalar, Schedule, SeedChoice,
    Selection, Series, StateKind, StorageLayout, Table, TensorInfo, WeightedSeeds,
};

/// Everything a plugin author needs, in one `use tessera_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        bail, export_plugin, log, observation, params, Array, Candidates, Cell, Checkpoint, Chosen, Component, Error,
        Finetuner, GraphObjective, GraphView, Host, LayerInfo, Metric, NoParams, Observation, ObservationRequest,
        Observations, Oracle, OracleAnswer, OracleQuery, OrderStream, Report, Result, Sampler, Sampling, Schedule,
        SeedChoice, SeedRng, Selection, State, StorageLayout,
    };
}

#[doc(hidden)]
pub use abi_stable;
/// The `log` crate: a plugin logs with `log::info!` and the like (in the
/// prelude), and the host writes the records to the run's `run.log` under
/// the plugin's target.
pub use log;
#[doc(hidden)]
pub use serde;

/// The version of tessera-sdk, compiled into every plugin. The host refuses a
/// plugin built against another minor version (0.y: another y).
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The libtorch version this SDK build links (feature `torch`), or "" for
/// plugins that never touch tensors. The host refuses a plugin whose libtorch
/// differs from its own.
pub const LIBTORCH_VERSION: &str = match option_env!("TESSERA_SDK_LIBTORCH_VERSION") {
    Some(v) => v,
    None => "",
};

#[doc(hidden)]
pub mod __private {
    use super::*;
    use abi_stable::prefix_type::PrefixTypeTrait;
    use abi_stable::std_types::{RResult, RStr};

    pub use abi_stable::library::{__call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult};

    /// The documented spec of one parameter, its default rendered as TOML.
    pub fn param_spec<T: serde::Serialize>(name: &str, type_name: &str, default: &T, docs: &[&str]) -> ParamSpec {
        let default = toml::Value::try_from(default).map(|v| v.to_string()).unwrap_or_default();
        let doc = docs.iter().map(|line| line.trim()).collect::<Vec<_>>().join(" ");
        ParamSpec {
            name: name.into(),
            type_name: type_name.replace(' ', "").into(),
            default: default.into(),
            doc: doc.into(),
        }
    }

    /// The plugin's self-description.
    pub fn plugin_info(name: &str, version: &str, components: Vec<ComponentInfo>) -> PluginInfo {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            sdk_version: SDK_VERSION.into(),
            libtorch_version: LIBTORCH_VERSION.into(),
            components: components.into(),
        }
    }

    /// Installs the host's log sink (the root module's `install_logger`).
    pub extern "C" fn install_logger(logger: HostLogger) {
        logging::install(logger)
    }

    /// Type of the generated constructors.
    pub type Constructor<T> = extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<T, PluginError>;

    /// Builds the root module from the generated functions.
    pub fn root_module(
        info: extern "C" fn() -> PluginInfo,
        new_sampler: Constructor<ffi::SamplerBox>,
        new_finetuner: Constructor<ffi::FinetunerBox>,
        new_metric: Constructor<ffi::MetricBox>,
        new_graph_objective: Constructor<ffi::GraphObjectiveBox>,
    ) -> PluginModRef {
        PluginMod { info, install_logger, new_sampler, new_finetuner, new_metric, new_graph_objective }
            .leak_into_prefix()
    }
}

/// Declares a component's parameters: a serde struct that rejects unknown
/// keys, with a default for every field, documented for `tessera plugins`.
///
/// ```ignore
/// tessera_sdk::params! {
///     /// Parameters of CorgiPile.
///     pub struct CorgiPileParams {
///         /// Buffer size n, in blocks.
///         pub buffer_blocks: u64 = 10,
///     }
/// }
/// ```
/// The plugin crate must name its dependency `tessera_sdk` (the default).
#[macro_export]
macro_rules! params {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $fvis:vis $field:ident : $ty:ty = $default:expr
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, $crate::serde::Deserialize, $crate::serde::Serialize)]
        #[serde(deny_unknown_fields, default, crate = "tessera_sdk::serde")]
        $vis struct $name {
            $( $(#[doc = $doc])* $fvis $field: $ty, )*
        }

        impl ::core::default::Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        impl $crate::Params for $name {
            fn specs() -> ::std::vec::Vec<$crate::ParamSpec> {
                let _defaults = <Self as ::core::default::Default>::default();
                ::std::vec![
                    $( $crate::__private::param_spec(stringify!($field), stringify!($ty), &_defaults.$field, &[$($doc),*]) ),*
                ]
            }
        }
    };
}

/// Exports a plugin: its name and its components by kind. Write it once, at
/// the crate root of a `cdylib`:
///
/// ```ignore
/// tessera_sdk::export_plugin! {
///     name: "baselines",
///     samplers: [Sequential, FullShuffle],
///     metrics: [Accuracy],
/// }
/// ```
/// Lists may be left out; their order is free. The plugin's version is its
/// crate's version.
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:literal
        $(, samplers: [$($sampler:ty),* $(,)?])?
        $(, finetuners: [$($finetuner:ty),* $(,)?])?
        $(, metrics: [$($metric:ty),* $(,)?])?
        $(, graph_objectives: [$($objective:ty),* $(,)?])?
        $(,)?
    ) => {
        const _: () = {
            use $crate::abi_stable::std_types::{RResult, RStr};
            use $crate::{ComponentKind, PluginError};

            extern "C" fn info() -> $crate::PluginInfo {
                #[allow(unused_mut)]
                let mut components = ::std::vec::Vec::new();
                $($( components.push($crate::component_info::<$sampler>(ComponentKind::Sampler)); )*)?
                $($( components.push($crate::component_info::<$finetuner>(ComponentKind::Finetuner)); )*)?
                $($( components.push($crate::component_info::<$metric>(ComponentKind::Metric)); )*)?
                $($( components.push($crate::component_info::<$objective>(ComponentKind::GraphObjective)); )*)?
                $crate::__private::plugin_info($name, env!("CARGO_PKG_VERSION"), components)
            }

            extern "C" fn new_sampler(name: RStr<'_>, params: RStr<'_>) -> RResult<$crate::ffi::SamplerBox, PluginError> {
                $crate::guard("sampler constructor", || {
                    $($( if name.as_str() == <$sampler as $crate::Component>::NAME {
                        return $crate::new_sampler::<$sampler>(params.as_str());
                    } )*)?
                    let _ = params;
                    Err($crate::unknown_component($name, ComponentKind::Sampler, name.as_str()))
                })
            }

            extern "C" fn new_finetuner(name: RStr<'_>, params: RStr<'_>) -> RResult<$crate::ffi::FinetunerBox, PluginError> {
                $crate::guard("finetuner constructor", || {
                    $($( if name.as_str() == <$finetuner as $crate::Component>::NAME {
                        return $crate::new_finetuner::<$finetuner>(params.as_str());
                    } )*)?
                    let _ = params;
                    Err($crate::unknown_component($name, ComponentKind::Finetuner, name.as_str()))
                })
            }

            extern "C" fn new_metric(name: RStr<'_>, params: RStr<'_>) -> RResult<$crate::ffi::MetricBox, PluginError> {
                $crate::guard("metric constructor", || {
                    $($( if name.as_str() == <$metric as $crate::Component>::NAME {
                        return $crate::new_metric::<$metric>(params.as_str());
                    } )*)?
                    let _ = params;
                    Err($crate::unknown_component($name, ComponentKind::Metric, name.as_str()))
                })
            }

            extern "C" fn new_graph_objective(name: RStr<'_>, params: RStr<'_>) -> RResult<$crate::ffi::GraphObjectiveBox, PluginError> {
                $crate::guard("graph-objective constructor", || {
                    $($( if name.as_str() == <$objective as $crate::Component>::NAME {
                        return $crate::new_graph_objective::<$objective>(params.as_str());
                    } )*)?
                    let _ = params;
                    Err($crate::unknown_component($name, ComponentKind::GraphObjective, name.as_str()))
                })
            }

            fn root_module() -> $crate::PluginModRef {
                $crate::__private::root_module(info, new_sampler, new_finetuner, new_metric, new_graph_objective)
            }

            extern "C" fn erased_root_module() -> $crate::__private::RootModuleResult {
                $crate::__private::__call_root_module_loader(root_module)
            }

            // What `#[abi_stable::export_root_module]` emits, written out so that
            // plugins need no direct dependency on abi_stable. The symbol name is
            // abi_stable's ROOT_MODULE_LOADER_NAME (checked by an SDK test).
            #[no_mangle]
            pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::__private::LibHeader = unsafe {
                $crate::__private::LibHeader::from_constructor::<$crate::PluginModRef>(
                    erased_root_module,
                    $crate::__private::CheckTypeLayout::Yes,
                )
            };
        };
    };
}

#[cfg(test)]
mod tests {
    /// `export_plugin!` writes this symbol name out by hand.
    #[test]
    fn root_module_symbol_matches_abi_stable() {
        let exported =
            include_str!("lib.rs").contains(concat!("pub static ", "_1as_0lib_1header_0root_bmodule_bloader"));
        assert!(exported);
        assert_eq!(abi_stable::library::ROOT_MODULE_LOADER_NAME, "_1as_0lib_1header_0root_bmodule_bloader");
    }

    #[test]
    fn params_report_the_key_at_fault() {
        crate::params! {
            /// Test parameters.
            pub struct P {
                /// Buffer size in blocks.
                pub buffer_blocks: u64 = 10,
                /// Optional ratio.
                pub ratio: Option<f64> = None,
            }
        }
        let p: P = crate::parse_params("buffer_blocks = 3\n").unwrap();
        assert_eq!(p.buffer_blocks, 3);
        assert_eq!(p.ratio, None);
        let e = crate::parse_params::<P>("ratio = 0.5\nbufer_blocks = 3\n").unwrap_err();
        assert_eq!(e.key(), Some("bufer_blocks"), "{e}");
        assert!(e.message().contains("unknown field"), "{e}");
        let e = crate::parse_params::<P>("buffer_blocks = \"ten\"\n").unwrap_err();
        assert_eq!(e.key(), Some("buffer_blocks"), "{e}");
        let specs = <P as crate::Params>::specs();
        assert_eq!(specs[0].name.as_str(), "buffer_blocks");
        assert_eq!(specs[0].type_name.as_str(), "u64");
        assert_eq!(specs[0].default.as_str(), "10");
        assert_eq!(specs[0].doc.as_str(), "Buffer size in blocks.");
        assert_eq!(specs[1].default.as_str(), "");
    }

    #[test]
    fn guard_turns_a_panic_into_an_error() {
        let r: abi_stable::std_types::RResult<(), crate::PluginError> = crate::guard("demo", || panic!("boom"));
        let e = r.unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Panicked);
        assert!(e.message.contains("demo panicked: boom"));
    }
}
