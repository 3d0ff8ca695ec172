//! The effect of SGD noise in online learning (Vyas, Morwani, Zhao, Kaplun,
//! Kakade, Barak; ICML 2024).
//!
//! SGD noise is varied through the batch size (with its learning rate).
//! Online — one pass over fresh data — less noise is never worse per step,
//! and models reaching the same held-out loss are functionally close: their
//! distance is near the noise floor of two seeds with the same batch size (a
//! "golden path"). Offline — many epochs over a fixed set — small batches
//! generalize better.
//!
//! - [`distance`]: d_TV between softmax outputs, and matching checkpoints of
//!   a run to a held-out loss level by interpolating between neighbours.
//! - `sgd-noise.functional-distance`: mean d_TV between settings (same seed)
//!   at equal loss, against the noise floor (same setting, other seeds).
//! - `sgd-noise.loss-curves`: held-out loss and accuracy per setting against
//!   examples seen and steps, and whether the larger batch is never worse per
//!   step.
//!
//! Both run in population experiments whose `[population]` lists the
//! settings (batch sizes and learning rates), takes `every_checkpoint` and
//! keeps `probabilities`.

pub mod distance;
mod metrics;

pub use metrics::{FunctionalDistance, LossCurves};

tessera_sdk::export_plugin! {
    name: "sgd-noise",
    metrics: [FunctionalDistance, LossCurves],
}
