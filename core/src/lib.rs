//! # tessera-core
//!
//! The host of Tessera: it loads method plugins (built against
//! `tessera-sdk`), reads experiment manifests, runs each variant — data,
//! sampling, finetuning, training, metrics, graphs — and writes a run folder
//! with the resolved manifest, results.json, CSV tables and plots.
//!
//! Dependencies point one way: plugins → sdk ← core. Core never names a
//! plugin; it finds them at run time ([`plugin::Registry`]).

pub mod choice;
pub mod compare;
pub mod contract;
pub mod data;
pub mod figures;
pub mod finetune;
pub mod graph;
pub mod html;
pub mod logger;
pub mod manifest;
pub mod model;
pub mod owned;
pub mod plugin;
pub mod population;
pub mod pretrain;
pub mod report;
pub mod run;
pub mod scaffold;
pub mod shard;
pub mod siamese;
pub mod storage;
pub mod table;
pub mod train;
pub mod validate;
