//! SubTuning: less is more for pretrained finetuning (Kaplun, Gurevich,
//! Swisa, David, Shalev-Shwartz, Malach; 2023).
//!
//! Only a subset S of a pretrained network's blocks trains, plus a new head;
//! every other block stays at its pretrained weights (BatchNorm statistics
//! included). S is chosen by validation accuracy: each candidate set trains
//! from the pretrained weights with a fresh head and is scored by k-fold
//! cross-validation through the host's oracle.
//!
//! - [`search`]: the finetuning profile and the greedy search, as plain
//!   functions of a scoring function.
//! - `subtuning.profile`: the accuracy of training each block alone.
//! - `subtuning.greedy`: greedy selection, adding blocks from none, removing
//!   them from all, or the better of both.
//!
//! The tensors stay in the host: this plugin only decides which sets to try.

mod finetuners;
pub mod search;

pub use finetuners::{Greedy, Profile};

tessera_sdk::export_plugin! {
    name: "subtuning",
    finetuners: [Profile, Greedy],
}
