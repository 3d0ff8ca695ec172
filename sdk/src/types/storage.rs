//! How a dataset is laid out in storage, as a sampler sees it.

use abi_stable::StableAbi;

/// How a dataset is laid out in storage, as a sampler sees it: `examples`
/// examples in blocks of `block_size` (the last block may be partial), each
/// block one storage request. Example `i` lives in block `i / block_size`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageLayout {
    /// Number of examples, N·b in the CorgiPile paper's notation (roughly).
    pub examples: u64,
    /// Examples per block, b.
    pub block_size: u64,
    /// Bytes one example takes on storage (for cost accounting).
    pub bytes_per_example: u64,
}

impl StorageLayout {
    /// Number of blocks, N = ⌈examples / b⌉.
    pub fn blocks(&self) -> u64 {
        if self.block_size == 0 {
            0
        } else {
            self.examples.div_ceil(self.block_size)
        }
    }

    /// The example ids of block `block` (the last block may be shorter).
    pub fn block_range(&self, block: u64) -> std::ops::Range<u64> {
        let start = block * self.block_size;
        start..(start + self.block_size).min(self.examples)
    }

    /// The block that holds example `example`.
    pub fn block_of(&self, example: u64) -> u64 {
        example / self.block_size
    }
}
