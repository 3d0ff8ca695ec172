//! The block loader against plain sequential reads of the same shard files
//! (what `cat` does), and the modeled cloud cost of a full random-access
//! order against a block-sequential one.
//!
//! Run: `make bench` (or `cargo bench -p tessera-engine --bench loader`).

mod common;

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use abi_stable::std_types::RVec;
use tessera_engine::data::generators::teacher;
use tessera_engine::storage::{write_shards, Access, BlockLoader, CostModel, ShardSet};
use tessera_engine::train::EpochOrder;

const N: usize = 200_000;
const BLOCK: u64 = 512;

struct Sequential {
    next: u64,
    n: u64,
}

impl EpochOrder for Sequential {
    fn next_chunk(&mut self) -> Result<Option<RVec<u64>>, tessera_engine::DataError> {
        if self.next >= self.n {
            return Ok(None);
        }
        let end = (self.next + 4096).min(self.n);
        let chunk: Vec<u64> = (self.next..end).collect();
        self.next = end;
        Ok(Some(chunk.into()))
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = teacher(N, 64, 16, 10, 0).unwrap();
    let index = write_shards(&data, None, &dir.path().join("s"), BLOCK, 64).unwrap();
    let set = Arc::new(ShardSet::open(&dir.path().join("s")).unwrap());
    let total_bytes: u64 = index.blocks.iter().map(|b| b.length).sum();
    let files: Vec<_> = index.shards.iter().map(|s| dir.path().join("s").join(s)).collect();

    let cat = || {
        let started = Instant::now();
        let mut buffer = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        for f in &files {
            let mut file = std::fs::File::open(f).unwrap();
            loop {
                let n = file.read(&mut buffer).unwrap();
                if n == 0 {
                    break;
                }
                bytes += n as u64;
            }
        }
        assert_eq!(bytes, total_bytes);
        started.elapsed().as_secs_f64()
    };
    let loader = BlockLoader::new(set.clone(), 1, Access::Block, 8);
    let pass = || {
        let started = Instant::now();
        let (count, io) = common::drain(loader.start(Box::new(Sequential { next: 0, n: N as u64 })));
        assert_eq!((count, io.requests), (N, index.blocks.len() as u64));
        started.elapsed().as_secs_f64()
    };
    let mb = total_bytes as f64 / 1e6;
    println!("loader: {N} examples, {} blocks of {BLOCK}, {mb:.1} MB", index.blocks.len());
    // Cold: the page cache dropped before every pass (needs root), so both
    // read from the device, as a real epoch over data larger than memory does.
    let drop_caches = common::drop_page_cache;
    if drop_caches() {
        let cat_s = common::median(
            (0..5)
                .map(|_| {
                    drop_caches();
                    cat()
                })
                .collect(),
        );
        let loader_s = common::median(
            (0..5)
                .map(|_| {
                    drop_caches();
                    pass()
                })
                .collect(),
        );
        println!(" page cache cold (read from the device):");
        println!("  cat-like sequential read   {:>8.1} ms  {:>8.0} MB/s", cat_s * 1e3, mb / cat_s);
        println!("  block loader, decoded      {:>8.1} ms  {:>8.0} MB/s", loader_s * 1e3, mb / loader_s);
        println!("  loader / cat throughput    {:>8.2}x", cat_s / loader_s);
    } else {
        println!(" (cannot drop the page cache here: cold numbers need root)");
    }
    cat();
    let cat_s = common::median((0..7).map(|_| cat()).collect());
    let loader_s = common::median((0..7).map(|_| pass()).collect());
    println!(" page cache warm (memory bandwidth; the loader also checks CRCs and decodes floats):");
    println!("  cat-like sequential read   {:>8.1} ms  {:>8.0} MB/s", cat_s * 1e3, mb / cat_s);
    println!("  block loader, decoded      {:>8.1} ms  {:>8.0} MB/s", loader_s * 1e3, mb / loader_s);
    println!("  loader / cat throughput    {:>8.2}x", cat_s / loader_s);
    let raw = common::median(
        (0..7)
            .map(|_| {
                let started = Instant::now();
                for b in 0..index.blocks.len() as u64 {
                    std::hint::black_box(set.read_block(b).unwrap());
                }
                started.elapsed().as_secs_f64()
            })
            .collect(),
    );
    println!("  checksummed block reads alone {:>5.1} ms  {:>8.0} MB/s", raw * 1e3, mb / raw);
    let cloud = CostModel::preset(tessera_engine::choice::StoragePreset::Cloud);
    let random = cloud.seconds(N as u64, N as u64 * index.record_bytes);
    let sequential = cloud.seconds(index.blocks.len() as u64, total_bytes);
    println!("modeled cloud time of one epoch (20 ms/request, 100 MB/s):");
    println!("  full random access (one request per example)  {random:>10.1} s");
    println!("  block-sequential (one request per block)      {sequential:>10.1} s");
    println!("  ratio                                         {:>10.0}x", random / sequential);
}
