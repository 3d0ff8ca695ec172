//! Populations of models (`[population]`): many training runs — architectures
//! × widths × seeds — each observed after several training lengths, and every
//! member evaluated on every point of the chosen splits. The result is a
//! prediction matrix per split (members × points: correctness and the
//! probability of the true label), saved as `.npy` so that it can be studied
//! again without retraining (`population.load`).

mod plan;
pub use plan::*;

#[cfg(feature = "torch")]
mod members;
#[cfg(feature = "torch")]
pub use members::*;
