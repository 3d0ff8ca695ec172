//! Pointwise profiles of 1,000 models × 100,000 points (goal: under 10 s).
//!
//! Run: `cargo bench -p tessera-pointwise-profiles --bench profiles`.
//! `point_stats` alone, on 0/1 scores and on probabilities (where Spearman
//! ranks every point's 1,000 scores), and the whole `profile` metric as the
//! host calls it (statistics, taxonomy, profiles and the per-point table).

use criterion::{criterion_group, criterion_main, Criterion};
use tessera_pointwise_profiles::profiles::{point_stats, ScoreMatrix};
use tessera_pointwise_profiles::Profile;
use tessera_sdk::{observation, Array, Checkpoint, Component, Metric, Observation, Observations, SeedRng};

const MODELS: usize = 1_000;
const POINTS: usize = 100_000;

/// Model i has accuracy A_i in [0.3, 0.9]; a point is compatible, flat or
/// negative by its id, with a probability of the true label around A_i, 0.5
/// or 1.3 − A_i.
fn population(seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f64>) {
    let mut rng = SeedRng::new(seed);
    let accuracy: Vec<f64> = (0..MODELS).map(|i| 0.3 + 0.6 * i as f64 / (MODELS - 1) as f64).collect();
    let (mut correct, mut probability) = (vec![0f32; MODELS * POINTS], vec![0f32; MODELS * POINTS]);
    for (i, &a) in accuracy.iter().enumerate() {
        for z in 0..POINTS {
            let p = [a, 0.5, 1.3 - a][z % 3];
            let u = rng.next_f64();
            correct[i * POINTS + z] = (u < p) as u8 as f32;
            probability[i * POINTS + z] = (p + 0.2 * (u - 0.5)).clamp(0.0, 1.0) as f32;
        }
    }
    (correct, probability, accuracy)
}

fn bench(c: &mut Criterion) {
    let (correct, probability, accuracy) = population(11);
    let rows: Vec<usize> = (0..MODELS).collect();
    let mut group = c.benchmark_group("pointwise_profiles_1000_models_100000_points");
    group.sample_size(10);
    group.bench_function("point_stats_correctness", |b| {
        let m = ScoreMatrix::new(MODELS, POINTS, &correct).unwrap();
        b.iter(|| point_stats(&m, &rows, &accuracy))
    });
    group.bench_function("point_stats_probability_with_spearman_ranks", |b| {
        let m = ScoreMatrix::new(MODELS, POINTS, &probability).unwrap();
        b.iter(|| point_stats(&m, &rows, &accuracy))
    });
    let array = |data: &[f32]| Array::f32(vec![MODELS as u64, POINTS as u64], data.to_vec());
    let observations = vec![
        Observation { split: "test".into(), kind: observation::POPULATION_CORRECT.into(), array: array(&correct) },
        Observation {
            split: "test".into(),
            kind: observation::LABELS.into(),
            array: Array::i64(vec![POINTS as u64], (0..POINTS as i64).map(|z| z % 10).collect()),
        },
        Observation {
            split: "test".into(),
            kind: observation::POPULATION_RUN.into(),
            array: Array::i64(vec![MODELS as u64], (0..MODELS as i64).collect()),
        },
    ];
    drop((correct, probability));
    let services = tessera_sdk::testing::TestHost::new(1);
    let host = services.host();
    let checkpoint = Checkpoint { step: 0, epoch: 1.0, examples_seen: 0, is_final: true };
    group.bench_function("profile_metric_end_to_end", |b| {
        b.iter(|| {
            let mut metric = Profile::new(Default::default()).unwrap();
            metric.observe(&checkpoint, &Observations::new(&observations), &host).unwrap();
            metric.finish(&host).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
