//! The samplers: CorgiPile, and Corgi²'s offline pass plus online CorgiPile.

use tessera_sdk::{
    params, Component, Error, FeistelPermutation, Host, OrderStream, Result, Sampler, SeedRng, State, StorageLayout,
};

params! {
    /// The buffer of CorgiPile.
    pub struct CorgiPileParams {
        /// Buffer size n, in blocks (takes precedence over `buffer_ratio`).
        pub buffer_blocks: Option<u64> = None,
        /// Buffer size as a fraction of the N blocks (the paper uses 10 %).
        pub buffer_ratio: f64 = 0.1,
    }
}

/// Resolves the buffer size n for `layout`, or says why it is wrong.
fn buffer_size(blocks: Option<u64>, ratio: f64, layout: &StorageLayout, key: &str) -> Result<u64> {
    let total = layout.blocks();
    let n = match blocks {
        Some(0) => return Err(Error::invalid_param(key, "must be at least 1 block")),
        Some(n) => n,
        None => {
            if !(ratio > 0.0 && ratio <= 1.0) {
                return Err(Error::invalid_param("buffer_ratio", format!("{ratio} is not in (0, 1]")));
            }
            ((ratio * total as f64).round() as u64).max(1)
        }
    };
    if n > total {
        return Err(Error::invalid_param(
            key,
            format!(
                "a buffer of {n} blocks is larger than the data ({total} blocks of {}); use at most {total}",
                layout.block_size
            ),
        ));
    }
    Ok(n)
}

/// One CorgiPile pass: blocks in a seeded random order, `n` at a time; the
/// examples of each group are shuffled uniformly and yielded as one chunk.
/// Memory: one group, n·b ids; the block order itself is a Feistel
/// permutation (O(1) memory), so a billion examples stream.
pub struct CorgiPileOrder {
    layout: StorageLayout,
    blocks: FeistelPermutation,
    next: u64,
    n: u64,
    rng: SeedRng,
}

impl CorgiPileOrder {
    /// The pass over `layout` with a buffer of `n` blocks, drawn from `rng`.
    pub fn new(layout: StorageLayout, n: u64, mut rng: SeedRng) -> Self {
        let blocks = FeistelPermutation::new(layout.blocks(), rng.next_u64());
        CorgiPileOrder { layout, blocks, next: 0, n, rng }
    }
}

impl Iterator for CorgiPileOrder {
    type Item = Vec<u64>;

    fn next(&mut self) -> Option<Vec<u64>> {
        let total = self.blocks.len();
        if self.next >= total {
            return None;
        }
        let end = (self.next + self.n).min(total);
        let mut ids = Vec::with_capacity(((end - self.next) * self.layout.block_size) as usize);
        for k in self.next..end {
            ids.extend(self.layout.block_range(self.blocks.get(k)));
        }
        self.next = end;
        self.rng.shuffle(&mut ids);
        Some(ids)
    }
}

/// Corgi²'s offline pass drawn *with* replacement: each round draws n blocks
/// uniformly from all N (a block may come again); the examples of drawn
/// blocks not yet written are shuffled together and written. Rounds go on
/// until every example is written (a coupon collector: more rounds, less mixing
/// per round at the end).
struct WithReplacementOrder {
    layout: StorageLayout,
    written: Vec<u64>,
    remaining: u64,
    n: u64,
    rng: SeedRng,
}

impl Iterator for WithReplacementOrder {
    type Item = Vec<u64>;

    fn next(&mut self) -> Option<Vec<u64>> {
        if self.remaining == 0 {
            return None;
        }
        let total = self.layout.blocks();
        let mut ids = Vec::new();
        for _ in 0..self.n {
            let block = self.rng.below(total);
            let (word, bit) = ((block / 64) as usize, block % 64);
            if self.written[word] & (1 << bit) == 0 {
                self.written[word] |= 1 << bit;
                self.remaining -= 1;
                ids.extend(self.layout.block_range(block));
            }
        }
        self.rng.shuffle(&mut ids);
        Some(ids)
    }
}

/// CorgiPile: block-wise random access with an in-memory shuffle buffer.
pub struct CorgiPile {
    params: CorgiPileParams,
}

impl Component for CorgiPile {
    /// Each epoch's order comes from its parameters, the epoch and the
    /// seed alone: a new instance continues as well.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "corgipile";
    const SUMMARY: &'static str = "Random block order, n blocks at a time in a buffer shuffled uniformly (CorgiPile).";
    type Params = CorgiPileParams;

    fn new(params: CorgiPileParams) -> Result<Self> {
        if params.buffer_blocks == Some(0) {
            return Err(Error::invalid_param("buffer_blocks", "must be at least 1 block"));
        }
        Ok(CorgiPile { params })
    }
}

impl Sampler for CorgiPile {
    fn epoch_order(&mut self, layout: &StorageLayout, epoch: u64, host: &Host) -> Result<OrderStream> {
        let n = buffer_size(self.params.buffer_blocks, self.params.buffer_ratio, layout, "buffer_blocks")?;
        log::debug!("epoch {epoch}: {} blocks, buffer of {n}", layout.blocks());
        Ok(Box::new(CorgiPileOrder::new(*layout, n, host.rng(epoch))))
    }
}

params! {
    /// Corgi²: the offline pass and the online buffer.
    pub struct Corgi2Params {
        /// Online buffer n, in blocks (takes precedence over `buffer_ratio`).
        pub buffer_blocks: Option<u64> = None,
        /// Online buffer as a fraction of the N blocks.
        pub buffer_ratio: f64 = 0.1,
        /// Offline buffer n_offline, in blocks (default: the online buffer).
        pub offline_buffer_blocks: Option<u64> = None,
        /// Offline rounds draw blocks with replacement (default: without).
        pub with_replacement: bool = false,
    }
}

/// Corgi²: an offline CorgiPile pass rewrites the blocks, then online CorgiPile.
pub struct Corgi2 {
    params: Corgi2Params,
}

impl Component for Corgi2 {
    /// Each epoch's order comes from its parameters, the epoch and the
    /// seed alone: a new instance continues as well.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "corgi2";
    const SUMMARY: &'static str = "Offline CorgiPile pass that rewrites the blocks, then online CorgiPile (Corgi²).";
    type Params = Corgi2Params;

    fn new(params: Corgi2Params) -> Result<Self> {
        for (key, value) in
            [("buffer_blocks", params.buffer_blocks), ("offline_buffer_blocks", params.offline_buffer_blocks)]
        {
            if value == Some(0) {
                return Err(Error::invalid_param(key, "must be at least 1 block"));
            }
        }
        Ok(Corgi2 { params })
    }
}

impl Sampler for Corgi2 {
    fn epoch_order(&mut self, layout: &StorageLayout, epoch: u64, host: &Host) -> Result<OrderStream> {
        let n = buffer_size(self.params.buffer_blocks, self.params.buffer_ratio, layout, "buffer_blocks")?;
        Ok(Box::new(CorgiPileOrder::new(*layout, n, host.rng(epoch))))
    }

    fn offline_order(&mut self, layout: &StorageLayout, host: &Host) -> Result<Option<OrderStream>> {
        let online = buffer_size(self.params.buffer_blocks, self.params.buffer_ratio, layout, "buffer_blocks")?;
        let n = match self.params.offline_buffer_blocks {
            Some(n) => buffer_size(Some(n), 0.0, layout, "offline_buffer_blocks")?,
            None => online,
        };
        let rng = host.rng(u64::MAX); // a stream no epoch uses
        log::info!(
            "offline pass: {} blocks, buffer of {n}, {} replacement",
            layout.blocks(),
            if self.params.with_replacement { "with" } else { "without" }
        );
        Ok(Some(if self.params.with_replacement {
            let total = layout.blocks();
            Box::new(WithReplacementOrder {
                layout: *layout,
                written: vec![0; total.div_ceil(64) as usize],
                remaining: total,
                n,
                rng,
            })
        } else {
            Box::new(CorgiPileOrder::new(*layout, n, rng))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::testing::{collect_order as collect, layout, TestHost};

    fn assert_permutation(order: &[u64], n: u64) {
        let mut seen = vec![false; n as usize];
        for &id in order {
            assert!(id < n && !seen[id as usize], "id {id} out of range or twice");
            seen[id as usize] = true;
        }
        assert_eq!(order.len() as u64, n, "every example once");
    }

    #[test]
    fn every_sampler_visits_every_example_exactly_once() {
        let services = TestHost::new(5);
        let host = services.host();
        for (n, b) in [(1u64, 1u64), (10, 3), (100, 7), (1000, 64), (1001, 10)] {
            for buffer in [1, 2, 5] {
                let l = layout(n, b);
                if buffer > l.blocks() {
                    continue;
                }
                let mut pile =
                    CorgiPile::new(CorgiPileParams { buffer_blocks: Some(buffer), ..Default::default() }).unwrap();
                assert_permutation(&collect(pile.epoch_order(&l, 0, &host).unwrap()), n);
                for with_replacement in [false, true] {
                    let params = Corgi2Params { buffer_blocks: Some(buffer), with_replacement, ..Default::default() };
                    let mut c2 = Corgi2::new(params).unwrap();
                    assert_permutation(&collect(c2.offline_order(&l, &host).unwrap().unwrap()), n);
                    assert_permutation(&collect(c2.epoch_order(&l, 1, &host).unwrap()), n);
                }
            }
        }
    }

    #[test]
    fn each_chunk_is_whole_blocks_and_the_seed_decides_the_order() {
        let l = layout(1000, 10);
        let services = TestHost::new(1);
        let host = services.host();
        let mut pile = CorgiPile::new(CorgiPileParams { buffer_blocks: Some(4), ..Default::default() }).unwrap();
        let chunks: Vec<Vec<u64>> = pile.epoch_order(&l, 0, &host).unwrap().collect();
        assert_eq!(chunks.len(), 25);
        for chunk in &chunks {
            let mut blocks: Vec<u64> = chunk.iter().map(|id| id / 10).collect();
            blocks.sort();
            blocks.dedup();
            assert_eq!(blocks.len(), 4, "a chunk is the examples of 4 whole blocks");
            assert_eq!(chunk.len(), 40);
        }
        let again: Vec<Vec<u64>> = pile.epoch_order(&l, 0, &host).unwrap().collect();
        assert_eq!(chunks, again, "same seed and epoch, same order");
        let next: Vec<Vec<u64>> = pile.epoch_order(&l, 1, &host).unwrap().collect();
        assert_ne!(chunks, next, "another epoch, another order");
        let other_services = TestHost::new(2);
        let other: Vec<Vec<u64>> = pile.epoch_order(&l, 0, &other_services.host()).unwrap().collect();
        assert_ne!(chunks, other, "another seed, another order");
    }

    #[test]
    fn bad_buffers_are_refused_with_the_key() {
        let e = CorgiPile::new(CorgiPileParams { buffer_blocks: Some(0), ..Default::default() }).err().unwrap();
        assert_eq!(e.key(), Some("buffer_blocks"));
        let services = TestHost::new(1);
        let host = services.host();
        let mut big = CorgiPile::new(CorgiPileParams { buffer_blocks: Some(11), ..Default::default() }).unwrap();
        let e = big.epoch_order(&layout(100, 10), 0, &host).err().unwrap();
        assert_eq!(e.key(), Some("buffer_blocks"));
        assert!(e.message().contains("larger than the data (10 blocks of 10)"), "{e}");
        let mut ratio = CorgiPile::new(CorgiPileParams { buffer_ratio: 0.0, ..Default::default() }).unwrap();
        assert_eq!(ratio.epoch_order(&layout(100, 10), 0, &host).err().unwrap().key(), Some("buffer_ratio"));
        assert!(Corgi2::new(Corgi2Params { offline_buffer_blocks: Some(0), ..Default::default() }).is_err());
    }

    #[test]
    fn a_billion_examples_stream_in_buffer_sized_chunks() {
        let l = layout(1_000_000_000, 1000); // a virtual layout: no data
        let services = TestHost::new(3);
        let host = services.host();
        let mut pile = CorgiPile::new(CorgiPileParams { buffer_blocks: Some(20), ..Default::default() }).unwrap();
        let mut stream = pile.epoch_order(&l, 0, &host).unwrap();
        for _ in 0..5 {
            let chunk = stream.next().unwrap();
            assert_eq!(chunk.len(), 20_000, "one buffer of 20 blocks of 1000");
            assert!(chunk.iter().all(|&id| id < 1_000_000_000));
        }
    }
}
