//! The batched nets: K members' weights stacked on a leading axis, dense
//! layers as batched matrix products, convolutions as grouped ones.

use tch::{Kind, Tensor};

use crate::error::{bail, Result};
use crate::manifest::ModelKind;
use crate::model::Model;

/// K models of one architecture trained as one.
pub trait BatchedNet {
    /// The members' logits `[K, B, classes]` of their own inputs `[K, B, ...]` (training).
    fn forward(&self, x: &Tensor) -> Tensor;
    /// Every member's logits `[K, n, classes]` of the same inputs `[n, ...]` (evaluation).
    fn forward_shared(&self, x: &Tensor) -> Tensor;
    /// Every stacked tensor that trains.
    fn parameters(&self) -> Vec<Tensor>;
    /// Every stacked tensor by name, the frozen ones and BatchNorms'
    /// running statistics too: what a saved state keeps (shallow copies).
    fn tensors(&self) -> Vec<(String, Tensor)>;
    /// Trains the head only (`population.freeze_features`): the other
    /// layers' tensors stop taking gradients, and their BatchNorms keep
    /// their statistics, as a member's frozen blocks do alone.
    fn freeze_features(&mut self);
    /// How many members.
    fn members(&self) -> i64;
    /// Copies member `k`'s tensors into `model`, a model of the members'
    /// architecture: it then is the member as trained so far.
    fn write_member(&self, k: i64, model: &Model) -> Result<()>;
}

/// The members' stacked batched net: MLPs or CNNs.
pub(crate) fn stack(members: &[&Model], kind: ModelKind) -> Result<Box<dyn BatchedNet>> {
    Ok(match kind {
        ModelKind::Cnn => Box::new(BatchedCnn::stack(members)?),
        _ => Box::new(BatchedMlp::stack(members)?),
    })
}

/// Stacks the members' `name.leaf` tensors (detached) along a new first axis.
fn stacked(members: &[&Model], key: &str) -> Result<Vec<Tensor>> {
    members.iter().map(|m| m.vs.variables().get(key).map(Tensor::detach).ok_or_else(|| missing(key))).collect()
}

/// The members' layers `key` as their own models hold them: weight
/// `[K, out, in]` and bias `[K, out, 1]`.
fn stacked_linear(members: &[&Model], key: &str) -> Result<(Tensor, Tensor)> {
    let weights = stacked(members, &format!("{key}.weight"))?;
    let biases: Vec<Tensor> = stacked(members, &format!("{key}.bias"))?.iter().map(|b| b.unsqueeze(1)).collect();
    Ok((leaf(Tensor::stack(&weights, 0)), leaf(Tensor::stack(&biases, 0))))
}

/// A stacked linear layer on features-first activations `[K, in, B]`:
/// `[K, out, B]`, bias added in the same kernel. Features first, since
/// a batched product with few output columns (a 10-class head) is several
/// times slower than its transpose.
fn linear(h: &Tensor, (weight, bias): &(Tensor, Tensor)) -> Tensor {
    bias.baddbmm(weight, h, 1.0, 1.0)
}

/// Copies `value` into `model`'s tensor `key`.
fn write(model: &Model, key: &str, value: &Tensor) -> Result<()> {
    let variables = model.vs.variables();
    let target = variables.get(key).ok_or_else(|| missing(key))?;
    if target.size() != value.size() {
        bail!("batched training: `{key}` has shape {:?} in the model, {:?} in the batch", target.size(), value.size());
    }
    tch::no_grad(|| target.shallow_clone().copy_(value));
    Ok(())
}

/// Member `k`'s linear layer `(weight [K, out, in], bias [K, out, 1])` into `model`'s `key`.
fn write_linear(model: &Model, key: &str, (weight, bias): &(Tensor, Tensor), k: i64) -> Result<()> {
    write(model, &format!("{key}.weight"), &weight.get(k))?;
    write(model, &format!("{key}.bias"), &bias.get(k).squeeze_dim(1))
}

/// A stacked tensor the optimizer trains.
fn leaf(t: Tensor) -> Tensor {
    t.contiguous().set_requires_grad(true)
}

/// K CNNs of one architecture: each conv layer one grouped convolution
/// (group k is member k's filters), then each member's global pool and head.
pub struct BatchedCnn {
    k: i64,
    /// One example's shape, `[C, H, W]`.
    input: Vec<i64>,
    /// Per conv layer: weight `[K·out, in, 3, 3]`, bias `[K·out]`, and its
    /// BatchNorm with `model.batch_norm`.
    convs: Vec<(Tensor, Tensor, Option<StackedNorm>)>,
    head: (Tensor, Tensor),
    /// Whether only the head trains.
    frozen: bool,
}

/// The members' BatchNorms of one conv layer over its grouped channels
/// `[K·out]`: a channel's statistics over (batch, height, width) are one
/// member's, of its own batch, so each member normalises as it would alone;
/// its running statistics likewise.
struct StackedNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
}

impl StackedNorm {
    /// Layer `i`'s BatchNorms, if the members have them.
    fn stack(members: &[&Model], i: usize) -> Result<Option<StackedNorm>> {
        let key = |leaf: &str| format!("conv{i}.bn.{leaf}");
        if !members[0].vs.variables().contains_key(&key("weight")) {
            return Ok(None);
        }
        let cat = |leaf: &str| -> Result<Tensor> { Ok(Tensor::cat(&stacked(members, &key(leaf))?, 0).contiguous()) };
        let (weight, bias) = (leaf(cat("weight")?), leaf(cat("bias")?));
        Ok(Some(StackedNorm { weight, bias, running_mean: cat("running_mean")?, running_var: cat("running_var")? }))
    }

    /// Its four tensors by name.
    fn named(&self) -> [(&'static str, &Tensor); 4] {
        [
            ("weight", &self.weight),
            ("bias", &self.bias),
            ("running_mean", &self.running_mean),
            ("running_var", &self.running_var),
        ]
    }

    /// `h` normalised: by the batch's statistics (updating the running
    /// ones) while training, by the running ones in evaluation, with the
    /// momentum and epsilon of the members' own BatchNorm.
    fn apply(&self, h: &Tensor, train: bool) -> Tensor {
        let config = tch::nn::BatchNormConfig::default();
        h.batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            config.momentum,
            config.eps,
            config.cudnn_enabled,
        )
    }
}

impl BatchedCnn {
    /// The members' weights stacked, each as its own model holds them.
    pub fn stack(members: &[&Model]) -> Result<Self> {
        let Some(first) = members.first() else { bail!("a batch of no members") };
        let variables = first.vs.variables();
        let layers = variables.keys().filter(|n| n.starts_with("conv") && n.ends_with(".conv.weight")).count();
        let mut convs = Vec::new();
        for i in 0..layers {
            let weight = Tensor::cat(&stacked(members, &format!("conv{i}.conv.weight"))?, 0);
            let bias = Tensor::cat(&stacked(members, &format!("conv{i}.conv.bias"))?, 0);
            convs.push((leaf(weight), leaf(bias), StackedNorm::stack(members, i)?));
        }
        let input = first.input_shape().to_vec();
        let head = stacked_linear(members, "head")?;
        Ok(BatchedCnn { k: members.len() as i64, input, convs, head, frozen: false })
    }

    /// The logits of channels-stacked inputs `[B, K·C, H, W]`, in
    /// channels-last memory, where grouped convolutions and their pools
    /// measure fastest; BatchNorms in training mode when `train`.
    fn grouped(&self, h: Tensor, train: bool) -> Tensor {
        let mut h = h.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        for (weight, bias, norm) in &self.convs {
            h = h.conv2d(weight, Some(bias), [1, 1], [1, 1], [1, 1], self.k);
            if let Some(norm) = norm {
                h = norm.apply(&h, train && !self.frozen);
            }
            h = h.relu_();
            let (height, width) = (h.size()[2].min(2), h.size()[3].min(2));
            h = h.max_pool2d([height, width], [height, width], [0, 0], [1, 1], false);
        }
        let b = h.size()[0];
        let features = h.mean_dim([2i64, 3].as_slice(), false, Kind::Float).view([b, self.k, -1]).permute([1, 2, 0]);
        linear(&features, &self.head).transpose(1, 2)
    }
}

impl BatchedNet for BatchedCnn {
    fn forward(&self, x: &Tensor) -> Tensor {
        let b = x.size()[1];
        let (c, h, w) = (self.input[0], self.input[1], self.input[2]);
        self.grouped(x.reshape([self.k, b, c, h, w]).transpose(0, 1).reshape([b, self.k * c, h, w]), true)
    }

    fn forward_shared(&self, x: &Tensor) -> Tensor {
        let n = x.size()[0];
        let (c, h, w) = (self.input[0], self.input[1], self.input[2]);
        self.grouped(x.reshape([n, c, h, w]).repeat([1, self.k, 1, 1]), false)
    }

    fn parameters(&self) -> Vec<Tensor> {
        let (w, b) = &self.head;
        if self.frozen {
            return vec![w.shallow_clone(), b.shallow_clone()];
        }
        let norms = |norm: &Option<StackedNorm>| {
            norm.iter().flat_map(|n| [n.weight.shallow_clone(), n.bias.shallow_clone()]).collect::<Vec<_>>()
        };
        self.convs
            .iter()
            .flat_map(|(w, b, norm)| [w.shallow_clone(), b.shallow_clone()].into_iter().chain(norms(norm)))
            .chain([w.shallow_clone(), b.shallow_clone()])
            .collect()
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut named = Vec::new();
        for (i, (weight, bias, norm)) in self.convs.iter().enumerate() {
            named.push((format!("conv{i}.weight"), weight.shallow_clone()));
            named.push((format!("conv{i}.bias"), bias.shallow_clone()));
            for (leaf, t) in norm.iter().flat_map(StackedNorm::named) {
                named.push((format!("conv{i}.bn.{leaf}"), t.shallow_clone()));
            }
        }
        named.push(("head.weight".into(), self.head.0.shallow_clone()));
        named.push(("head.bias".into(), self.head.1.shallow_clone()));
        named
    }

    fn freeze_features(&mut self) {
        for (weight, bias, norm) in &self.convs {
            let norm = norm.iter().flat_map(|n| [&n.weight, &n.bias]);
            [weight, bias].into_iter().chain(norm).for_each(|t| drop(t.set_requires_grad(false)));
        }
        self.frozen = true;
    }

    fn members(&self) -> i64 {
        self.k
    }

    fn write_member(&self, k: i64, model: &Model) -> Result<()> {
        let own = |t: &Tensor| {
            let out = t.size()[0] / self.k;
            t.narrow(0, k * out, out)
        };
        for (i, (weight, bias, norm)) in self.convs.iter().enumerate() {
            write(model, &format!("conv{i}.conv.weight"), &own(weight))?;
            write(model, &format!("conv{i}.conv.bias"), &own(bias))?;
            for (leaf, t) in norm.iter().flat_map(StackedNorm::named) {
                write(model, &format!("conv{i}.bn.{leaf}"), &own(t))?;
            }
        }
        write_linear(model, "head", &self.head, k)
    }
}

/// K MLPs of one architecture as stacked tensors: per layer a weight
/// `[K, out, in]` and a bias `[K, out, 1]`, the last layer the head.
pub struct BatchedMlp {
    layers: Vec<(Tensor, Tensor)>,
    /// Whether only the head trains.
    frozen: bool,
}

impl BatchedMlp {
    /// The members' weights stacked, each as its own model holds them.
    pub fn stack(members: &[&Model]) -> Result<Self> {
        let Some(first) = members.first() else { bail!("a batch of no members") };
        let hidden = first.vs.variables().keys().filter(|n| n.starts_with("layer") && n.ends_with(".weight")).count();
        let keys = (0..hidden).map(|i| format!("layer{i}")).chain(["head".to_string()]);
        let layers = keys.map(|key| stacked_linear(members, &key)).collect::<Result<_>>()?;
        Ok(BatchedMlp { layers, frozen: false })
    }
}

impl BatchedNet for BatchedMlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.flatten(2, -1).transpose(1, 2);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            h = linear(&h, layer);
            if i < last {
                // In place: the product's backward needs its inputs, not its output.
                h = h.relu_();
            }
        }
        h.transpose(1, 2)
    }

    fn forward_shared(&self, x: &Tensor) -> Tensor {
        let shape: Vec<i64> = [self.members()].into_iter().chain(x.size()).collect();
        self.forward(&x.unsqueeze(0).expand(shape.as_slice(), false))
    }

    fn parameters(&self) -> Vec<Tensor> {
        let trained = if self.frozen { &self.layers[self.layers.len() - 1..] } else { &self.layers[..] };
        trained.iter().flat_map(|(w, b)| [w.shallow_clone(), b.shallow_clone()]).collect()
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let named = |(i, (w, b)): (usize, &(Tensor, Tensor))| {
            [(format!("layer{i}.weight"), w.shallow_clone()), (format!("layer{i}.bias"), b.shallow_clone())]
        };
        self.layers.iter().enumerate().flat_map(named).collect()
    }

    fn freeze_features(&mut self) {
        for (weight, bias) in &self.layers[..self.layers.len() - 1] {
            drop((weight.set_requires_grad(false), bias.set_requires_grad(false)));
        }
        self.frozen = true;
    }

    fn members(&self) -> i64 {
        self.layers[0].0.size()[0]
    }

    fn write_member(&self, k: i64, model: &Model) -> Result<()> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let key = if i == last { "head".to_string() } else { format!("layer{i}") };
            write_linear(model, &key, layer, k)?;
        }
        Ok(())
    }
}

fn missing(key: &str) -> crate::TorchError {
    crate::TorchError::Invalid(format!("batched training: the model has no `{key}` (only MLPs batch)"))
}
