//! SGD on neural networks learns functions of increasing complexity
//! (Nakkiran, Kaplun, Kalimeris, Yang, Edelman, Zhang, Barak; NeurIPS 2019).
//! The performance correlation
//!
//! μ_Y(F; L) = I(F; Y) − I(F; Y | L)
//!
//! measures how much of network F's performance on labels Y a simpler
//! classifier L explains. Early in SGD training μ_Y(F_t; L) ≈ I(F_t; Y): the
//! network learns what the linear classifier learns. Later μ_Y plateaus near
//! I(L; Y) while I(F_t; Y | L), what F knows beyond L, keeps growing.
//!
//! - [`information`]: plug-in estimates, in bits, from hard predictions.
//! - `increasing-complexity.performance-correlation`: the metric over
//!   checkpoints, with L the host's `[reference]` classifier or one of F's
//!   own earlier checkpoints.

pub mod information;
mod metric;

pub use information::{Information, JointCounts};
pub use metric::PerformanceCorrelation;

tessera_sdk::export_plugin! {
    name: "increasing-complexity",
    metrics: [PerformanceCorrelation],
}
