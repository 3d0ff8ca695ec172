//! Orders that ignore storage: the stored order, and a uniform permutation.

use tessera_sdk::{params, Component, Error, Host, OrderStream, Result, Sampler, StorageLayout};

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
        let mut order: Vec<u64> = (0..layout.examples).collect();
        host.rng(epoch).shuffle(&mut order);
        let chunk = self.chunk as usize;
        let chunks: Vec<Vec<u64>> = order.chunks(chunk).map(<[u64]>::to_vec).collect();
        Ok(Box::new(chunks.into_iter()))
    }
}
