//! Models built with tch `nn`: an MLP, a small CNN and a ResNet-style
//! network, each a sequence of named blocks (what finetuners choose among)
//! followed by a linear head. Frozen blocks keep their BatchNorm statistics.

use crate::error::{bail, Context, Result};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};
use tessera_sdk::{LayerInfo, SeedRng};

use crate::manifest::{ModelConfig, ModelKind};

mod blocks;
mod bodies;
mod rates;

use bodies::*;
pub use rates::last_layer_gradient_norms;

struct Block {
    name: String,
    module: Box<dyn ModuleT>,
    /// Whether it trains (BatchNorm statistics included); a finetuner may
    /// change it during training.
    trainable: std::cell::Cell<bool>,
}

/// A TorchScript module whose top-level submodules are its blocks.
struct ScriptNet {
    module: std::sync::Mutex<(tch::TrainableCModule, bool)>,
    /// VarStore names of each block's parameters, by block (in order).
    block_vars: Vec<(String, Vec<String>)>,
    has_features: bool,
}

/// A network of named blocks and a linear head.
pub struct Model {
    /// The weights.
    pub vs: nn::VarStore,
    /// Shape the blocks expect for one example (e.g. `[1, 8, 8]` or `[16]`).
    input_shape: Vec<i64>,
    blocks: Vec<Block>,
    /// The linear head (None for TorchScript models, whose last block is theirs).
    head: Option<nn::Linear>,
    head_trainable: std::cell::Cell<bool>,
    layers: Vec<LayerInfo>,
    /// Each layer's weight tensors (as `layers` lists them).
    tensors: Vec<Vec<Tensor>>,
    /// Tensors whose steps are scaled by a learning-rate multiplier other than 1.
    scaled: std::cell::RefCell<Vec<(Tensor, f32)>>,
    script: Option<ScriptNet>,
    /// Shape of one example at the input of each block (and of the head, last).
    block_inputs: Vec<Vec<i64>>,
    /// The first block that runs: inputs are that block's inputs (cached
    /// activations of the frozen prefix); 0 = raw examples.
    start: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("layers", &self.layers).finish()
    }
}

impl Model {
    /// Builds the model `config` describes for examples of `shape` and
    /// `classes` classes, initialized from `seed` alone (not libtorch's
    /// global generator, which concurrent runs share).
    pub fn new(config: &ModelConfig, shape: &[usize], classes: i64, device: Device, seed: u64) -> Result<Self> {
        if config.kind == ModelKind::Torchscript {
            return Self::torchscript(config, shape, device);
        }
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let body = match config.kind {
            ModelKind::Mlp | ModelKind::Linear => mlp_body(config, shape, &root)?,
            ModelKind::Cnn => cnn_body(config, shape, &root)?,
            ModelKind::Resnet => resnet_body(config, shape, &root)?,
            ModelKind::Torchscript => unreachable!("handled above"),
            ModelKind::None => bail!("model.kind = \"none\" is only for [reference]: name an architecture"),
        };
        let head = nn::linear(&root / "head", body.features, classes, Default::default());
        let mut model = Model {
            vs,
            input_shape: body.input_shape,
            blocks: body.blocks,
            head: Some(head),
            head_trainable: true.into(),
            layers: vec![],
            tensors: vec![],
            scaled: Default::default(),
            script: None,
            block_inputs: vec![],
            start: 0,
        };
        model.initialize(seed);
        model.describe()?;
        model.load_configured_weights(config)?;
        Ok(model)
    }

    /// Loads `model.weights`, if set: all of them, or all but the head's
    /// with `fresh_head`.
    fn load_configured_weights(&mut self, config: &ModelConfig) -> Result<()> {
        let Some(path) = &config.weights else { return Ok(()) };
        let path = std::path::Path::new(path);
        if !path.exists() {
            bail!(
                "model.weights: {} does not exist (make it first: run the manifest that trains and saves it, \
                 e.g. with [train] save_model = true)",
                path.display()
            );
        }
        if config.fresh_head {
            self.load_backbone(path)
        } else {
            self.load(path)
        }
    }

    /// A TorchScript module exported from PyTorch (`torch.jit.save`), taken
    /// as it is: its `forward` gives logits, an exported `features` method (if
    /// any) the penultimate features, and its top-level submodules are the
    /// blocks (in the order their parameters are registered; the last is
    /// the head). BatchNorm runs in training mode only while every block
    /// trains: freezing any block freezes all running statistics.
    fn torchscript(config: &ModelConfig, shape: &[usize], device: Device) -> Result<Self> {
        let path =
            config.path.as_ref().context("model.kind = \"torchscript\" needs model.path (a torch.jit.save file)")?;
        let plain =
            tch::CModule::load_on_device(path, device).with_context(|| format!("loading TorchScript model {path}"))?;
        let vs = nn::VarStore::new(device);
        let module = tch::TrainableCModule::load(path, vs.root() / "script")
            .with_context(|| format!("loading TorchScript model {path}"))?;
        let mut block_vars: Vec<(String, Vec<String>)> = Vec::new();
        for (name, _) in plain.named_parameters()? {
            let block = name.split('.').next().unwrap_or(&name).to_string();
            let var = format!("script.{}", name.replace('.', "_"));
            match block_vars.iter_mut().find(|(b, _)| *b == block) {
                Some((_, vars)) => vars.push(var),
                None => block_vars.push((block, vec![var])),
            }
        }
        if block_vars.is_empty() {
            bail!("TorchScript model {path} has no parameters");
        }
        let input_shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let mut probe = vec![1i64];
        probe.extend_from_slice(&input_shape);
        let x = Tensor::zeros(probe.as_slice(), (Kind::Float, device));
        let has_features = plain.method_ts("features", &[&x]).is_ok();
        let variables = vs.variables();
        let layers = block_vars
            .iter()
            .enumerate()
            .map(|(i, (name, vars))| {
                let params: u64 = vars.iter().filter_map(|v| variables.get(v)).map(|t| t.numel() as u64).sum();
                LayerInfo::new(name, params, 2 * params, i as u32)
            })
            .collect();
        let named: Vec<Vec<(String, Tensor)>> = block_vars
            .iter()
            .map(|(_, vars)| {
                vars.iter().filter_map(|v| variables.get(v).map(|t| (v.clone(), t.shallow_clone()))).collect()
            })
            .collect();
        let (layers, tensors) = rates::with_tensors(layers, named);
        Ok(Model {
            vs,
            input_shape,
            blocks: vec![],
            head: None,
            head_trainable: false.into(),
            layers,
            tensors,
            scaled: Default::default(),
            script: Some(ScriptNet { module: std::sync::Mutex::new((module, false)), block_vars, has_features }),
            block_inputs: vec![],
            start: 0,
        })
    }

    fn script_forward(&self, method: &str, x: &Tensor, train: bool) -> Tensor {
        let script = self.script.as_ref().expect("a TorchScript model");
        let mut guard = script.module.lock().expect("the module lock");
        let (module, in_train) = &mut *guard;
        if *in_train != train {
            if train {
                module.set_train()
            } else {
                module.set_eval()
            }
            *in_train = train;
        }
        let result = if method == "forward" { module.forward_ts(&[x]) } else { module.method_ts(method, &[x]) };
        result.unwrap_or_else(|e| panic!("TorchScript model, method `{method}`: {e}"))
    }

    /// PyTorch's defaults from our own stream: weights and biases uniform in
    /// ±1/√fan_in; BatchNorm scale 1, shift 0.
    fn initialize(&self, seed: u64) {
        let mut rng = SeedRng::derive(seed, 0x1417);
        let mut variables: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        variables.sort_by(|a, b| a.0.cmp(&b.0));
        let fan_in = |prefix: &str| -> i64 {
            variables
                .iter()
                .find(|(n, _)| n == &format!("{prefix}.weight"))
                .map_or(1, |(_, w)| w.size().iter().skip(1).product::<i64>().max(1))
        };
        tch::no_grad(|| {
            for (name, var) in &variables {
                let (prefix, leaf) = name.rsplit_once('.').unwrap_or(("", name));
                let is_norm = var.dim() == 1 && variables.iter().any(|(n, _)| n == &format!("{prefix}.running_mean"));
                let init = match leaf {
                    "running_mean" | "running_var" | "num_batches_tracked" => continue,
                    "weight" if is_norm => Tensor::ones(var.size(), (Kind::Float, var.device())),
                    "bias" if is_norm => Tensor::zeros(var.size(), (Kind::Float, var.device())),
                    _ => {
                        let bound = 1.0 / (fan_in(prefix) as f64).sqrt();
                        let values: Vec<f32> =
                            (0..var.numel()).map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32).collect();
                        Tensor::from_slice(&values).view(var.size().as_slice()).to_device(var.device())
                    }
                };
                let mut var = var.shallow_clone();
                var.copy_(&init);
            }
        });
    }

    /// Names, parameter counts, FLOPs and positions of the blocks and head,
    /// and each block's input shape, measured with one example through the
    /// network.
    fn describe(&mut self) -> Result<()> {
        let variables = self.vs.variables();
        let count = |prefix: &str| -> u64 {
            variables
                .iter()
                .filter(|(n, v)| n.starts_with(&format!("{prefix}.")) && v.requires_grad())
                .map(|(_, v)| v.numel() as u64)
                .sum()
        };
        let mut shape = vec![1i64];
        shape.extend_from_slice(&self.input_shape);
        let mut x = Tensor::zeros(shape.as_slice(), (Kind::Float, self.vs.device()));
        let mut layers = Vec::new();
        let mut block_inputs = Vec::new();
        tch::no_grad(|| {
            for (i, block) in self.blocks.iter().enumerate() {
                block_inputs.push(x.size()[1..].to_vec());
                x = block.module.forward_t(&x, false);
                let spatial: i64 = if x.dim() == 4 { x.size()[2] * x.size()[3] } else { 1 };
                let params = count(&block.name);
                layers.push(LayerInfo::new(&block.name, params, 2 * params * spatial as u64, i as u32));
            }
        });
        block_inputs.push(vec![x.flatten(1, -1).size()[1]]);
        let params = count("head");
        layers.push(LayerInfo::new("head", params, 2 * params, self.blocks.len() as u32));
        let named = layers.iter().map(|l| rates::weights_under(&variables, &format!("{}.", l.name))).collect();
        (self.layers, self.tensors) = rates::with_tensors(layers, named);
        self.block_inputs = block_inputs;
        Ok(())
    }

    /// Whether the network can be split at block boundaries (native models;
    /// TorchScript models run as one piece).
    pub fn is_splittable(&self) -> bool {
        self.script.is_none()
    }

    /// The activations entering block `j` (the head when `j` is the number of
    /// blocks), blocks `0..j` in evaluation mode, computed `batch` examples at
    /// a time without gradients: the frozen prefix's output.
    pub fn prefix_activations(&self, x: &Tensor, j: usize, batch: i64) -> Result<Tensor> {
        if !self.is_splittable() {
            bail!("a TorchScript model cannot be split at its blocks");
        }
        if j > self.blocks.len() {
            bail!("block {j} does not exist (the model has {} blocks and a head)", self.blocks.len());
        }
        let n = x.size()[0];
        if n == 0 {
            return Ok(Tensor::zeros([0, self.block_input_width(j)], (Kind::Float, x.device())));
        }
        let parts: Vec<Tensor> = tch::no_grad(|| {
            (0..n)
                .step_by(batch.max(1) as usize)
                .map(|from| self.run_blocks(&x.narrow(0, from, batch.min(n - from)), 0, j))
                .collect()
        });
        Ok(Tensor::cat(&parts, 0))
    }

    /// Floats per example entering block `j` (the head when `j` is the number of blocks).
    pub fn block_input_width(&self, j: usize) -> i64 {
        self.block_inputs.get(j).map_or(0, |shape| shape.iter().product())
    }

    /// Makes the model take the activations entering block `j` as its input
    /// (see [`Model::prefix_activations`]); 0 = raw examples again.
    pub fn start_at_block(&mut self, j: usize) -> Result<()> {
        if j > 0 && !self.is_splittable() {
            bail!("a TorchScript model cannot start at block {j}");
        }
        if j > self.blocks.len() {
            bail!("block {j} does not exist (the model has {} blocks and a head)", self.blocks.len());
        }
        self.start = j;
        Ok(())
    }

    /// Runs blocks `from..to` (in evaluation mode) on `h`, the activations
    /// entering block `from` in any shape with `n` rows; returns the
    /// activations entering block `to`, flattened to `[n, d]`. With `to` the
    /// number of blocks, the penultimate features.
    pub fn run_blocks(&self, h: &Tensor, from: usize, to: usize) -> Tensor {
        self.forward_blocks(h, from, to, false)
    }

    /// The head's logits for penultimate features `[n, d]`.
    pub fn head_logits(&self, features: &Tensor) -> Tensor {
        features.apply(self.head.as_ref().expect("a native model has a head"))
    }

    /// Penultimate features `[n, d]`; `train` enables BatchNorm updates in
    /// trainable blocks only.
    pub fn features_t(&self, x: &Tensor, train: bool) -> Tensor {
        if let Some(script) = &self.script {
            if !script.has_features {
                panic!("the TorchScript model exports no `features` method (add one with @torch.jit.export to observe features)");
            }
            return self.script_forward("features", x, train && self.all_blocks_trainable());
        }
        self.forward_blocks(x, self.start, self.blocks.len(), train)
    }

    /// Blocks `from..to` on `h` (the activations entering block `from`, any
    /// shape with `n` rows), flattened to `[n, d]`; `train` puts trainable
    /// blocks in training mode.
    fn forward_blocks(&self, h: &Tensor, from: usize, to: usize, train: bool) -> Tensor {
        let mut shape = vec![h.size()[0]];
        shape.extend_from_slice(&self.block_inputs[from]);
        let mut h = h.reshape(shape.as_slice());
        for block in &self.blocks[from..to] {
            h = block.module.forward_t(&h, train && block.trainable.get());
        }
        h.flatten(1, -1)
    }

    /// Logits in training mode.
    pub fn forward_train(&self, x: &Tensor) -> Tensor {
        if self.script.is_some() {
            return self.script_forward("forward", x, self.all_blocks_trainable());
        }
        self.features_t(x, true).apply(self.head.as_ref().expect("a native model has a head"))
    }

    fn all_blocks_trainable(&self) -> bool {
        match &self.script {
            Some(script) => {
                let variables = self.vs.variables();
                script
                    .block_vars
                    .iter()
                    .flat_map(|(_, vars)| vars)
                    .all(|v| variables.get(v).is_some_and(|t| t.requires_grad()))
            }
            None => self.blocks.iter().all(|b| b.trainable.get()) && self.head_trainable.get(),
        }
    }

    /// Penultimate features in evaluation mode.
    pub fn features(&self, x: &Tensor) -> Tensor {
        self.features_t(x, false)
    }

    /// Logits in evaluation mode.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        if self.script.is_some() {
            return self.script_forward("forward", x, false);
        }
        self.features(x).apply(self.head.as_ref().expect("a native model has a head"))
    }

    /// One example's shape as the first block takes it, e.g. `[C, H, W]`.
    pub fn input_shape(&self) -> &[i64] {
        &self.input_shape
    }

    /// The named blocks and the head, from input to output.
    pub fn layers(&self) -> Vec<LayerInfo> {
        self.layers.clone()
    }

    /// Makes exactly the blocks at `positions` trainable (the head is the
    /// last position); freezes the rest, BatchNorm statistics included.
    pub fn set_trainable(&self, positions: &[u32]) -> Result<()> {
        if let Some(&bad) = positions.iter().find(|&&p| p as usize >= self.layers.len()) {
            bail!("layer position {bad} does not exist (the model has {} layers)", self.layers.len());
        }
        if let Some(script) = &self.script {
            self.scaled.borrow_mut().clear();
            let variables = self.vs.variables();
            for (i, (_, vars)) in script.block_vars.iter().enumerate() {
                for v in vars {
                    if let Some(t) = variables.get(v) {
                        let _ = t.shallow_clone().set_requires_grad(positions.contains(&(i as u32)));
                    }
                }
            }
            return Ok(());
        }
        self.scaled.borrow_mut().clear();
        let head = self.blocks.len() as u32;
        for (i, block) in self.blocks.iter().enumerate() {
            block.trainable.set(positions.contains(&(i as u32)));
        }
        self.head_trainable.set(positions.contains(&head));
        let trainable: Vec<String> = self
            .blocks
            .iter()
            .filter(|b| b.trainable.get())
            .map(|b| format!("{}.", b.name))
            .chain(self.head_trainable.get().then(|| "head.".to_string()))
            .collect();
        for (name, var) in self.vs.variables() {
            if name.ends_with("running_mean") || name.ends_with("running_var") || name.ends_with("num_batches_tracked")
            {
                continue;
            }
            let _ = var.set_requires_grad(trainable.iter().any(|p| name.starts_with(p.as_str())));
        }
        Ok(())
    }

    /// Number of parameters that train.
    pub fn trainable_parameters(&self) -> i64 {
        self.vs.variables().values().filter(|v| v.requires_grad()).map(|v| v.numel() as i64).sum()
    }

    /// Saves the weights (`.safetensors`).
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        self.vs.save(path).with_context(|| format!("saving weights to {}", path.display()))
    }

    /// Loads every weight but the head's from `path` (a backbone pretrained
    /// on another task, whose head may have another number of classes); the
    /// head keeps its fresh initialization.
    pub fn load_backbone(&mut self, path: &std::path::Path) -> Result<()> {
        let saved =
            Tensor::read_safetensors(path).with_context(|| format!("reading weights from {}", path.display()))?;
        let saved: std::collections::HashMap<String, Tensor> = saved.into_iter().collect();
        let mut variables = self.vs.variables();
        variables.retain(|name, _| !name.starts_with("head."));
        tch::no_grad(|| -> Result<()> {
            for (name, var) in variables.iter_mut() {
                let value = saved.get(name).with_context(|| {
                    format!("{} has no weight `{name}`: was it saved by this architecture?", path.display())
                })?;
                if value.size() != var.size() {
                    bail!(
                        "{}: weight `{name}` has shape {:?}, this architecture needs {:?}",
                        path.display(),
                        value.size(),
                        var.size()
                    );
                }
                var.copy_(value);
            }
            Ok(())
        })
    }

    /// Loads weights saved by [`Model::save`] for the same architecture.
    pub fn load(&mut self, path: &std::path::Path) -> Result<()> {
        self.vs
            .load(path)
            .with_context(|| format!("loading weights from {} (is it this architecture's?)", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: &str) -> ModelConfig {
        ModelConfig { kind: kind.parse().unwrap(), ..ModelConfig::default() }
    }

    #[test]
    fn every_architecture_lists_named_blocks_and_runs() {
        for (kind, shape) in [("mlp", vec![16]), ("cnn", vec![1, 8, 8]), ("resnet", vec![1, 8, 8]), ("cnn", vec![40])] {
            let m = Model::new(&config(kind), &shape, 5, Device::Cpu, 0).unwrap();
            let layers = m.layers();
            assert_eq!(layers.last().unwrap().name.as_str(), "head");
            assert!(layers.iter().enumerate().all(|(i, l)| l.position == i as u32));
            let total: u64 = layers.iter().map(|l| l.parameters).sum();
            assert_eq!(total as i64, m.trainable_parameters(), "{kind}: blocks cover every trainable weight");
            let mut batch = vec![3i64];
            batch.extend(shape.iter().map(|&d| d as i64));
            let x = Tensor::zeros(batch.as_slice(), (Kind::Float, Device::Cpu));
            assert_eq!(m.forward(&x).size(), vec![3, 5]);
        }
        let names: Vec<String> = Model::new(&config("resnet"), &[1, 8, 8], 5, Device::Cpu, 0)
            .unwrap()
            .layers()
            .iter()
            .map(|l| l.name.to_string())
            .collect();
        assert_eq!(names, ["stem", "layer1.0", "layer2.0", "layer3.0", "pool", "head"]);
    }

    #[test]
    fn the_same_seed_gives_the_same_weights() {
        let a = Model::new(&config("resnet"), &[1, 8, 8], 3, Device::Cpu, 5).unwrap();
        let b = Model::new(&config("resnet"), &[1, 8, 8], 3, Device::Cpu, 5).unwrap();
        let c = Model::new(&config("resnet"), &[1, 8, 8], 3, Device::Cpu, 6).unwrap();
        let x = Tensor::ones([2, 1, 8, 8], (Kind::Float, Device::Cpu));
        assert!(a.forward(&x).equal(&b.forward(&x)));
        assert!(!a.forward(&x).equal(&c.forward(&x)));
    }

    #[test]
    fn frozen_blocks_keep_weights_and_batchnorm_statistics() {
        let m = Model::new(&config("resnet"), &[1, 8, 8], 3, Device::Cpu, 1).unwrap();
        let head = m.layers().len() as u32 - 1;
        m.set_trainable(&[2, head]).unwrap(); // layer2.0 and the head
        let before: Vec<(String, Tensor)> = m.vs.variables().into_iter().map(|(n, v)| (n, v.copy())).collect();
        let mut opt = nn::OptimizerConfig::build(nn::Sgd::default(), &m.vs, 0.1).unwrap();
        let x = Tensor::randn([8, 1, 8, 8], (Kind::Float, Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2, 0, 1]);
        for _ in 0..3 {
            opt.backward_step(&m.forward_train(&x).cross_entropy_for_logits(&y));
        }
        let after = m.vs.variables();
        for (name, old) in before {
            let changed = !after[&name].equal(&old);
            let should = name.starts_with("layer2.0.") || name.starts_with("head.");
            assert_eq!(changed, should, "{name}");
        }
    }

    #[test]
    fn weights_round_trip_through_safetensors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let a = Model::new(&config("cnn"), &[1, 8, 8], 4, Device::Cpu, 1).unwrap();
        a.save(&path).unwrap();
        let mut b = Model::new(&config("cnn"), &[1, 8, 8], 4, Device::Cpu, 2).unwrap();
        b.load(&path).unwrap();
        let x = Tensor::ones([1, 1, 8, 8], (Kind::Float, Device::Cpu));
        assert!(a.forward(&x).equal(&b.forward(&x)));
        let mut c = Model::new(&config("mlp"), &[64], 4, Device::Cpu, 2).unwrap();
        assert!(c.load(&path).is_err(), "another architecture's weights are refused");
    }
}
