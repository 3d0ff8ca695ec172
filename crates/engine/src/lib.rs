//! # tessera-engine
//!
//! Tessera's engine and its command: it plans a manifest's variants into
//! units, runs them through an executor (inline, processes, Slurm), collects
//! them into a run folder, and hands graph-only work to `tessera-graph`.
//! The layers below it are crates of their own, re-exported here under
//! their old module names so that a path reads the same from anywhere:
//!
//! | crate | modules |
//! |---|---|
//! | `tessera-util` | [`confined`], [`logger`] |
//! | `tessera-config` | [`choice`], [`manifest`], [`validate`] (with the plugin checks here), [`population`] plans |
//! | `tessera-data` | [`data`], [`storage`], [`shard`], [`graph`], [`file_map`] |
//! | `tessera-report` | [`report`], [`figures`], [`html`], [`compare`], [`table`] |
//! | `tessera-host` | [`plugin`], [`contract`] |
//! | `tessera-torch` | `model`, `train`, `finetune`, `pretrain`, `siamese`, `population` members |
//!
//! The `torch` feature (on by default) brings `tessera-torch`. Without it
//! the crate builds `tessera-graph`, which runs graph experiments and reads
//! run folders without loading libtorch; `tessera` hands graph runs to it
//! ([`handoff`]).

// Without libtorch some helpers of training go unused.
#![cfg_attr(not(feature = "torch"), allow(dead_code))]

pub mod error;
pub mod handoff;
pub mod owned;
pub mod run;
pub mod validate;

pub use error::{EngineError, Result};
pub use tessera_config::{choice, manifest};
pub use tessera_data::{data, file_map, graph, shard, storage, DataError};
pub use tessera_host::{contract, plugin};
pub use tessera_report::{compare, figures, html, report, system, table};
pub use tessera_util::{confined, logger, process};

/// Populations: the plan (no libtorch) and, with `torch`, the members.
pub mod population {
    pub use tessera_config::population::*;
    #[cfg(feature = "torch")]
    pub use tessera_torch::population::*;
}

#[cfg(feature = "torch")]
pub use tessera_torch::{finetune, model, pretrain, siamese, train, TorchError};
