//! Deep learning on a data diet (Paul, Ganguli & Dziugaite, 2021): score
//! every training example early in training, keep the hardest, and train on
//! them alone. Two scores, both from an early model:
//!
//! - EL2N: ‖p(x) − e_y‖₂, the error vector's norm (softmax output minus the
//!   one-hot label);
//! - GraNd: ‖∇θ ℓ(x, y)‖₂, the gradient norm; here of the last layer's
//!   weights and bias, the `last-layer-gradient-norms` observation (SDK 0.3).
//!
//! [`Prune`] trains on every example for `score_after` epochs, scores them
//! then, and trains the remaining epochs on the `keep` share of highest
//! score (or a random share of that size, the paper's baseline). The paper
//! scores with separate short runs (averaged over seeds) and trains a fresh
//! model on the kept set; here one run does both, the model continuing from
//! the scoring epochs.

#![deny(missing_docs)]

mod prune;

pub use prune::{Prune, Score};

tessera_sdk::export_plugin! {
    name: "data-diet",
    samplers: [Prune],
}
