//! Members trained as one batch against the same runs alone.

use std::cell::RefCell;
use std::path::Path;

use tch::Device;
use tessera_sdk::SeedRng;

use super::*;
use crate::manifest::ModelConfig;
use crate::storage::Access;
use crate::train::{fit, FitHooks, MemorySource, ShuffledOrder, Stopped, TensorData};

fn splits() -> crate::data::Splits {
    let data = crate::manifest::DataConfig {
        examples: 300,
        features: 6,
        classes: 3,
        separation: 1.5,
        ..crate::manifest::DataConfig::default()
    };
    crate::data::load(&data, 0.0, 1, Path::new(".")).unwrap()
}

/// Member `k`'s order of `epoch`: its own seeded shuffle.
fn order(k: usize, epoch: u64, n: u64) -> ShuffledOrder {
    let mut rng = SeedRng::derive(100 + k as u64, epoch);
    ShuffledOrder::new(n, &mut rng)
}

/// What a run's checkpoints saw: (step, epoch, loss) and the test logits.
type Seen = Vec<((u64, f64, f64), Tensor)>;

/// Member `k` trained alone on `data` by [`fit`].
fn alone(config: &ModelConfig, k: usize, data: &TensorData, cfg: &TrainConfig) -> (Seen, FitSummary) {
    let model = Model::new(config, &[6], 3, Device::Cpu, k as u64).unwrap();
    let n = data.y.size()[0] as u64;
    let layout = tessera_sdk::StorageLayout { examples: n, block_size: 10, bytes_per_example: 28 };
    let mut epoch = |e: u64| -> Result<Box<dyn BatchSource + '_>> {
        Ok(Box::new(MemorySource::new(Box::new(order(k, e, n)), data, layout, Access::Block, 4)))
    };
    let seen = RefCell::new(vec![]);
    let mut checkpoint = |m: &Model, cp: Checkpoint, loss: f64| -> Result<()> {
        seen.borrow_mut().push(((cp.step, cp.epoch, loss), tch::no_grad(|| m.forward(&data.x))));
        Ok(())
    };
    let cancel = AtomicBool::new(false);
    let summary = fit(&model, n, cfg, FitHooks::new(&mut epoch, &mut checkpoint, &cancel)).unwrap();
    (seen.into_inner(), summary)
}

/// Members `0..k` trained as one batch.
fn together(config: &ModelConfig, k: usize, data: &TensorData, cfg: &TrainConfig) -> (Vec<Seen>, Vec<FitSummary>) {
    try_together(config, k, data, cfg).unwrap()
}

/// Members `0..k` trained as one batch, or the error that stopped them.
fn try_together(
    config: &ModelConfig,
    k: usize,
    data: &TensorData,
    cfg: &TrainConfig,
) -> Result<(Vec<Seen>, Vec<FitSummary>)> {
    fit_with(config, k, data, cfg, (None, &AtomicBool::new(false)))
}

/// Members `0..k` trained as one batch, saving (and continuing) with
/// `checkpointing`, stopped by `cancel`.
fn fit_with(
    config: &ModelConfig,
    k: usize,
    data: &TensorData,
    cfg: &TrainConfig,
    (checkpointing, cancel): (Option<StackedCheckpointing>, &AtomicBool),
) -> Result<(Vec<Seen>, Vec<FitSummary>)> {
    let models: Vec<Model> = (0..k).map(|i| Model::new(config, &[6], 3, Device::Cpu, i as u64).unwrap()).collect();
    let n = data.y.size()[0] as u64;
    let layout = tessera_sdk::StorageLayout { examples: n, block_size: 10, bytes_per_example: 28 };
    let mut epoch = |i: usize, e: u64, _: &Model| -> Result<MemberEpoch<'_>> {
        Ok((Box::new(MemorySource::new(Box::new(order(i, e, n)), data, layout, Access::Block, 4)), None))
    };
    let seen: RefCell<Vec<Seen>> = RefCell::new((0..k).map(|_| vec![]).collect());
    let mut checkpoint = |i: usize, m: &Model, cp: Checkpoint, loss: f64| -> Result<()> {
        seen.borrow_mut()[i].push(((cp.step, cp.epoch, loss), tch::no_grad(|| m.forward(&data.x))));
        Ok(())
    };
    let members: Vec<(String, Option<(String, Sampling)>)> = (0..k).map(|i| (format!("run@{i}"), None)).collect();
    let hooks = StackedHooks {
        epoch: &mut epoch,
        checkpoint: &mut checkpoint,
        cancel,
        progress: None,
        visit: None,
        per_step: None,
        members: &members,
        checkpointing,
    };
    let summaries = fit_stacked(&models.iter().collect::<Vec<_>>(), config.kind, n, (cfg, &vec![cfg.lr; k]), hooks)?;
    Ok((seen.into_inner(), summaries))
}

fn relative(got: &Tensor, expected: &Tensor) -> f64 {
    f64::try_from((got - expected).abs().max() / expected.abs().max()).unwrap()
}

#[test]
fn after_one_step_each_member_is_the_model_it_would_be_alone() {
    let data = TensorData::new(&splits().train, Device::Cpu);
    let mlp = ModelConfig { hidden: vec![16, 8], ..ModelConfig::default() };
    let cfg = TrainConfig { batch_size: 8, max_examples: Some(8), epochs: 1, momentum: 0.9, ..TrainConfig::default() };
    let (batched, _) = together(&mlp, 3, &data, &cfg);
    for (k, seen) in batched.iter().enumerate() {
        let (expected, _) = alone(&mlp, k, &data, &cfg);
        assert_eq!(seen.len(), expected.len());
        let difference = relative(&seen[0].1, &expected[0].1);
        assert!(difference < 1e-5, "member {k}: logits after one step differ by {difference:e} relative");
    }
}

#[test]
fn each_member_of_a_batch_trains_as_its_run_alone() {
    let data = TensorData::new(&splits().train, Device::Cpu);
    let mlp = ModelConfig { hidden: vec![16], ..ModelConfig::default() };
    let cnn = ModelConfig { kind: ModelKind::Cnn, channels: vec![4, 8], batch_norm: true, ..ModelConfig::default() };
    let cfg = TrainConfig {
        batch_size: 16,
        epochs: 2,
        momentum: 0.9,
        checkpoint_every: 5,
        accumulate: 2,
        ..TrainConfig::default()
    };
    for config in [mlp, cnn] {
        let (batched, summaries) = together(&config, 3, &data, &cfg);
        for (k, (seen, summary)) in batched.iter().zip(&summaries).enumerate() {
            let (expected, alone_summary) = alone(&config, k, &data, &cfg);
            let at = |s: &Seen| s.iter().map(|((step, epoch, _), _)| (*step, *epoch)).collect::<Vec<_>>();
            assert_eq!(at(seen), at(&expected), "{:?} member {k}: the same checkpoints", config.kind);
            for (((_, _, loss), logits), ((_, _, expected_loss), expected_logits)) in seen.iter().zip(&expected) {
                assert!(
                    (loss - expected_loss).abs() < 1e-4 * expected_loss.abs().max(1.0),
                    "{loss} vs {expected_loss}"
                );
                let difference = relative(logits, expected_logits);
                assert!(difference < 1e-3, "{:?} member {k}: logits differ by {difference:e}", config.kind);
            }
            assert_eq!((summary.steps, summary.examples_seen), (alone_summary.steps, alone_summary.examples_seen));
            assert_eq!(summary.epoch_io, alone_summary.epoch_io, "each member's I/O as alone");
            assert_eq!(summary.epoch_distinct, alone_summary.epoch_distinct);
        }
    }
}

#[test]
fn a_batch_is_the_same_bits_run_to_run_and_names_a_diverged_member() {
    let data = TensorData::new(&splits().train, Device::Cpu);
    let mlp = ModelConfig { hidden: vec![8], ..ModelConfig::default() };
    let cfg = TrainConfig { batch_size: 32, epochs: 1, ..TrainConfig::default() };
    let (first, _) = together(&mlp, 2, &data, &cfg);
    let (second, _) = together(&mlp, 2, &data, &cfg);
    for (a, b) in first.iter().flatten().zip(second.iter().flatten()) {
        assert_eq!(a.0, b.0);
        assert!(a.1.equal(&b.1), "the same bits");
    }
    let wild = TrainConfig { lr: 1e30, ..cfg };
    let error = try_together(&mlp, 2, &data, &wild).unwrap_err().to_string();
    assert!(error.contains("run@0") && error.contains("diverged"), "{error}");
}

#[test]
fn frozen_layers_and_other_models_do_not_stack() {
    let mlp = ModelConfig { hidden: vec![8], ..ModelConfig::default() };
    let models: Vec<Model> = (0..2).map(|i| Model::new(&mlp, &[6], 3, Device::Cpu, i).unwrap()).collect();
    assert_eq!(unstackable(&models.iter().collect::<Vec<_>>(), ModelKind::Mlp), None);
    models[1].set_trainable(&[1]).unwrap();
    let why = unstackable(&models.iter().collect::<Vec<_>>(), ModelKind::Mlp).unwrap();
    assert!(why.contains("frozen"), "{why}");
    let wider = Model::new(&ModelConfig { hidden: vec![9], ..mlp }, &[6], 3, Device::Cpu, 0).unwrap();
    let mixed = [
        Model::new(&ModelConfig { hidden: vec![8], ..ModelConfig::default() }, &[6], 3, Device::Cpu, 0).unwrap(),
        wider,
    ];
    assert!(unstackable(&mixed.iter().collect::<Vec<_>>(), ModelKind::Mlp).unwrap().contains("architecture"));
}

#[test]
fn a_batch_continued_from_any_saved_state_ends_as_if_never_stopped() {
    let data = TensorData::new(&splits().train, Device::Cpu);
    let cnn = ModelConfig { kind: ModelKind::Cnn, channels: vec![4], batch_norm: true, ..ModelConfig::default() };
    let cfg = TrainConfig {
        batch_size: 16,
        epochs: 2,
        momentum: 0.9,
        accumulate: 2,
        checkpoint_every: 5,
        ..TrainConfig::default()
    };
    let folder = tempfile::tempdir().unwrap();
    let saves: RefCell<Vec<(StackedState, std::path::PathBuf)>> = RefCell::default();
    let mut save = |saving: &StackedSaving| -> Result<bool> {
        let dir = folder.path().join(saves.borrow().len().to_string());
        std::fs::create_dir(&dir).unwrap();
        (saving.write)(&dir)?;
        saves.borrow_mut().push((saving.state.clone(), dir));
        Ok(true)
    };
    let every = Some(std::time::Duration::ZERO);
    let saving = StackedCheckpointing { save: &mut save, every, resume: None };
    let (whole, summaries) = fit_with(&cnn, 3, &data, &cfg, (Some(saving), &AtomicBool::new(false))).unwrap();
    let saves = saves.into_inner();
    assert!(saves.len() > 10, "a save at every optimizer step: {}", saves.len());
    let timeless = |s: &FitSummary| {
        (s.steps, s.examples_seen, s.epoch_visits.clone(), s.epoch_distinct.clone(), s.never_seen, s.irregular_visits)
    };
    for (state, dir) in saves.iter().step_by(5) {
        let mut ignore = |_: &StackedSaving| -> Result<bool> { Ok(true) };
        let resume = Some((state.clone(), dir.clone()));
        let continuing = StackedCheckpointing { save: &mut ignore, every: None, resume };
        let (seen, continued) = fit_with(&cnn, 3, &data, &cfg, (Some(continuing), &AtomicBool::new(false))).unwrap();
        for k in 0..3 {
            let (last, expected) = (seen[k].last().unwrap(), whole[k].last().unwrap());
            assert_eq!(last.0, expected.0, "member {k} from step {}", state.step);
            assert!(last.1.equal(&expected.1), "member {k} continued from step {}: other bits", state.step);
            assert_eq!(timeless(&continued[k]), timeless(&summaries[k]));
        }
    }
    // A stop saves where the fit stands and ends it.
    let mut kept = None;
    let mut save = |saving: &StackedSaving| -> Result<bool> {
        kept = Some(saving.state.step);
        Ok(true)
    };
    let stopping = StackedCheckpointing { save: &mut save, every: None, resume: None };
    let error = fit_with(&cnn, 3, &data, &cfg, (Some(stopping), &AtomicBool::new(true))).unwrap_err();
    assert!(matches!(error, crate::TorchError::Stopped(Stopped { step: 0, saved: true })), "{error}");
    assert_eq!(kept, Some(0));
}
