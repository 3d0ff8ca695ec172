//! Orders that ignore storage: the stored order, and a uniform permutation.

use tessera_sdk::{
    params, Component, Error, FeistelPermutation, Host, OrderStream, Result, Sampler, SeedRng, State, StorageLayout,
};

params! {
    /// Parameters of [`Sequential`] and [`FullShuffle`].
    pub struct ChunkParams {
        /// Example ids per chunk handed to the host.
        pub chunk: u64 = 65_536,
    }
}

fn check_chunk(chunk: u64) -> Result<()> {
    if chunk == 0 {
        return Err(Error::invalid_param("chunk", "must be at least 1"));
    }
    Ok(())
}

/// Visits examples in stored order, every epoch: no shuffling at all.
pub struct Sequential {
    chunk: u64,
}

impl Component for Sequential {
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "sequential";
    const SUMMARY: &'static str = "Stored order every epoch (no shuffle).";
    type Params = ChunkParams;

    fn new(params: ChunkParams) -> Result<Self> {
        check_chunk(params.chunk)?;
        Ok(Sequential { chunk: params.chunk })
    }
}

impl Sampler for Sequential {
    fn epoch_order(&mut self, layout: &StorageLayout, _epoch: u64, _host: &Host) -> Result<OrderStream> {
        let (n, chunk) = (layout.examples, self.chunk);
        Ok(Box::new((0..n.div_ceil(chunk)).map(move |c| (c * chunk..((c + 1) * chunk).min(n)).collect())))
    }
}

/// A fresh uniform permutation of all examples each epoch: the ideal for SGD,
/// at the price of one random storage access per example.
pub struct FullShuffle {
    chunk: u64,
}

impl Component for FullShuffle {
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "full-shuffle";
    const SUMMARY: &'static str = "Uniform random permutation of all examples each epoch (random access).";
    type Params = ChunkParams;

    fn new(params: ChunkParams) -> Result<Self> {
        check_chunk(params.chunk)?;
        Ok(FullShuffle { chunk: params.chunk })
    }
}

impl Sampler for FullShuffle {
    fn epoch_order(&mut self, layout: &StorageLayout, epoch: u64, host: &Host) -> Result<OrderStream> {
        // A Feistel permutation: uniform-looking, O(1) memory, any size.
        let permutation = FeistelPermutation::new(layout.examples, host.rng(epoch).next_u64());
        let (n, chunk) = (layout.examples, self.chunk);
        Ok(Box::new(
            (0..n.div_ceil(chunk))
                .map(move |c| (c * chunk..((c + 1) * chunk).min(n)).map(|i| permutation.get(i)).collect()),
        ))
    }
}

/// Blocks in a random order, the examples of each block in stored order:
/// as cheap to read as a sequential scan, but no mixing inside a block.
pub struct BlockShuffle {
    chunk_blocks: u64,
}

params! {
    /// Parameters of [`BlockShuffle`].
    pub struct BlockShuffleParams {
        /// Blocks per chunk handed to the host.
        pub chunk_blocks: u64 = 64,
    }
}

impl Component for BlockShuffle {
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "block-shuffle";
    const SUMMARY: &'static str = "Random block order; examples within a block in stored order.";
    type Params = BlockShuffleParams;

    fn new(params: BlockShuffleParams) -> Result<Self> {
        if params.chunk_blocks == 0 {
            return Err(Error::invalid_param("chunk_blocks", "must be at least 1"));
        }
        Ok(BlockShuffle { chunk_blocks: params.chunk_blocks })
    }
}

impl Sampler for BlockShuffle {
    fn epoch_order(&mut self, layout: &StorageLayout, epoch: u64, host: &Host) -> Result<OrderStream> {
        let blocks = FeistelPermutation::new(layout.blocks(), host.rng(epoch).next_u64());
        let (total, per_chunk, layout) = (layout.blocks(), self.chunk_blocks, *layout);
        Ok(Box::new((0..total.div_ceil(per_chunk)).map(move |c| {
            (c * per_chunk..((c + 1) * per_chunk).min(total)).flat_map(|k| layout.block_range(blocks.get(k))).collect()
        })))
    }
}

params! {
    /// Parameters of [`ShuffleBuffer`].
    pub struct ShuffleBufferParams {
        /// Buffer size B, in examples.
        pub buffer_examples: u64 = 1024,
        /// Example ids per chunk handed to the host.
        pub chunk: u64 = 4096,
    }
}

/// tf.data's `shuffle(B)`: the stored order streams through a buffer of B
/// examples; each output is drawn uniformly from the buffer and its place
/// taken by the next input. Sequential reads, local mixing only.
pub struct ShuffleBuffer {
    params: ShuffleBufferParams,
}

impl Component for ShuffleBuffer {
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "shuffle-buffer";
    const SUMMARY: &'static str =
        "Sliding-window shuffle buffer of B examples over the stored order (tf.data semantics).";
    type Params = ShuffleBufferParams;

    fn new(params: ShuffleBufferParams) -> Result<Self> {
        if params.buffer_examples == 0 {
            return Err(Error::invalid_param("buffer_examples", "must be at least 1"));
        }
        if params.chunk == 0 {
            return Err(Error::invalid_param("chunk", "must be at least 1"));
        }
        Ok(ShuffleBuffer { params })
    }
}

struct ShuffleBufferOrder {
    next_input: u64,
    n: u64,
    buffer: Vec<u64>,
    chunk: u64,
    rng: SeedRng,
}

impl Iterator for ShuffleBufferOrder {
    type Item = Vec<u64>;

    fn next(&mut self) -> Option<Vec<u64>> {
        let mut out = Vec::with_capacity(self.chunk as usize);
        while (out.len() as u64) < self.chunk && !self.buffer.is_empty() {
            let k = self.rng.below(self.buffer.len() as u64) as usize;
            if self.next_input < self.n {
                out.push(std::mem::replace(&mut self.buffer[k], self.next_input));
                self.next_input += 1;
            } else {
                out.push(self.buffer.swap_remove(k));
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

impl Sampler for ShuffleBuffer {
    fn epoch_order(&mut self, layout: &StorageLayout, epoch: u64, host: &Host) -> Result<OrderStream> {
        let fill = self.params.buffer_examples.min(layout.examples);
        Ok(Box::new(ShuffleBufferOrder {
            next_input: fill,
            n: layout.examples,
            buffer: (0..fill).collect(),
            chunk: self.params.chunk,
            rng: host.rng(epoch),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::testing::TestHost;

    fn order(sampler: &mut dyn FnMut(&StorageLayout, &Host) -> OrderStream, n: u64, b: u64) -> Vec<u64> {
        let services = TestHost::new(4);
        let layout = tessera_sdk::testing::layout(n, b);
        sampler(&layout, &services.host()).flatten().collect()
    }

    fn is_permutation(ids: &[u64], n: u64) -> bool {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted == (0..n).collect::<Vec<_>>()
    }

    #[test]
    fn every_baseline_visits_every_example_once() {
        for (n, b) in [(1u64, 1u64), (97, 10), (1000, 64), (4096, 1)] {
            let mut seq = Sequential::new(ChunkParams { chunk: 7 }).unwrap();
            let mut full = FullShuffle::new(ChunkParams { chunk: 7 }).unwrap();
            let mut blocks = BlockShuffle::new(BlockShuffleParams { chunk_blocks: 3 }).unwrap();
            let mut window = ShuffleBuffer::new(ShuffleBufferParams { buffer_examples: 50, chunk: 7 }).unwrap();
            assert_eq!(order(&mut |l, h| seq.epoch_order(l, 0, h).unwrap(), n, b), (0..n).collect::<Vec<_>>());
            assert!(is_permutation(&order(&mut |l, h| full.epoch_order(l, 0, h).unwrap(), n, b), n));
            let by_block = order(&mut |l, h| blocks.epoch_order(l, 0, h).unwrap(), n, b);
            assert!(is_permutation(&by_block, n));
            assert!(
                by_block.windows(2).filter(|w| w[1] != w[0] + 1).count() as u64 <= n.div_ceil(b),
                "in-block runs stay sequential"
            );
            assert!(is_permutation(&order(&mut |l, h| window.epoch_order(l, 0, h).unwrap(), n, b), n));
        }
    }

    #[test]
    fn the_shuffle_buffer_only_mixes_locally() {
        let mut window = ShuffleBuffer::new(ShuffleBufferParams { buffer_examples: 10, chunk: 100 }).unwrap();
        let ids = order(&mut |l, h| window.epoch_order(l, 0, h).unwrap(), 10_000, 10);
        // Output position t can only hold inputs 0..t+B.
        assert!(ids.iter().enumerate().all(|(t, &id)| id < t as u64 + 10));
        assert!(ShuffleBuffer::new(ShuffleBufferParams { buffer_examples: 0, chunk: 1 }).is_err());
    }
}
