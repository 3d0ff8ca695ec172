//! A model's weight tensors as finetuners see them (listed per layer, in a
//! fixed order), per-tensor learning-rate multipliers, and the tensor
//! statistics finetuners and metrics observe: weight norms and the gradient
//! norms of the mean loss over a split.

use std::collections::HashMap;

use tch::{Kind, Tensor};
use tessera_sdk::{LayerInfo, TensorInfo};

use super::Model;
use crate::error::{bail, Result};

/// Examples per forward pass when a statistic covers a whole split.
const CHUNK: i64 = 1024;

/// Whether a VarStore entry is a BatchNorm statistic rather than a weight.
fn is_statistic(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var") || name.ends_with("num_batches_tracked")
}

/// The weights named `prefix…`, sorted by name.
pub(super) fn weights_under(variables: &HashMap<String, Tensor>, prefix: &str) -> Vec<(String, Tensor)> {
    let mut named: Vec<(String, Tensor)> = variables
        .iter()
        .filter(|(name, _)| name.starts_with(prefix) && !is_statistic(name))
        .map(|(name, t)| (name.clone(), t.shallow_clone()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

/// `layers` with their tensors listed, and the tensors themselves by layer.
pub(super) fn with_tensors(
    mut layers: Vec<LayerInfo>,
    named: Vec<Vec<(String, Tensor)>>,
) -> (Vec<LayerInfo>, Vec<Vec<Tensor>>) {
    let mut tensors = Vec::with_capacity(named.len());
    for (layer, named) in layers.iter_mut().zip(named) {
        layer.tensors = named
            .iter()
            .map(|(name, t)| TensorInfo { name: name.as_str().into(), elements: t.numel() as u64 })
            .collect();
        tensors.push(named.into_iter().map(|(_, t)| t).collect());
    }
    (layers, tensors)
}

impl Model {
    /// Every weight tensor, in the order of [`LayerInfo::tensors`] over the layers.
    pub fn weight_tensors(&self) -> Vec<Tensor> {
        self.tensors.iter().flatten().map(Tensor::shallow_clone).collect()
    }

    /// Trains tensor t with the learning rate times `multipliers[t]`: 0
    /// freezes it (no gradient, weights unchanged bit for bit), and a layer
    /// with every multiplier 0 keeps its BatchNorm statistics.
    pub fn set_multipliers(&self, multipliers: &[f32]) -> Result<()> {
        let count: usize = self.tensors.iter().map(Vec::len).sum();
        if multipliers.len() != count {
            bail!("{} learning-rate multipliers for {count} tensors", multipliers.len());
        }
        let mut scaled = Vec::new();
        let mut at = 0;
        for (position, tensors) in self.tensors.iter().enumerate() {
            let of_layer = &multipliers[at..at + tensors.len()];
            at += tensors.len();
            for (t, &m) in tensors.iter().zip(of_layer) {
                let _ = t.set_requires_grad(m > 0.0);
                if m != 1.0 {
                    scaled.push((t.shallow_clone(), m));
                }
            }
            self.set_layer_training(position, of_layer.iter().any(|&m| m > 0.0));
        }
        *self.scaled.borrow_mut() = scaled;
        Ok(())
    }

    /// Whether layer `position` runs in training mode (native models).
    fn set_layer_training(&self, position: usize, training: bool) {
        match self.blocks.get(position) {
            Some(block) => block.trainable.set(training),
            None if self.head.is_some() => self.head_trainable.set(training),
            None => {}
        }
    }

    /// Runs `step` (the optimizer's) and scales each tensor's update by its
    /// multiplier: θ ← θ₀ + m·(θ − θ₀), as a per-tensor learning rate would
    /// (momentum and Adam's moments are unaffected, as with parameter groups);
    /// a multiplier of 0 restores θ₀ exactly.
    pub fn scaled_step(&self, step: impl FnOnce()) {
        let scaled = self.scaled.borrow();
        let moving: Vec<&(Tensor, f32)> = scaled.iter().filter(|(t, m)| *m > 0.0 || t.grad().defined()).collect();
        if moving.is_empty() {
            return step();
        }
        let before: Vec<Tensor> = tch::no_grad(|| moving.iter().map(|(t, _)| t.copy()).collect());
        step();
        tch::no_grad(|| {
            for ((t, m), old) in moving.iter().zip(&before) {
                let mut t = t.shallow_clone();
                if *m == 0.0 {
                    t.copy_(old);
                } else {
                    let moved = old + (&t - old) * f64::from(*m);
                    t.copy_(&moved);
                }
            }
        });
    }

    /// ‖θ_t‖₂ of every weight tensor.
    pub fn weight_norms(&self) -> Result<Vec<f32>> {
        tch::no_grad(|| self.weight_tensors().iter().map(|t| Ok(t.norm().double_value(&[]) as f32)).collect())
    }

    /// ‖∂L/∂θ_t‖₂ of every weight tensor, trainable or frozen, where L is
    /// the mean cross-entropy of the model (evaluation mode) on `x` with
    /// labels `y`. No gradient a training step reads is touched.
    pub fn gradient_norms(&self, x: &Tensor, y: &Tensor) -> Result<Vec<f32>> {
        let tensors = self.weight_tensors();
        let was: Vec<bool> = tensors.iter().map(Tensor::requires_grad).collect();
        tensors.iter().for_each(|t| _ = t.set_requires_grad(true));
        let sums = self.summed_gradients(&tensors, x, y);
        tensors.iter().zip(was).for_each(|(t, r)| _ = t.set_requires_grad(r));
        Ok(sums?.iter().map(|g| g.norm().double_value(&[]) as f32).collect())
    }

    /// ∂L/∂θ for each of `tensors`, over `x` in chunks.
    fn summed_gradients(&self, tensors: &[Tensor], x: &Tensor, y: &Tensor) -> Result<Vec<Tensor>> {
        let n = x.size()[0];
        if n == 0 {
            bail!("gradient norms of an empty split");
        }
        let mut sums: Vec<Tensor> = tensors.iter().map(|t| t.zeros_like().detach()).collect();
        for start in (0..n).step_by(CHUNK as usize) {
            let len = CHUNK.min(n - start);
            let logits = self.forward(&x.narrow(0, start, len));
            let loss = logits.log_softmax(-1, Kind::Float).gather(1, &y.narrow(0, start, len).unsqueeze(1), false);
            let loss = loss.neg().sum(Kind::Float) / n as f64;
            for (sum, g) in sums.iter_mut().zip(Tensor::run_backward(&[loss], tensors, false, false)) {
                *sum += g;
            }
        }
        Ok(sums)
    }
}

/// Each example's gradient norm with respect to a linear head's weights and
/// bias, from its features `h` and logits `z`: ‖softmax(z) − e_y‖·√(‖h‖² + 1).
pub fn last_layer_gradient_norms(features: &Tensor, logits: &Tensor, y: &Tensor) -> Tensor {
    let p = logits.softmax(-1, Kind::Float);
    let residual = p - logits.zeros_like().scatter_value(1, &y.unsqueeze(1), 1.0);
    let h = features.to_kind(Kind::Float).square().sum_dim_intlist(-1, false, Kind::Float);
    residual.square().sum_dim_intlist(-1, false, Kind::Float).sqrt() * (h + 1.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ModelConfig, ModelKind};
    use tch::Device;

    fn model() -> Model {
        let config = ModelConfig { kind: ModelKind::Mlp, hidden: vec![5], ..ModelConfig::default() };
        Model::new(&config, &[3], 4, Device::Cpu, 7).unwrap()
    }

    fn data() -> (Tensor, Tensor) {
        let x = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.3, 0.1, -0.7, -1.5, 0.9, 0.4, 1.1, 0.0, -0.2]).view([4, 3]);
        (x, Tensor::from_slice(&[0i64, 3, 1, 2]))
    }

    #[test]
    fn every_weight_tensor_is_listed_once_in_layer_order() {
        let m = model();
        let names: Vec<String> = LayerInfo::tensors_of(&m.layers()).map(|(_, t)| t.name.as_str().to_string()).collect();
        assert_eq!(names.first().map(String::as_str), Some("layer0.bias"));
        assert_eq!(names.last().map(String::as_str), Some("head.weight"));
        let elements: u64 = LayerInfo::tensors_of(&m.layers()).map(|(_, t)| t.elements).sum();
        assert_eq!(elements as i64, m.trainable_parameters());
    }

    #[test]
    fn gradient_norms_equal_autograd_and_finite_differences() {
        let m = model();
        let (x, y) = (data().0, data().1);
        let norms = m.gradient_norms(&x, &y).unwrap();
        // Autograd on the same loss, the usual way.
        let loss = m.forward(&x).cross_entropy_for_logits(&y);
        loss.backward();
        for (t, &norm) in m.weight_tensors().iter().zip(&norms) {
            let direct = t.grad().norm().double_value(&[]) as f32;
            assert!((direct - norm).abs() < 1e-5 * (1.0 + direct), "{direct} vs {norm}");
        }
        // A finite difference along the gradient of the head's weight: the
        // directional derivative along g/‖g‖ is ‖g‖.
        let head = m.weight_tensors().last().unwrap().shallow_clone();
        let g = head.grad().copy();
        let direction = &g / g.norm();
        let at = |eps: f64| {
            tch::no_grad(|| {
                let mut h = head.shallow_clone();
                h += &direction * eps;
                let l = m.forward(&x).cross_entropy_for_logits(&y).double_value(&[]);
                h -= &direction * eps;
                l
            })
        };
        let eps = 1e-3;
        let slope = (at(eps) - at(-eps)) / (2.0 * eps);
        assert!((slope as f32 - norms.last().unwrap()).abs() < 1e-3, "{slope} vs {}", norms.last().unwrap());
    }

    #[test]
    fn last_layer_norms_equal_each_example_s_autograd() {
        let m = model();
        let (x, y) = data();
        let (features, logits) = (m.features(&x), m.forward(&x));
        let norms = Vec::<f32>::try_from(last_layer_gradient_norms(&features, &logits, &y)).unwrap();
        let head: Vec<Tensor> = m.tensors.last().unwrap().iter().map(Tensor::shallow_clone).collect();
        for i in 0..4 {
            let loss = m.forward(&x.narrow(0, i, 1)).cross_entropy_for_logits(&y.narrow(0, i, 1));
            let grads = Tensor::run_backward(&[loss], &head, false, false);
            let direct = grads.iter().map(|g| g.square().sum(Kind::Float).double_value(&[])).sum::<f64>().sqrt();
            assert!((direct as f32 - norms[i as usize]).abs() < 1e-5, "{i}: {direct} vs {}", norms[i as usize]);
        }
    }

    #[test]
    fn a_multiplier_of_zero_leaves_weights_bit_unchanged_and_others_scale_the_step() {
        let (x, y) = data();
        let cfg = crate::manifest::TrainConfig {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.01,
            ..crate::manifest::TrainConfig::default()
        };
        // Each tensor's change over `steps` SGD steps (momentum, weight decay).
        let moves = |m: &Model, steps: usize| {
            let mut opt = crate::train::optimizer(m, &cfg).unwrap();
            let before: Vec<Tensor> = m.weight_tensors().iter().map(Tensor::copy).collect();
            for _ in 0..steps {
                opt.zero_grad().unwrap();
                m.forward_train(&x).cross_entropy_for_logits(&y).backward();
                m.scaled_step(|| opt.step().unwrap());
            }
            m.weight_tensors().iter().zip(&before).map(|(a, b)| a - b).collect::<Vec<Tensor>>()
        };
        let count = model().weight_tensors().len();
        // The first tensor frozen, the last at half speed, the rest at full.
        let mut multipliers = vec![1.0f32; count];
        (multipliers[0], multipliers[count - 1]) = (0.0, 0.5);
        let largest = |t: &Tensor| t.abs().max().double_value(&[]);
        let scaled = model();
        scaled.set_multipliers(&multipliers).unwrap();
        let (one, free) = (moves(&scaled, 1), moves(&model(), 1));
        assert_eq!(largest(&one[0]), 0.0, "frozen");
        assert!(largest(&free[0]) > 0.0, "and free it moves");
        assert!(largest(&(&one[count - 1] * 2.0 - &free[count - 1])) < 1e-7, "m = 0.5: half the step");
        assert!(largest(&(&one[1] - &free[1])) < 1e-7, "m = 1: the same step");
        // Frozen after it trained (its gradient and momentum exist): still
        // bit for bit, weight decay and momentum notwithstanding.
        let thawed = model();
        let _ = moves(&thawed, 2);
        thawed.set_multipliers(&multipliers).unwrap();
        let before = thawed.weight_tensors()[0].copy();
        let _ = moves(&thawed, 3);
        assert!(thawed.weight_tensors()[0].equal(&before), "bit for bit");
    }
}
