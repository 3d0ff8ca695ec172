//! What a finetuner sees and asks: the model's layers, its selection, and
//! the host's oracle (query and answer).

use abi_stable::{
    std_types::{RString, RVec},
    StableAbi,
};

use super::*;

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
}

/// Which layers a finetuner chose to train, with its report.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Selection {
    /// Positions ([`LayerInfo::position`]) of the layers that train. The
    /// head (the last layer) always trains, listed or not.
    pub trainable: RVec<u32>,
    /// Whatever the finetuner wants in results.json (e.g. its search path).
    pub report: Report,
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
