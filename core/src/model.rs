//! Models built with tch `nn`, exposing named blocks for finetuners.

use anyhow::{bail, Result};
use tch::nn::{self, Module};
use tch::{Device, Tensor};
use tessera_sdk::{LayerInfo, SeedRng};

use crate::manifest::ModelConfig;

/// A multi-layer perceptron whose blocks are `layer0`, `layer1`, … and `head`.
pub struct Mlp {
    /// The weights.
    pub vs: nn::VarStore,
    blocks: Vec<(String, nn::Linear, i64, i64)>,
}

impl Mlp {
    /// An MLP from `input` features to `classes` logits, initialized from
    /// `seed` alone (not libtorch's global generator, which concurrent runs share).
    pub fn new(config: &ModelConfig, input: i64, classes: i64, device: Device, seed: u64) -> Result<Self> {
        if config.kind != "mlp" {
            bail!("unknown model kind `{}` (known: mlp)", config.kind);
        }
        let vs = nn::VarStore::new(device);
        let mut blocks = Vec::new();
        let mut width = input;
        for (i, &h) in config.hidden.iter().enumerate() {
            if h <= 0 {
                bail!("model.hidden[{i}] must be positive");
            }
            let name = format!("layer{i}");
            blocks.push((name.clone(), nn::linear(vs.root() / name.as_str(), width, h, Default::default()), width, h));
            width = h;
        }
        blocks.push((
            "head".into(),
            nn::linear(vs.root() / "head", width, classes, Default::default()),
            width,
            classes,
        ));
        let model = Mlp { vs, blocks };
        model.initialize(seed);
        Ok(model)
    }

    /// PyTorch's default for linear layers, from our own stream: weights and
    /// biases uniform in ±1/√fan_in.
    fn initialize(&self, seed: u64) {
        let mut rng = SeedRng::derive(seed, 0x1417);
        let mut variables: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        variables.sort_by(|a, b| a.0.cmp(&b.0));
        tch::no_grad(|| {
            for (name, mut var) in variables {
                let block = name.split('.').next().unwrap_or("");
                let fan_in = self.blocks.iter().find(|b| b.0 == block).map_or(1, |b| b.2);
                let bound = 1.0 / (fan_in as f64).sqrt();
                let values: Vec<f32> =
                    (0..var.numel()).map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32).collect();
                let init = Tensor::from_slice(&values).view(var.size().as_slice()).to_device(var.device());
                var.copy_(&init);
            }
        });
    }

    /// Penultimate features: everything but the head.
    pub fn features(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        for (_, layer, _, _) in &self.blocks[..self.blocks.len() - 1] {
            h = layer.forward(&h).relu();
        }
        h
    }

    /// Logits.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.blocks.last().expect("head").1.forward(&self.features(x))
    }

    /// The named blocks, from input to head.
    pub fn layers(&self) -> Vec<LayerInfo> {
        self.blocks
            .iter()
            .enumerate()
            .map(|(i, (name, _, fan_in, fan_out))| LayerInfo {
                name: name.as_str().into(),
                parameters: (fan_in * fan_out + fan_out) as u64,
                flops: (2 * fan_in * fan_out) as u64,
                position: i as u32,
            })
            .collect()
    }

    /// Makes exactly the blocks at `positions` trainable; freezes the rest.
    pub fn set_trainable(&mut self, positions: &[u32]) -> Result<()> {
        if let Some(&bad) = positions.iter().find(|&&p| p as usize >= self.blocks.len()) {
            bail!("layer position {bad} does not exist (the model has {} blocks)", self.blocks.len());
        }
        for (name, var) in self.vs.variables() {
            let block = name.split('.').next().unwrap_or("");
            let train = positions.iter().any(|&p| self.blocks[p as usize].0 == block);
            let _ = var.set_requires_grad(train);
        }
        Ok(())
    }

    /// Number of parameters that train.
    pub fn trainable_parameters(&self) -> i64 {
        self.vs.variables().values().filter(|v| v.requires_grad()).map(|v| v.numel() as i64).sum()
    }
}
