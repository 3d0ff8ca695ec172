//! Tessera's trainer against an equivalent PyTorch 2.13 loop, in one run:
//! the same MLP and CNN, data sizes, batch size, optimizer (SGD) and thread
//! count; examples per second over all epochs but the first (warm-up), and
//! the ratio. The PyTorch side is `pytorch_loop.py`, run with the Python of
//! the torch wheel the set-up installs (or `TESSERA_PYTHON`).
//!
//! Run: `make bench` (or `cargo bench -p tessera-engine --bench train_vs_pytorch`).

mod common;

use std::process::Command;
use std::sync::atomic::AtomicBool;

use tessera_engine::manifest::TrainConfig;
use tessera_engine::model::Model;
use tessera_engine::storage::Access;
use tessera_engine::train::{fit, BatchSource, FitHooks, MemorySource, ShuffledOrder};
use tessera_sdk::{SeedRng, StorageLayout};

const N: usize = 20_000;
const EPOCHS: u64 = 4;
const BATCH: usize = 64;

fn threads() -> usize {
    std::env::var("BENCH_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2)
}

fn tessera(kind: &str) -> f64 {
    tch::set_num_threads(threads() as i32);
    let (model, tensors) = common::random_task(kind, N);
    let cfg = TrainConfig { epochs: EPOCHS, batch_size: BATCH, lr: 0.01, ..TrainConfig::default() };
    let layout = StorageLayout { examples: N as u64, block_size: N as u64, bytes_per_example: 0 };
    let mut rng = SeedRng::new(0);
    let tensors_ref = &tensors;
    let mut epoch = |_| -> Result<Box<dyn BatchSource + '_>, tessera_engine::TorchError> {
        Ok(Box::new(MemorySource::new(
            Box::new(ShuffledOrder::new(N as u64, &mut rng)),
            tensors_ref,
            layout,
            Access::Block,
            1,
        )))
    };
    let mut checkpoint = |_: &Model, _, _| Ok(());
    let cancel = AtomicBool::new(false);
    let summary = fit(&model, N as u64, &cfg, FitHooks::new(&mut epoch, &mut checkpoint, &cancel)).unwrap();
    let seconds: f64 = summary.epoch_seconds[1..].iter().sum();
    (N as f64 * (EPOCHS - 1) as f64) / seconds
}

fn pytorch(kind: &str) -> Option<f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/pytorch_loop.py");
    let args =
        [script.to_string(), kind.into(), N.to_string(), EPOCHS.to_string(), BATCH.to_string(), threads().to_string()];
    let out = Command::new(tessera_engine::plugin::libtorch_python()).args(&args).output().ok()?;
    if !out.status.success() {
        eprintln!("pytorch loop failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout).lines().last()?.to_string();
    serde_json::from_str::<serde_json::Value>(&line).ok()?["examples_per_second"].as_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "train_vs_pytorch: {N} examples, batch {BATCH}, SGD, {} threads, {EPOCHS} epochs (first is warm-up)",
        threads()
    );
    println!("{:<6} {:>18} {:>18} {:>8}", "model", "tessera ex/s", "pytorch ex/s", "ratio");
    for kind in ["mlp", "cnn"] {
        let ours = tessera(kind);
        match pytorch(kind) {
            Some(theirs) => println!("{kind:<6} {ours:>18.0} {theirs:>18.0} {:>7.2}x", ours / theirs),
            None => println!("{kind:<6} {ours:>18.0} {:>18} {:>8}", "(no python)", "-"),
        }
    }
}
