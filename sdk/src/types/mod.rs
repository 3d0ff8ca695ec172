//! Plain data exchanged between the host and plugins. Every type here is
//! `#[repr(C)]` and `StableAbi`, built only from abi_stable's R-types; one
//! file per part of the contract.

mod finetuning;
mod graph;
mod observations;
mod report;
mod state;
mod steps;
mod storage;

pub use finetuning::*;
pub use graph::*;
pub use observations::*;
pub use report::*;
pub use state::*;
pub use steps::*;
pub use storage::*;
