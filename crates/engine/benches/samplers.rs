//! Samplers against storage: an epoch of CorgiPile (from the corgi2 plugin
//! library) read through the block loader, against a sequential scan of the
//! same shards; and how fast CorgiPile generates the order of a virtual
//! billion-example layout, with the process's peak memory.
//!
//! Run: `make bench` (or `cargo bench -p tessera-engine --bench samplers`).

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use tessera_engine::data::generators::teacher;
use tessera_engine::plugin::{CallContext, Registry};
use tessera_engine::run::peak_rss_mb;
use tessera_engine::storage::{write_shards, Access, BlockLoader, ShardSet};
use tessera_sdk::StorageLayout;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut registry = Registry::new();
    registry.load_file(&common::plugin_library("tessera_baselines")).unwrap();
    registry.load_file(&common::plugin_library("tessera_corgi2")).unwrap();
    let ctx = CallContext::new(0, Arc::new(AtomicBool::new(false)));

    // 1. Epoch read throughput over the same shards.
    // BENCH_BLOCK sets the examples per block (default 512: 135 KB blocks).
    let block: u64 = std::env::var("BENCH_BLOCK").ok().and_then(|b| b.parse().ok()).unwrap_or(512);
    let n = 400_000usize;
    let dir = tempfile::tempdir().unwrap();
    let data = teacher(n, 64, 16, 10, 0).unwrap();
    write_shards(&data, None, &dir.path().join("s"), block, 64).unwrap();
    let set = Arc::new(ShardSet::open(&dir.path().join("s")).unwrap());
    let layout = set.index.layout();
    let buffer = (layout.blocks() / 10) as usize; // CorgiPile's 10 %
    let mb = (n as u64 * set.index.record_bytes) as f64 / 1e6;
    // BENCH_WARM=1 keeps the page cache (CPU cost only); otherwise it is
    // dropped before every pass where this process may (root).
    let warm_only = std::env::var_os("BENCH_WARM").is_some();
    let drop_caches = || !warm_only && { common::drop_page_cache() };
    let cold = drop_caches();
    println!(
        "epoch read: {n} examples, {} blocks of {block}, {mb:.1} MB, buffer {buffer} blocks, page cache {}",
        layout.blocks(),
        if cold { "cold" } else { "warm" }
    );
    let mut times = Vec::new();
    for (id, params) in [
        ("baselines.sequential", String::from("chunk = 65536")),
        ("corgi2.corgipile", format!("buffer_blocks = {buffer}")),
    ] {
        let mut sampler = registry.new_sampler(id, &params).unwrap();
        let loader = BlockLoader::new(set.clone(), buffer, Access::Block, 8);
        let seconds = common::median(
            (0..5u64)
                .map(|epoch| {
                    if cold {
                        drop_caches();
                    }
                    let started = Instant::now();
                    let order = sampler.epoch_order(&layout, epoch, &ctx).unwrap();
                    let (count, io) = common::drain(loader.start(Box::new(order)));
                    assert_eq!((count, io.requests), (n, layout.blocks()), "{id}: every block once");
                    started.elapsed().as_secs_f64()
                })
                .collect(),
        );
        println!("  {id:<22} {:>8.1} ms  {:>8.0} MB/s", seconds * 1e3, mb / seconds);
        times.push(seconds);
    }
    println!("  corgipile / sequential throughput: {:.2}x", times[0] / times[1]);

    // 2. Order generation on a virtual layout of a billion examples.
    let huge = StorageLayout { examples: 1_000_000_000, block_size: 1000, bytes_per_example: 0 };
    let mut pile = registry.new_sampler("corgi2.corgipile", "buffer_blocks = 100").unwrap();
    let before = peak_rss_mb();
    let started = Instant::now();
    let mut stream = pile.epoch_order(&huge, 0, &ctx).unwrap();
    let mut generated = 0u64;
    while generated < 50_000_000 {
        generated += stream.next_chunk().unwrap().unwrap().len() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("order generation: corgi2.corgipile on 1e9 examples (blocks of 1000, buffer 100 blocks)");
    println!(
        "  {generated} ids in {seconds:.2} s: {:.1} M examples/s (a full epoch: {:.0} s)",
        generated as f64 / seconds / 1e6,
        1e9 / (generated as f64 / seconds)
    );
    println!("  peak memory {before:.0} MB before, {:.0} MB after (a buffer is 100,000 ids = 0.8 MB)", peak_rss_mb());
}
