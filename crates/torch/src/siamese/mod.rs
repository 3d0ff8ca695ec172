//! Siamese multi-task inference (SubTuning): T tasks finetuned from one
//! pretrained backbone, each with its own copies of the blocks it tuned and
//! its own head, answered in one pass. The pretrained trunk runs once; each
//! task branches off at its first tuned block and runs its own blocks from
//! there. A task's cost is only the blocks from its branch point on, so tasks
//! that tune late blocks are nearly free.

use crate::error::{bail, Result};
use tch::Tensor;

use crate::model::Model;

mod evaluate;

pub use evaluate::{evaluate_run, SiameseEvaluation, TaskCheck};

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
