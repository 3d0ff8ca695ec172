//! What per-step selection (SDK 0.3) costs: seconds per optimizer step with
//! B candidates scored by a forward pass and the b = 32 of highest loss
//! trained, against plain training on 32-example batches, in the same run.
//! The extra cost is the forward pass over B candidates (no gradient) and
//! the copy of their losses and logits to the sampler; the choice here is
//! the host's own top-b by loss (no plugin call), so what is measured is
//! the host's share. MLP (2 × 256) and CNN (16, 32 channels) on random 8×8
//! inputs, 2 threads (`BENCH_THREADS`).
//!
//! Run: `make bench` (or `cargo bench -p tessera-engine --bench step_selection`).

mod common;

use std::sync::atomic::AtomicBool;

use tessera_engine::manifest::TrainConfig;
use tessera_engine::model::Model;
use tessera_engine::storage::Access;
use tessera_engine::train::{fit, BatchSource, FitHooks, MemorySource, ShuffledOrder, StepSelection};
use tessera_sdk::{Candidates, Chosen, SeedRng, StorageLayout};

const N: usize = 16_000;
const BATCH: usize = 32;
/// Optimizer steps timed per configuration at least (after one warm-up epoch).
const STEPS: u64 = 400;

fn threads() -> usize {
    std::env::var("BENCH_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2)
}

/// Seconds per optimizer step training `kind` with `candidates` per step
/// (`None`: plain batches of 32).
fn seconds_per_step(kind: &str, candidates: Option<usize>) -> f64 {
    tch::manual_seed(0);
    let (model, tensors) = common::random_task(kind, N);
    let draw = candidates.unwrap_or(BATCH);
    // One warm-up epoch, then whole epochs of at least STEPS steps in all.
    let per_epoch = N.div_ceil(draw) as u64;
    let epochs = 1 + STEPS.div_ceil(per_epoch);
    let cfg = TrainConfig { epochs, batch_size: BATCH, lr: 0.01, ..TrainConfig::default() };
    let layout = StorageLayout { examples: N as u64, block_size: N as u64, bytes_per_example: 0 };
    let mut rng = SeedRng::new(0);
    let tensors_ref = &tensors;
    let mut epoch = |_| -> Result<Box<dyn BatchSource + '_>, tessera_engine::TorchError> {
        let order = Box::new(ShuffledOrder::new(N as u64, &mut rng));
        Ok(Box::new(MemorySource::new(order, tensors_ref, layout, Access::Block, 1)))
    };
    let mut checkpoint = |_: &Model, _, _| Ok(());
    let mut choose = |c: &Candidates| Ok(Chosen::top(&c.losses, c.batch_size as usize));
    let cancel = AtomicBool::new(false);
    let hooks = FitHooks {
        select: candidates.map(|b| StepSelection { candidates: b, choose: &mut choose }),
        ..FitHooks::new(&mut epoch, &mut checkpoint, &cancel)
    };
    let summary = fit(&model, N as u64, &cfg, hooks).unwrap();
    assert_eq!(summary.steps, epochs * per_epoch, "{kind} {candidates:?}");
    summary.epoch_seconds[1..].iter().sum::<f64>() / ((epochs - 1) * per_epoch) as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("step_selection: bench");
        return;
    }
    tch::set_num_threads(threads() as i32);
    println!("per-step selection: seconds per optimizer step of b = {BATCH}, {} threads", threads());
    println!("{:<5} {:>10} {:>12} {:>10}", "model", "B", "ms / step", "vs plain");
    for kind in ["mlp", "cnn"] {
        let plain = seconds_per_step(kind, None);
        println!("{kind:<5} {:>10} {:>12.3} {:>10}", "plain", plain * 1e3, "1.00×");
        for b in [64, 160, 320] {
            let selecting = seconds_per_step(kind, Some(b));
            println!("{kind:<5} {b:>10} {:>12.3} {:>9.2}×", selecting * 1e3, selecting / plain);
        }
    }
}
