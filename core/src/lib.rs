//! # tessera-core
//!
//! The host of Tessera: it loads method plugins (built against
//! `tessera-sdk`), reads experiment manifests, runs each variant — data,
//! sampling, finetuning, training, metrics, graphs — and writes a run folder
//! with the resolved manifest, results.json, CSV tables and plots.
//!
//! Dependencies point one way: plugins → sdk ← core. Core never names a
//! plugin; it finds them at run time ([`plugin::Registry`]).
//!
//! The `torch` feature (on by default) brings training: models, the
//! engine's loops, populations. Without it the crate builds `tessera-graph`,
//! which runs graph experiments and reads run folders without loading
//! libtorch; `tessera` hands graph runs to it ([`handoff`]).

// Without libtorch some helpers of training go unused.
#![cfg_attr(not(feature = "torch"), allow(dead_code))]

pub use tessera_config::choice;
pub use tessera_report::compare;
pub use tessera_util::confined;
pub use tessera_host::contract;
pub use tessera_data::data;
pub use tessera_report::figures;
pub use tessera_data::file_map;
#[cfg(feature = "torch")]
pub mod finetune;
pub use tessera_data::graph;
pub mod handoff;
pub use tessera_report::html;
pub use tessera_config::manifest;
pub use tessera_util::logger;
#[cfg(feature = "torch")]
pub mod model;
pub mod owned;
pub use tessera_host::plugin;
pub mod population;
#[cfg(feature = "torch")]
pub mod pretrain;
pub use tessera_report::report;
pub mod run;
pub mod scaffold;
pub use tessera_data::shard;
#[cfg(feature = "torch")]
pub mod siamese;
pub use tessera_data::storage;
pub use tessera_report::table;
#[cfg(feature = "torch")]
pub mod train;
pub mod validate;
