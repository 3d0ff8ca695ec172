//! What a finetuner sees and asks: the model's layers, its selection, and
//! the host's oracle (query and answer).

use abi_stable::{
    std_types::{RString, RVec},
    StableAbi,
};

use super::*;

/// One weight tensor of a block (BatchNorm's running statistics are not
/// weights and are not listed).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Its full name, e.g. `layer3.1.conv1.weight`.
    pub name: RString,
    /// Number of elements.
    pub elements: u64,
}

/// One named layer (block) of a model, as a finetuner sees it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct LayerInfo {
    /// The block's name, e.g. `layer3.1`.
    pub name: RString,
    /// Number of parameters in the block.
    pub parameters: u64,
    /// Forward FLOPs of the block for one example.
    pub flops: u64,
    /// Position from the input (0 = first block).
    pub position: u32,
    /// Its weight tensors. Over the layers in position order, they are the
    /// model's tensors in the order of the `gradient-norms` and
    /// `weight-norms` observations and of [`Selection::multipliers`].
    pub tensors: RVec<TensorInfo>,
}

impl LayerInfo {
    /// A layer with no tensors listed (tests, tools).
    pub fn new(name: &str, parameters: u64, flops: u64, position: u32) -> Self {
        LayerInfo { name: name.into(), parameters, flops, position, tensors: RVec::new() }
    }

    /// Every tensor of `layers` with its layer's position, in the order of
    /// the tensor observations and of [`Selection::multipliers`].
    pub fn tensors_of(layers: &[LayerInfo]) -> impl Iterator<Item = (u32, &TensorInfo)> {
        layers.iter().flat_map(|l| l.tensors.iter().map(move |t| (l.position, t)))
    }
}

/// Which layers a finetuner chose to train, with its report.
///
/// Either a set of layers ([`Selection::layers`]: the head always trains),
/// or a learning-rate multiplier per tensor ([`Selection::multipliers`],
/// [`Selection::block_multipliers`]): tensor t trains with the learning rate
/// times m_t, and a multiplier of 0 freezes it (its weights stay bit for
/// bit as they were, the head's too).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Selection {
    /// Positions ([`LayerInfo::position`]) of the layers that train. The
    /// head (the last layer) always trains, listed or not. Ignored when
    /// `multipliers` is given.
    pub trainable: RVec<u32>,
    /// Empty, or one learning-rate multiplier per tensor (finite, at least 0)
    /// in the order of [`LayerInfo::tensors`] over the layers.
    pub multipliers: RVec<f32>,
    /// Whatever the finetuner wants in results.json (e.g. its search path).
    pub report: Report,
}

impl Selection {
    /// The layers at `trainable` train (and the head), the rest are frozen.
    pub fn layers(trainable: Vec<u32>, report: Report) -> Self {
        Selection { trainable: trainable.into(), multipliers: RVec::new(), report }
    }

    /// A learning-rate multiplier per tensor (0: frozen).
    pub fn multipliers(multipliers: Vec<f32>, report: Report) -> Self {
        Selection { trainable: RVec::new(), multipliers: multipliers.into(), report }
    }

    /// A learning-rate multiplier per layer (0: frozen), given to each of
    /// its tensors; one per layer of `layers`, in position order.
    pub fn block_multipliers(layers: &[LayerInfo], per_layer: &[f32], report: Report) -> Self {
        let per_tensor =
            layers.iter().zip(per_layer).flat_map(|(l, &m)| std::iter::repeat_n(m, l.tensors.len())).collect();
        Selection::multipliers(per_tensor, report)
    }
}

/// What a finetuner asks the host's oracle: train these layers, score them.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct OracleQuery {
    /// Positions of the layers to train; the head always trains.
    pub trainable: RVec<u32>,
    /// 1: train on the training split, score on the validation split;
    /// k > 1: k-fold cross-validation on the training split.
    pub folds: u32,
    /// Epochs each fold trains; 0: the manifest's `train.oracle_epochs`.
    pub epochs: u64,
}

impl OracleQuery {
    /// Layers `trainable`, scored on the validation split, for the
    /// manifest's `train.oracle_epochs`.
    pub fn new(trainable: &[u32]) -> Self {
        OracleQuery { trainable: trainable.to_vec().into(), folds: 1, epochs: 0 }
    }

    /// Scored by `folds`-fold cross-validation (1: the validation split).
    pub fn folds(mut self, folds: u32) -> Self {
        self.folds = folds;
        self
    }

    /// Each fold trains `epochs` epochs (0: the manifest's).
    pub fn epochs(mut self, epochs: u64) -> Self {
        self.epochs = epochs;
        self
    }
}

/// The oracle's answer to an [`OracleQuery`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Default)]
pub struct OracleAnswer {
    /// Mean held-out accuracy over the folds.
    pub accuracy: f64,
    /// Mean held-out cross-entropy over the folds.
    pub loss: f64,
    /// Each fold's held-out accuracy, in fold order.
    pub fold_accuracy: RVec<f64>,
    /// Each fold's held-out cross-entropy, in fold order.
    pub fold_loss: RVec<f64>,
    /// Epochs each fold trained.
    pub epochs: u64,
}
