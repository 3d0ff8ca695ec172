//! Self-supervised pretraining (`[pretrain]`): the variant's network learns a
//! representation from the training inputs alone, before any label is used.
//!
//! - `simclr`: two augmented views of each example; the features pass through
//!   a projection head g (Linear–ReLU–Linear) to z = g(f(x)) / ‖g(f(x))‖, and
//!   the NT-Xent loss with temperature τ pulls the two views of an example
//!   together against the other 2B − 2 views of the batch (Chen et al. 2020).
//! - `autoencoder`: a linear decoder reconstructs the input from the features
//!   of a (noise-)augmented view; mean squared error.
//!
//! Only the feature blocks change; the classification head stays as
//! initialized. A linear probe (`baselines.linear-probe`) then trains the
//! head on the frozen representation.

use crate::error::{bail, Result};
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};
use tessera_sdk::SeedRng;

use crate::manifest::{PretrainConfig, PretrainMethod};
use crate::model::Model;
use crate::train::TensorData;

/// The augmentation of one view: a random translation of up to `shift`
/// points along each of the last two axes of `[B, C, H, W]` examples (the
/// last axis of `[B, C, L]`; none for flat vectors), filled with zeros, then
/// Gaussian noise of standard deviation `noise`, from `rng` alone.
pub fn augment(x: &Tensor, shift: i64, noise: f64, rng: &mut SeedRng) -> Tensor {
    let dims = x.dim();
    let mut out = x.shallow_clone();
    if shift > 0 && dims >= 3 {
        let batch = x.size()[0];
        let axes: Vec<i64> = if dims >= 4 { vec![dims as i64 - 2, dims as i64 - 1] } else { vec![dims as i64 - 1] };
        let mut shifted = x.zeros_like();
        // Examples grouped by their translation: one roll and mask per group.
        let mut groups: std::collections::BTreeMap<Vec<i64>, Vec<i64>> = Default::default();
        for i in 0..batch {
            let by: Vec<i64> = axes.iter().map(|_| rng.below(2 * shift as u64 + 1) as i64 - shift).collect();
            groups.entry(by).or_default().push(i);
        }
        for (by, members) in groups {
            let index = Tensor::from_slice(&members).to_device(x.device());
            let mut part = x.index_select(0, &index).roll(by.as_slice(), axes.as_slice());
            for (&axis, &b) in axes.iter().zip(&by) {
                let len = x.size()[axis as usize];
                let keep: Vec<f32> = (0..len).map(|i| if i - b >= 0 && i - b < len { 1.0 } else { 0.0 }).collect();
                let mut shape = vec![1i64; dims];
                shape[axis as usize] = len;
                part = &part * Tensor::from_slice(&keep).view(shape.as_slice()).to_device(x.device());
            }
            shifted = shifted.index_copy(0, &index, &part);
        }
        out = shifted;
    }
    if noise > 0.0 {
        let draws: Vec<f32> = (0..out.numel()).map(|_| (noise * crate::data::normal(rng)) as f32).collect();
        let shape = out.size();
        // Not `+=`: `out` may share its storage with the caller's `x`.
        out = &out + Tensor::from_slice(&draws).view(shape.as_slice()).to_device(x.device());
    }
    out
}

/// NT-Xent over two views' projections `z1`, `z2` (`[B, p]`, unnormalized):
/// −log of the softmax (temperature τ) of each view's similarity to its pair
/// against the other 2B − 2 views, averaged over the 2B views.
pub fn nt_xent(z1: &Tensor, z2: &Tensor, temperature: f64) -> Tensor {
    let b = z1.size()[0];
    let z = Tensor::cat(&[z1, z2], 0);
    let z = &z / z.norm_scalaropt_dim(2, [1].as_slice(), true).clamp_min(1e-12);
    let eye = Tensor::eye(2 * b, (Kind::Bool, z.device()));
    let similarity = (z.matmul(&z.transpose(0, 1)) / temperature).masked_fill(&eye, -1e9);
    let targets = Tensor::cat(
        &[Tensor::arange_start(b, 2 * b, (Kind::Int64, z.device())), Tensor::arange(b, (Kind::Int64, z.device()))],
        0,
    );
    similarity.cross_entropy_for_logits(&targets)
}

/// What pretraining reports.
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainSummary {
    /// The mean loss of each epoch.
    pub epoch_loss: Vec<f64>,
    /// Wall time.
    pub seconds: f64,
}

/// Pretrains `model`'s feature blocks on `train`'s inputs as `cfg` says
/// (labels are never read). Deterministic for a given `seed` on the CPU.
pub fn pretrain(
    cfg: &PretrainConfig,
    model: &Model,
    train: &TensorData,
    device: Device,
    seed: u64,
) -> Result<PretrainSummary> {
    let started = std::time::Instant::now();
    let n = train.x.size()[0];
    if n < 2 || cfg.batch_size < 2 {
        bail!("pretraining needs at least 2 examples and pretrain.batch_size ≥ 2");
    }
    let features = tch::no_grad(|| model.features(&train.x.narrow(0, 0, 1))).size()[1];
    let input: i64 = train.x.size()[1..].iter().product();
    // The auxiliary head: a projection g (SimCLR) or a decoder (autoencoder).
    let aux = nn::VarStore::new(device);
    let root = aux.root();
    let head: Box<dyn Module> = match cfg.method {
        PretrainMethod::Simclr => Box::new(
            nn::seq()
                .add(nn::linear(&root / "g1", features, features, Default::default()))
                .add_fn(|x| x.relu())
                .add(nn::linear(&root / "g2", features, cfg.projection, Default::default())),
        ),
        PretrainMethod::Autoencoder => Box::new(nn::linear(&root / "decoder", features, input, Default::default())),
        PretrainMethod::None => bail!("pretrain.method = \"none\": nothing to pretrain"),
    };
    let mut opt_model = nn::Adam::default().build(&model.vs, cfg.lr)?;
    let mut opt_head = nn::Adam::default().build(&aux, cfg.lr)?;
    let mut rng = SeedRng::derive(seed, 0x551);
    tch::manual_seed(seed as i64 & i64::MAX); // the auxiliary head's initialization
    let mut order: Vec<i64> = (0..n).collect();
    let mut epoch_loss = Vec::new();
    for _ in 0..cfg.epochs {
        rng.shuffle(&mut order);
        let (mut total, mut batches) = (0.0, 0);
        for ids in order.chunks(cfg.batch_size) {
            if ids.len() < 2 {
                continue;
            }
            let x = train.x.index_select(0, &Tensor::from_slice(ids).to_device(device));
            let loss = if cfg.method == PretrainMethod::Simclr {
                let v1 = augment(&x, cfg.shift, cfg.noise, &mut rng);
                let v2 = augment(&x, cfg.shift, cfg.noise, &mut rng);
                let z1 = head.forward(&model.features_t(&v1, true));
                let z2 = head.forward(&model.features_t(&v2, true));
                nt_xent(&z1, &z2, cfg.temperature)
            } else {
                let v = augment(&x, cfg.shift, cfg.noise, &mut rng);
                let reconstruction = head.forward(&model.features_t(&v, true));
                reconstruction.mse_loss(&x.flatten(1, -1), tch::Reduction::Mean)
            };
            opt_model.zero_grad();
            opt_head.zero_grad();
            loss.backward();
            opt_model.step();
            opt_head.step();
            total += loss.double_value(&[]);
            batches += 1;
        }
        epoch_loss.push(total / batches.max(1) as f64);
    }
    Ok(PretrainSummary { epoch_loss, seconds: started.elapsed().as_secs_f64() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ModelConfig, ModelKind};

    #[test]
    fn nt_xent_is_low_when_the_views_agree_and_high_when_they_do_not() {
        let z = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0, -1.0]).view([4, 2]);
        let agree = nt_xent(&z, &z, 0.1).double_value(&[]);
        let shuffled = z.index_select(0, &Tensor::from_slice(&[1i64, 2, 3, 0]));
        let disagree = nt_xent(&z, &shuffled, 0.1).double_value(&[]);
        assert!(agree < 0.01 && disagree > 5.0, "{agree} {disagree}");
    }

    #[test]
    fn augmentation_translates_within_the_bound_and_is_reproducible() {
        let x = Tensor::arange(2 * 16, (Kind::Float, Device::Cpu)).view([2, 1, 4, 4]) + 1.0;
        let a = augment(&x, 1, 0.0, &mut SeedRng::new(3));
        assert_eq!(a, augment(&x, 1, 0.0, &mut SeedRng::new(3)));
        // Every kept value comes from the same example, at most one step away.
        for e in 0..2 {
            let (orig, moved) = (
                Vec::<f32>::try_from(x.get(e).flatten(0, -1)).unwrap(),
                Vec::<f32>::try_from(a.get(e).flatten(0, -1)).unwrap(),
            );
            for (i, &v) in moved.iter().enumerate().filter(|(_, v)| **v != 0.0) {
                let j = orig.iter().position(|&o| o == v).expect("a value of the same example");
                let (di, dj) = ((i / 4) as i64 - (j / 4) as i64, (i % 4) as i64 - (j % 4) as i64);
                assert!(di.abs() <= 1 && dj.abs() <= 1);
            }
        }
        let noisy = augment(&x, 0, 0.5, &mut SeedRng::new(1));
        assert!((noisy - &x).abs().max().double_value(&[]) > 0.0);
    }

    /// The classification head's variables, by name (`variables()` is a hash map).
    fn head_of(model: &Model) -> std::collections::BTreeMap<String, Tensor> {
        model.vs.variables().into_iter().filter(|(k, _)| k.starts_with("head")).map(|(k, v)| (k, v.copy())).collect()
    }

    #[test]
    fn simclr_and_the_autoencoder_lower_their_loss_on_the_digits() {
        let splits = crate::data::load(
            &crate::manifest::DataConfig {
                source: crate::manifest::DataSource::Digits,
                limit: Some(600),
                ..Default::default()
            },
            0.0,
            1,
            std::path::Path::new("."),
        )
        .unwrap();
        let data = TensorData::new(&splits.train, Device::Cpu);
        for method in ["simclr", "autoencoder"] {
            let model = Model::new(
                &ModelConfig { kind: ModelKind::Cnn, channels: vec![8, 16], ..Default::default() },
                &splits.train.shape,
                10,
                Device::Cpu,
                1,
            )
            .unwrap();
            let head_before = head_of(&model);
            let cfg =
                PretrainConfig { method: method.parse().unwrap(), epochs: 15, batch_size: 64, ..Default::default() };
            let s = pretrain(&cfg, &model, &data, Device::Cpu, 4).unwrap();
            assert!(s.epoch_loss.last().unwrap() < &(0.9 * s.epoch_loss[0]), "{method}: {:?}", s.epoch_loss);
            let head_after = head_of(&model);
            assert_eq!(head_before, head_after, "{method}: the classification head is untouched");
        }
    }
}
