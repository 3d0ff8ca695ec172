//! Sharded storage: a dataset laid out on disk in blocks of b examples, each
//! block readable with one request, checksummed, and read back through a
//! buffer of blocks with I/O accounting and a storage cost model.
//!
//! ## On-disk format (version 1)
//!
//! A shard set is a folder:
//!
//! - `index.json`: the layout — format version, example shape, classes, the
//!   bytes of one record, the block size b, the number of examples, the shard
//!   files, and for every block: its shard, byte offset, byte length, number
//!   of examples and the CRC-32 of its bytes.
//! - `shard-00000.bin`, `shard-00001.bin`, …: blocks back to back. A block is
//!   its examples' records in order; a record is the label (i64,
//!   little-endian) followed by the features (f32, little-endian, row-major,
//!   the product of the shape).
//!
//! Example `i` of the set is record `i % b` of block `i / b`; the last block
//! may be shorter. A block is one `pread` (one storage request); a checksum
//! mismatch or a short read is an error naming the file, the block and the
//! byte offset.
//!
//! A shard set may also live under a prefix of an object store
//! (`s3://bucket/prefix`, [`Location::Store`]): the same objects, a block
//! one ranged GET, many in flight at once.

mod backing;
mod cache;
mod cost;
mod format;
mod loader;
mod output;

pub use backing::{store_client, store_error, Location};
pub use cache::{BlockCache, CacheCounts, CACHE_MARKER};
pub use cost::{CostModel, IoStats};
pub use format::{
    write_shards, BlockEntry, ShardIndex, ShardSet, ShardWriter, FORMAT_VERSION, MAX_BLOCK_BYTES, MAX_INDEX_BYTES,
    MAX_RECORD_BYTES,
};
pub use loader::{Access, BlockLoader, EpochOrder, EpochReader, LoadedExample, LruPolicy};
pub use output::StoreOutput;
pub use tessera_store::{StoreCounts, StoreOptions, StoreUrl};
