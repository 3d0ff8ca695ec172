//! Tessera's data layer: where examples and graphs come from, and how they
//! are stored and read. [`data`] holds the sources (generated, shipped and
//! file formats, read example by example) and the seeded splits;
//! [`storage`] the shard format, the block loader and its I/O cost model;
//! [`shard`] writes shard folders (`tessera shard`); [`graph`] the graph
//! sources, edge-list parsing and the CSR cache; [`file_map`] read-only
//! memory maps. Builds and tests without libtorch.

pub mod data;
pub mod error;
pub mod file_map;
pub mod graph;
pub mod shard;
pub mod storage;

pub use error::{DataError, Result};
use tessera_config::{choice, manifest, validate};
use tessera_util::confined;
