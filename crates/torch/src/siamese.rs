//! Siamese multi-task inference (SubTuning): T tasks finetuned from one
//! pretrained backbone, each with its own copies of the blocks it tuned and
//! its own head, answered in one pass. The pretrained trunk runs once; each
//! task branches off at its first tuned block and runs its own blocks from
//! there. A task's cost is only the blocks from its branch point on, so tasks
//! that tune late blocks are nearly free.

use anyhow::{bail, Result};
use tch::Tensor;

use crate::model::Model;

/// One task: its finetuned model and where it leaves the shared trunk.
struct Task<'a> {
    name: String,
    model: &'a Model,
    /// The first tuned block (the number of blocks when only the head tuned).
    branch: usize,
}

/// A multi-task model over one frozen backbone (see the module documentation).
pub struct SiameseModel<'a> {
    backbone: &'a Model,
    tasks: Vec<Task<'a>>,
    blocks: usize,
}

impl<'a> SiameseModel<'a> {
    /// Tasks `(name, finetuned model, its trainable positions)` over
    /// `backbone`. Every task must have the backbone's blocks, and the
    /// backbone's weights in the blocks before its branch point (it was
    /// finetuned from this backbone with those blocks frozen).
    pub fn new(backbone: &'a Model, tasks: Vec<(String, &'a Model, Vec<u32>)>) -> Result<Self> {
        if !backbone.is_splittable() {
            bail!("Siamese inference needs a model split into blocks (not a TorchScript module)");
        }
        let layers = backbone.layers();
        let blocks = layers.len() - 1;
        let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
        let weights = backbone.vs.variables();
        let mut out = Vec::new();
        for (name, model, trainable) in tasks {
            let theirs = model.layers();
            if theirs.iter().map(|l| l.name.as_str()).ne(names.iter().copied()) {
                bail!("task `{name}` has other blocks than the backbone");
            }
            let branch = trainable.iter().map(|&p| p as usize).min().unwrap_or(blocks).min(blocks);
            let shared: Vec<String> = names[..branch].iter().map(|n| format!("{n}.")).collect();
            for (var, value) in model.vs.variables() {
                if shared.iter().any(|p| var.starts_with(p.as_str()))
                    && !weights.get(&var).is_some_and(|w| w.equal(&value))
                {
                    bail!(
                        "task `{name}`: weight `{var}` differs from the backbone's, though its block is before the \
                         task's first tuned block: was it finetuned from this backbone?"
                    );
                }
            }
            out.push(Task { name, model, branch });
        }
        Ok(SiameseModel { backbone, tasks: out, blocks })
    }

    /// The tasks' names and branch points, in order.
    pub fn branches(&self) -> Vec<(String, usize)> {
        self.tasks.iter().map(|t| (t.name.clone(), t.branch)).collect()
    }

    /// Every task's logits for `x`, in task order, in one pass: the trunk up
    /// to each branch point once, then each task's own blocks and head.
    pub fn forward(&self, x: &Tensor) -> Vec<Tensor> {
        tch::no_grad(|| {
            let mut order: Vec<usize> = (0..self.tasks.len()).collect();
            order.sort_by_key(|&t| self.tasks[t].branch);
            let mut logits: Vec<Option<Tensor>> = (0..self.tasks.len()).map(|_| None).collect();
            let (mut h, mut at) = (x.shallow_clone(), 0);
            for t in order {
                let task = &self.tasks[t];
                if task.branch > at {
                    h = self.backbone.run_blocks(&h, at, task.branch);
                    at = task.branch;
                }
                let features = task.model.run_blocks(&h, at, self.blocks);
                logits[t] = Some(task.model.head_logits(&features));
            }
            logits.into_iter().map(|l| l.expect("every task ran")).collect()
        })
    }

    /// Every task's logits from its own separate model: the baseline.
    pub fn forward_separately(&self, x: &Tensor) -> Vec<Tensor> {
        tch::no_grad(|| self.tasks.iter().map(|t| t.model.forward(x)).collect())
    }
}

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
pub fn evaluate_run(dir: &std::path::Path, names: &[String], batch: i64, seconds: f64) -> Result<SiameseEvaluation> {
    use anyhow::Context;
    let results = crate::report::RunResults::load(dir)?;
    let text = std::fs::read_to_string(dir.join("manifest.toml"))
        .with_context(|| format!("reading {}", dir.join("manifest.toml").display()))?;
    let manifest = crate::manifest::Manifest::parse(std::path::Path::new(&results.manifest), text)
        .map_err(|d| anyhow::anyhow!("{d}"))?;
    let variants = manifest.variants(&[]).map_err(|d| anyhow::anyhow!("{d}"))?;
    let finetuned: Vec<&crate::report::VariantResult> = results
        .variants
        .iter()
        .filter(|v| v.status == crate::report::Status::Ok && v.results.contains_key("finetuner"))
        .filter(|v| names.is_empty() || names.contains(&v.name))
        .collect();
    if let Some(missing) = names.iter().find(|n| !finetuned.iter().any(|v| &v.name == *n)) {
        let known: Vec<&str> =
            results.variants.iter().filter(|v| v.results.contains_key("finetuner")).map(|v| v.name.as_str()).collect();
        bail!(
            "{}: no finetuned variant `{missing}` that finished (finetuned variants: {})",
            dir.display(),
            known.join(", ")
        );
    }
    if finetuned.is_empty() {
        bail!("{}: no finetuned variant finished", dir.display());
    }
    let base = manifest.dir();
    let mut models = Vec::new();
    let mut backbone_config: Option<crate::manifest::ModelConfig> = None;
    for v in &finetuned {
        let variant = variants
            .iter()
            .find(|x| x.name == v.name)
            .with_context(|| format!("variant `{}` is not in the run's manifest", v.name))?;
        let s = &variant.settings;
        let weights =
            s.model.weights.as_ref().with_context(|| {
                format!("variant `{}` sets no model.weights: no pretrained backbone to share", v.name)
            })?;
        let config =
            crate::manifest::ModelConfig { weights: Some(base.join(weights).display().to_string()), ..s.model.clone() };
        match &backbone_config {
            None => backbone_config = Some(config.clone()),
            Some(b) if b.weights != config.weights || b.kind != config.kind => {
                bail!(
                    "variant `{}` starts from {:?}, not the backbone of the others ({:?})",
                    v.name,
                    config.weights,
                    b.weights
                )
            }
            Some(_) => {}
        }
        let splits = crate::data::load(&s.data, 0.0, s.experiment.seed, &base)?;
        let test = crate::train::TensorData::new(&splits.test, tch::Device::Cpu);
        let mut model = Model::new(
            &crate::manifest::ModelConfig { weights: None, fresh_head: false, ..s.model.clone() },
            &splits.train.shape,
            splits.train.classes as i64,
            tch::Device::Cpu,
            0,
        )?;
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
        models.push((v.name.clone(), model, trainable, test));
    }
    let config = backbone_config.expect("a task");
    let shape: Vec<usize> = models[0].3.x.size()[1..].iter().map(|&d| d as usize).collect();
    let backbone = Model::new(
        &crate::manifest::ModelConfig { fresh_head: true, ..config },
        &shape,
        head_classes(&models[0].1),
        tch::Device::Cpu,
        0,
    )?;
    let siamese = SiameseModel::new(&backbone, models.iter().map(|(n, m, t, _)| (n.clone(), m, t.clone())).collect())?;
    let names_of = backbone.layers();
    let mut tasks = Vec::new();
    // Every task's outputs on the last test split seen: tasks sharing a split
    // (the usual case) reuse one pass each way.
    let mut outputs: Option<(Tensor, Vec<Tensor>, Vec<Tensor>)> = None;
    for (t, ((name, branch), (_, _, _, test))) in siamese.branches().into_iter().zip(&models).enumerate() {
        // Each task on its own test split, both ways.
        if !outputs.as_ref().is_some_and(|(x, _, _)| x.size() == test.x.size() && x.equal(&test.x)) {
            outputs = Some((test.x.shallow_clone(), siamese.forward(&test.x), siamese.forward_separately(&test.x)));
        }
        let (_, all_one, all_separate) = outputs.as_ref().expect("computed above");
        let (one, separate) = (&all_one[t], &all_separate[t]);
        let accuracy = |logits: &Tensor| -> f64 {
            logits
                .argmax(-1, false)
                .eq_tensor(&test.y)
                .to_kind(tch::Kind::Float)
                .mean(tch::Kind::Float)
                .double_value(&[])
        };
        tasks.push(TaskCheck {
            variant: name,
            branch,
            branch_block: names_of[branch].name.to_string(),
            siamese_accuracy: accuracy(one),
            separate_accuracy: accuracy(separate),
            max_logit_difference: (one - separate).abs().max().double_value(&[]),
        });
    }
    // Timing: the first task's test inputs, answered for every task.
    let x = &models[0].3.x;
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
    let evaluation = SiameseEvaluation {
        tasks,
        batch,
        siamese_examples_per_second: siamese_rate,
        separate_examples_per_second: separate_rate,
        speedup: siamese_rate / separate_rate,
    };
    crate::report::write_atomic(&dir.join("siamese.json"), &serde_json::to_vec_pretty(&evaluation)?)?;
    Ok(evaluation)
}

/// The number of classes a model's head predicts.
fn head_classes(model: &Model) -> i64 {
    model.vs.variables().get("head.bias").map_or(1, |b| b.size()[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ModelConfig;
    use tch::{nn, Device, Kind};

    fn resnet(seed: u64) -> Model {
        let config = ModelConfig {
            kind: crate::manifest::ModelKind::Resnet,
            width: 4,
            depth: 1,
            stages: 3,
            ..Default::default()
        };
        Model::new(&config, &[1, 8, 8], 3, Device::Cpu, seed).unwrap()
    }

    /// A copy of `backbone` whose blocks at `tuned` (and head) moved.
    fn finetuned(backbone: &Model, tuned: &[u32], seed: u64) -> Model {
        let mut m = resnet(seed);
        m.vs.copy(&backbone.vs).unwrap();
        let head = m.layers().len() as u32 - 1;
        let set: Vec<u32> = tuned.iter().copied().chain([head]).collect();
        m.set_trainable(&set).unwrap();
        let mut opt = nn::OptimizerConfig::build(nn::Sgd::default(), &m.vs, 0.1).unwrap();
        let x = Tensor::randn([16, 1, 8, 8], (Kind::Float, Device::Cpu));
        let y = Tensor::arange(16, (Kind::Int64, Device::Cpu)).remainder(3);
        opt.backward_step(&m.forward_train(&x).cross_entropy_for_logits(&y));
        m
    }

    #[test]
    fn one_pass_gives_each_tasks_own_outputs() {
        // Blocks: stem, layer1.0, layer2.0, layer3.0, pool; head 5.
        let backbone = resnet(1);
        let sets: [&[u32]; 4] = [&[3], &[2, 3], &[], &[0]];
        let tasks: Vec<Model> = sets.iter().enumerate().map(|(i, s)| finetuned(&backbone, s, 10 + i as u64)).collect();
        let siamese = SiameseModel::new(
            &backbone,
            tasks.iter().zip(sets).enumerate().map(|(i, (m, s))| (format!("t{i}"), m, s.to_vec())).collect(),
        )
        .unwrap();
        let branches: Vec<usize> = siamese.branches().into_iter().map(|(_, b)| b).collect();
        assert_eq!(branches, vec![3, 2, 5, 0]);
        let x = Tensor::randn([9, 1, 8, 8], (Kind::Float, Device::Cpu));
        for (one, separate) in siamese.forward(&x).iter().zip(siamese.forward_separately(&x)) {
            assert_eq!(one.size(), vec![9, 3]);
            assert!(one.allclose(&separate, 1e-5, 1e-6, false));
        }
    }

    #[test]
    fn a_task_not_finetuned_from_the_backbone_is_refused() {
        let backbone = resnet(1);
        let stranger = finetuned(&resnet(2), &[3], 3);
        let err =
            SiameseModel::new(&backbone, vec![("other".into(), &stranger, vec![3, 5])]).err().unwrap().to_string();
        assert!(err.contains("differs from the backbone") && err.contains("other"), "{err}");
    }
}
