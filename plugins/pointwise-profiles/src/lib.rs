//! Deconstructing distributions: a pointwise framework of learning (Kaplun,
//! Ghosh, Garg, Barak, Nakkiran; ICLR 2023).
//!
//! A population of models θ is evaluated on every test point z. Each model
//! has a global accuracy A(θ), and each point a pointwise score a_z(θ)
//! (1[f_θ(x_z) = y_z], or the softmax probability of y_z). The point's
//! *profile* is A ↦ E[a_z | A]. Summarised by the correlation and slope of
//! a_z against A, points are *compatible* (a_z rises with A), *incompatible*
//! (a_z barely moves with A) or *negative* (a_z falls as A rises).
//!
//! - [`profiles`]: the per-point statistics, the binned profile, the
//!   taxonomy, and the NEG-subset selection with its held-out check.
//! - `pointwise-profiles.profile`: the taxonomy of a split's points.
//! - `pointwise-profiles.neg-subset`: a class-balanced subset of negative
//!   points chosen on one half of the population's training runs, and its
//!   accuracy against global accuracy on the other, held-out half.

mod metrics;
pub mod profiles;

pub use metrics::{NegSubset, Profile};

tessera_sdk::export_plugin! {
    name: "pointwise-profiles",
    metrics: [Profile, NegSubset],
}
