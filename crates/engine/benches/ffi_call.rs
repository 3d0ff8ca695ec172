//! The price of the plugin boundary: pulling an example order through a
//! `#[sabi_trait]` object from the real baselines library, against the same
//! order from a native `Box<dyn Iterator>` in this binary. Chunks of 1 id
//! show the per-call overhead; chunks of 4096 the amortized cost.
//!
//! Run: `make bench` (or `cargo bench -p tessera-engine --bench ffi_call`).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

mod common;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tessera_engine::plugin::{CallContext, Registry};
use tessera_sdk::StorageLayout;

/// The native counterpart of `baselines.sequential`: the same chunking.
fn native_sequential(n: u64, chunk: u64) -> Box<dyn Iterator<Item = Vec<u64>> + Send> {
    Box::new((0..n.div_ceil(chunk)).map(move |c| (c * chunk..((c + 1) * chunk).min(n)).collect()))
}

fn bench(c: &mut Criterion) {
    let mut registry = Registry::new();
    registry.load_file(&common::plugin_library("tessera_baselines")).unwrap();
    let ctx = CallContext::new(0, Arc::new(AtomicBool::new(false)));
    let layout = StorageLayout { examples: u64::MAX / 2, block_size: 64, bytes_per_example: 8 };
    let calls = 10_000u64;

    for chunk in [1u64, 4096] {
        let mut group = c.benchmark_group(format!("order_stream_chunk_{chunk}"));
        group.throughput(Throughput::Elements(calls));
        group.bench_function("native_box_dyn", |b| {
            b.iter_batched(
                || native_sequential(layout.examples, chunk),
                |mut stream| {
                    for _ in 0..calls {
                        black_box(stream.next());
                    }
                },
                BatchSize::SmallInput,
            )
        });
        let mut sampler = registry.new_sampler("baselines.sequential", &format!("chunk = {chunk}")).unwrap();
        group.bench_function("sabi_trait_plugin", |b| {
            b.iter_batched(
                || sampler.epoch_order(&layout, 0, &ctx).unwrap(),
                |mut stream| {
                    for _ in 0..calls {
                        black_box(stream.next_chunk().unwrap());
                    }
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
