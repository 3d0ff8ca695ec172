//! The body of each architecture (MLP, CNN, ResNet): its named blocks, in
//! order, before the head.

use crate::error::{bail, Result};
use tch::nn::{self, ModuleT};

use crate::manifest::{ModelConfig, ModelKind};

use super::blocks::*;
use super::Block;

/// The image shape a convolutional model sees: [C, H, W] (1-D signals become [C, 1, L]).
pub(super) fn image_shape(shape: &[usize]) -> Result<Vec<i64>> {
    Ok(match shape {
        [c, h, w] => vec![*c as i64, *h as i64, *w as i64],
        [c, l] => vec![*c as i64, 1, *l as i64],
        [l] => vec![1, 1, *l as i64],
        other => bail!("a convolutional model needs examples of shape [C, H, W], [C, L] or [L], not {other:?}"),
    })
}

/// The blocks of a network before its head: what its input looks like,
/// the blocks in order, and the width of the features the head reads.
pub(super) struct Body {
    pub(super) input_shape: Vec<i64>,
    pub(super) blocks: Vec<Block>,
    pub(super) features: i64,
}

pub(super) fn trainable(name: String, module: Box<dyn ModuleT>) -> Block {
    Block { name, module, trainable: true.into() }
}

/// `mlp`: dense blocks `layer0`, `layer1`, …; `linear`: none (the head alone,
/// multinomial logistic regression).
pub(super) fn mlp_body(config: &ModelConfig, shape: &[usize], root: &nn::Path) -> Result<Body> {
    let mut width: i64 = shape.iter().product::<usize>() as i64;
    let input_shape = vec![width];
    let hidden: &[i64] = if config.kind == ModelKind::Linear { &[] } else { &config.hidden };
    let mut blocks = Vec::new();
    for (i, &h) in hidden.iter().enumerate() {
        if h <= 0 {
            bail!("model.hidden[{i}] must be positive");
        }
        let name = format!("layer{i}");
        let dense = DenseBlock(nn::linear(root / name.as_str(), width, h, Default::default()));
        blocks.push(trainable(name, Box::new(dense)));
        width = h;
    }
    Ok(Body { input_shape, blocks, features: width })
}

/// `cnn`: 3×3 conv blocks `conv0`, `conv1`, … (BatchNorm if asked), then a
/// global average pool.
pub(super) fn cnn_body(config: &ModelConfig, shape: &[usize], root: &nn::Path) -> Result<Body> {
    let input_shape = image_shape(shape)?;
    let mut cin = input_shape[0];
    let mut blocks = Vec::new();
    for (i, &c) in config.channels.iter().enumerate() {
        if c <= 0 {
            bail!("model.channels[{i}] must be positive");
        }
        let name = format!("conv{i}");
        let p = root / name.as_str();
        let conv = nn::conv2d(&p / "conv", cin, c, 3, nn::ConvConfig { padding: 1, ..Default::default() });
        let bn = config.batch_norm.then(|| nn::batch_norm2d(&p / "bn", c, Default::default()));
        blocks.push(trainable(name, Box::new(ConvBlock { conv, bn })));
        cin = c;
    }
    blocks.push(trainable("pool".into(), Box::new(GlobalPool)));
    Ok(Body { input_shape, blocks, features: cin })
}

/// `resnet`: a stem, `stages` stages of `depth` basic blocks each
/// (`layer1.0` …, channels doubling and stride 2 from the second stage),
/// then a global average pool.
pub(super) fn resnet_body(config: &ModelConfig, shape: &[usize], root: &nn::Path) -> Result<Body> {
    let input_shape = image_shape(shape)?;
    if config.width <= 0 || config.depth == 0 || config.stages == 0 {
        bail!("model.width, model.depth and model.stages must be positive");
    }
    let p = root / "stem";
    let stem_config = nn::ConvConfig { padding: 1, bias: false, ..Default::default() };
    let stem = nn::conv2d(&p / "conv", input_shape[0], config.width, 3, stem_config);
    let stem_bn = nn::batch_norm2d(&p / "bn", config.width, Default::default());
    let mut blocks = vec![trainable("stem".into(), Box::new(nn::seq_t().add(stem).add(stem_bn).add_fn(|x| x.relu())))];
    let mut cin = config.width;
    for stage in 0..config.stages {
        let cout = config.width << stage;
        for b in 0..config.depth {
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            let block = BasicBlock::new(root / format!("layer{}", stage + 1) / b.to_string(), cin, cout, stride);
            blocks.push(trainable(format!("layer{}.{b}", stage + 1), Box::new(block)));
            cin = cout;
        }
    }
    blocks.push(trainable("pool".into(), Box::new(GlobalPool)));
    Ok(Body { input_shape, blocks, features: cin })
}
