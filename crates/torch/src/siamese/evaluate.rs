//! `tessera siamese`: a run folder's finetuned variants loaded as one
//! Siamese model over their shared backbone, checked against each task's own
//! model and timed both ways.

use std::path::Path;

use crate::error::{bail, invalid, Context, Result};
use tch::{Device, Kind, Tensor};

use super::SiameseModel;
use crate::manifest::{Manifest, ModelConfig, Variant};
use crate::model::Model;
use crate::report::{RunResults, Status, VariantResult};
use crate::train::TensorData;

/// One task of [`evaluate_run`]: how its one-pass and separate outputs compare.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskCheck {
    /// The variant.
    pub variant: String,
    /// Its first tuned block (its branch point off the shared trunk).
    pub branch: usize,
    /// The name of that block.
    pub branch_block: String,
    /// Test accuracy of the one-pass outputs.
    pub siamese_accuracy: f64,
    /// Test accuracy of the task's own model.
    pub separate_accuracy: f64,
    /// Largest difference between the two logits.
    pub max_logit_difference: f64,
}

/// What `tessera siamese` measured on a run folder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SiameseEvaluation {
    /// Per task.
    pub tasks: Vec<TaskCheck>,
    /// Examples per timed batch.
    pub batch: i64,
    /// Inputs answered per second for all T tasks, in one pass.
    pub siamese_examples_per_second: f64,
    /// Inputs answered per second for all T tasks, by T separate models.
    pub separate_examples_per_second: f64,
    /// The ratio of the two (the speedup of one pass).
    pub speedup: f64,
}

/// Loads the finetuned variants `names` of run folder `dir` (all finetuned
/// variants when empty) as one Siamese model over their pretrained backbone,
/// checks each task's one-pass outputs against its own model on its test
/// split, and times both ways on batches of `batch` test inputs for at least
/// `seconds` each. The result is also written to `dir/siamese.json`.
pub fn evaluate_run(dir: &Path, names: &[String], batch: i64, seconds: f64) -> Result<SiameseEvaluation> {
    let results = RunResults::load(dir)?;
    let text = std::fs::read_to_string(dir.join("manifest.toml"))
        .with_context(|| format!("reading {}", dir.join("manifest.toml").display()))?;
    let manifest = Manifest::parse(Path::new(&results.manifest), text).map_err(|d| invalid!("{d}"))?;
    let variants = manifest.variants(&[]).map_err(|d| invalid!("{d}"))?;
    let finetuned = finetuned_variants(dir, &results, names)?;
    let base = manifest.dir();
    let mut tasks = Vec::new();
    let mut backbone: Option<ModelConfig> = None;
    for v in &finetuned {
        let variant = variants
            .iter()
            .find(|x| x.name == v.name)
            .with_context(|| format!("variant `{}` is not in the run's manifest", v.name))?;
        let (task, config) = load_task(dir, &base, variant, v)?;
        same_backbone(&mut backbone, config, &v.name)?;
        tasks.push(task);
    }
    let config = backbone.expect("a task");
    let shape: Vec<usize> = tasks[0].test.x.size()[1..].iter().map(|&d| d as usize).collect();
    let classes = head_classes(&tasks[0].model);
    let backbone = Model::new(&ModelConfig { fresh_head: true, ..config }, &shape, classes, Device::Cpu, 0)?;
    let siamese =
        SiameseModel::new(&backbone, tasks.iter().map(|t| (t.name.clone(), &t.model, t.trainable.clone())).collect())?;
    let checks = check_tasks(&siamese, &backbone, &tasks);
    let evaluation = time_both(&siamese, &tasks[0].test.x, batch, seconds, checks);
    crate::report::write_atomic(&dir.join("siamese.json"), &serde_json::to_vec_pretty(&evaluation)?)?;
    Ok(evaluation)
}

/// One task as loaded from the run folder.
struct TaskModel {
    name: String,
    model: Model,
    /// The positions its finetuner trained.
    trainable: Vec<u32>,
    /// Its test split.
    test: TensorData,
}

/// The variants of `results` that were finetuned and finished, restricted
/// to `names` when given; an error naming a missing one.
fn finetuned_variants<'r>(dir: &Path, results: &'r RunResults, names: &[String]) -> Result<Vec<&'r VariantResult>> {
    let is_finetuned = |v: &&VariantResult| v.results.contains_key("finetuner");
    let finetuned: Vec<&VariantResult> = results
        .variants
        .iter()
        .filter(|v| v.status == Status::Ok)
        .filter(is_finetuned)
        .filter(|v| names.is_empty() || names.contains(&v.name))
        .collect();
    if let Some(missing) = names.iter().find(|n| !finetuned.iter().any(|v| &v.name == *n)) {
        let known: Vec<&str> = results.variants.iter().filter(is_finetuned).map(|v| v.name.as_str()).collect();
        bail!(
            "{}: no finetuned variant `{missing}` that finished (finetuned variants: {})",
            dir.display(),
            known.join(", ")
        );
    }
    if finetuned.is_empty() {
        bail!("{}: no finetuned variant finished", dir.display());
    }
    Ok(finetuned)
}

/// A task's finetuned model (from `models/`), the layers it trained, and its
/// test split; and the configuration of the backbone it started from.
fn load_task(dir: &Path, base: &Path, variant: &Variant, v: &VariantResult) -> Result<(TaskModel, ModelConfig)> {
    let s = &variant.settings;
    let weights = s
        .model
        .weights
        .as_ref()
        .with_context(|| format!("variant `{}` sets no model.weights: no pretrained backbone to share", v.name))?;
    let backbone = ModelConfig { weights: Some(base.join(weights).display().to_string()), ..s.model.clone() };
    let splits = crate::data::load(&s.data, 0.0, s.experiment.seed, base)?;
    let test = TensorData::new(&splits.test, Device::Cpu);
    let config = ModelConfig { weights: None, fresh_head: false, ..s.model.clone() };
    let mut model = Model::new(&config, &splits.train.shape, splits.train.classes as i64, Device::Cpu, 0)?;
    model.load(&dir.join("models").join(format!("{}.safetensors", crate::report::file_stem_safe(&v.name))))?;
    let trainable: Vec<u32> = v.results["finetuner"]
        .tables
        .iter()
        .find(|t| t.name == "trainable_layers")
        .context("the finetuner report has no trainable_layers table")?
        .rows
        .iter()
        .filter_map(|r| r.first().and_then(|p| p.as_u64()).map(|p| p as u32))
        .collect();
    Ok((TaskModel { name: v.name.clone(), model, trainable, test }, backbone))
}

/// Records the first task's backbone; refuses a task that starts from another.
fn same_backbone(backbone: &mut Option<ModelConfig>, config: ModelConfig, name: &str) -> Result<()> {
    match backbone {
        None => *backbone = Some(config),
        Some(b) if b.weights != config.weights || b.kind != config.kind => {
            bail!("variant `{name}` starts from {:?}, not the backbone of the others ({:?})", config.weights, b.weights)
        }
        Some(_) => {}
    }
    Ok(())
}

/// Each task on its own test split, in one pass and separately.
fn check_tasks(siamese: &SiameseModel, backbone: &Model, tasks: &[TaskModel]) -> Vec<TaskCheck> {
    let layers = backbone.layers();
    let mut checks = Vec::new();
    // Every task's outputs on the last test split seen: tasks sharing a split
    // (the usual case) reuse one pass each way.
    let mut outputs: Option<(Tensor, Vec<Tensor>, Vec<Tensor>)> = None;
    for (t, ((name, branch), task)) in siamese.branches().into_iter().zip(tasks).enumerate() {
        let test = &task.test;
        if !outputs.as_ref().is_some_and(|(x, _, _)| x.size() == test.x.size() && x.equal(&test.x)) {
            outputs = Some((test.x.shallow_clone(), siamese.forward(&test.x), siamese.forward_separately(&test.x)));
        }
        let (_, all_one, all_separate) = outputs.as_ref().expect("computed above");
        let (one, separate) = (&all_one[t], &all_separate[t]);
        checks.push(TaskCheck {
            variant: name,
            branch,
            branch_block: layers[branch].name.to_string(),
            siamese_accuracy: accuracy(one, &test.y),
            separate_accuracy: accuracy(separate, &test.y),
            max_logit_difference: (one - separate).abs().max().double_value(&[]),
        });
    }
    checks
}

/// The share of `logits` whose arg-max is the label.
fn accuracy(logits: &Tensor, y: &Tensor) -> f64 {
    logits.argmax(-1, false).eq_tensor(y).to_kind(Kind::Float).mean(Kind::Float).double_value(&[])
}

/// Times both ways on batches of `batch` of `x`, answered for every task.
fn time_both(siamese: &SiameseModel, x: &Tensor, batch: i64, seconds: f64, tasks: Vec<TaskCheck>) -> SiameseEvaluation {
    let batch = batch.clamp(1, x.size()[0]);
    let inputs = x.narrow(0, 0, batch);
    let time = |f: &dyn Fn() -> Vec<Tensor>| -> f64 {
        let _ = f(); // warm-up
        let started = std::time::Instant::now();
        let mut runs = 0u64;
        while runs < 3 || started.elapsed().as_secs_f64() < seconds {
            let _ = f();
            runs += 1;
        }
        (runs as i64 * batch) as f64 / started.elapsed().as_secs_f64()
    };
    let siamese_rate = time(&|| siamese.forward(&inputs));
    let separate_rate = time(&|| siamese.forward_separately(&inputs));
    SiameseEvaluation {
        tasks,
        batch,
        siamese_examples_per_second: siamese_rate,
        separate_examples_per_second: separate_rate,
        speedup: siamese_rate / separate_rate,
    }
}

/// The number of classes a model's head predicts.
fn head_classes(model: &Model) -> i64 {
    model.vs.variables().get("head.bias").map_or(1, |b| b.size()[0])
}
