//! Baselines that every method is compared against, one per trait kind and
//! more: sequential and fully shuffled orders, linear probing and full
//! finetuning, accuracy, and top-degree / random seed sets.

mod finetuners;
mod graph;
mod metrics;
mod samplers;

pub use finetuners::{FullFinetuning, LastK, LinearProbe};
pub use graph::{RandomSeeds, TopDegree};
pub use metrics::Accuracy;
pub use samplers::{BlockShuffle, FullShuffle, Sequential, ShuffleBuffer};

tessera_sdk::export_plugin! {
    name: "baselines",
    samplers: [Sequential, FullShuffle, BlockShuffle, ShuffleBuffer],
    finetuners: [LinearProbe, FullFinetuning, LastK],
    metrics: [Accuracy],
    graph_objectives: [TopDegree, RandomSeeds],
}
