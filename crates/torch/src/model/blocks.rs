//! The modules models are made of: a ResNet basic block, a convolution
//! block, a dense block and global pooling.

use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// A ResNet basic block: conv-bn-relu-conv-bn plus the (projected) input.
#[derive(Debug)]
pub(super) struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    pub(super) shortcut: Option<(nn::Conv2D, nn::BatchNorm)>,
}

impl BasicBlock {
    pub(super) fn new(p: nn::Path, cin: i64, cout: i64, stride: i64) -> Self {
        let conv = |p: nn::Path, i, o, k, s, pad| {
            nn::conv2d(p, i, o, k, nn::ConvConfig { stride: s, padding: pad, bias: false, ..Default::default() })
        };
        BasicBlock {
            conv1: conv(&p / "conv1", cin, cout, 3, stride, 1),
            bn1: nn::batch_norm2d(&p / "bn1", cout, Default::default()),
            conv2: conv(&p / "conv2", cout, cout, 3, 1, 1),
            bn2: nn::batch_norm2d(&p / "bn2", cout, Default::default()),
            shortcut: (stride != 1 || cin != cout).then(|| {
                (conv(&p / "proj", cin, cout, 1, stride, 0), nn::batch_norm2d(&p / "proj_bn", cout, Default::default()))
            }),
        }
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = x.apply(&self.conv1).apply_t(&self.bn1, train).relu().apply(&self.conv2).apply_t(&self.bn2, train);
        let skip = match &self.shortcut {
            Some((conv, bn)) => x.apply(conv).apply_t(bn, train),
            None => x.shallow_clone(),
        };
        (y + skip).relu()
    }
}

/// A CNN block: conv3×3, optional BatchNorm, ReLU, 2×2 max-pool where the map allows.
#[derive(Debug)]
pub(super) struct ConvBlock {
    pub(super) conv: nn::Conv2D,
    pub(super) bn: Option<nn::BatchNorm>,
}

impl ModuleT for ConvBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = x.apply(&self.conv);
        if let Some(bn) = &self.bn {
            y = y.apply_t(bn, train);
        }
        let y = y.relu();
        let (h, w) = (y.size()[2], y.size()[3]);
        y.max_pool2d([h.min(2), w.min(2)], [h.min(2), w.min(2)], [0, 0], [1, 1], false)
    }
}

/// A dense layer with ReLU.
#[derive(Debug)]
pub(super) struct DenseBlock(pub(super) nn::Linear);

impl ModuleT for DenseBlock {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        x.flatten(1, -1).apply(&self.0).relu()
    }
}

/// Global average pooling to a feature vector (no parameters).
#[derive(Debug)]
pub(super) struct GlobalPool;

impl ModuleT for GlobalPool {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        if x.dim() == 4 {
            x.mean_dim([2i64, 3].as_slice(), false, Kind::Float)
        } else {
            x.flatten(1, -1)
        }
    }
}
