//! μ_Y(F;L) on 10⁶ points with 10 classes (goal: under 1 s).
//!
//! Run: `cargo bench -p tessera-increasing-complexity --bench information`.

use criterion::{criterion_group, criterion_main, Criterion};
use tessera_increasing_complexity::information::information;
use tessera_sdk::SeedRng;

fn predictions(n: usize, seed: u64) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    let mut rng = SeedRng::new(seed);
    let y: Vec<i64> = (0..n).map(|_| rng.below(10) as i64).collect();
    let mut noisy = |p: f64, of: &[i64]| -> Vec<i64> {
        of.iter().map(|&v| if rng.next_f64() < p { v } else { rng.below(10) as i64 }).collect()
    };
    let l = noisy(0.6, &y);
    let f = noisy(0.8, &y);
    (f, y, l)
}

fn bench(c: &mut Criterion) {
    let (f, y, l) = predictions(1_000_000, 7);
    let mut group = c.benchmark_group("performance_correlation");
    group.sample_size(20);
    group.bench_function("mu_1e6_points_10_classes", |b| b.iter(|| information(&f, &y, &l).unwrap()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
