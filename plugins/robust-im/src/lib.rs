//! Robust influence maximization for hyperparametric independent-cascade
//! models (Kalimeris, Kaplun, Singer, ICML 2019), on a multi-threaded
//! reverse-reachable-set engine.
//!
//! Edge probabilities are p_uv = σ(θᵀ[x_u; x_v]) for node features x and a θ
//! known only to lie in a box Θ = θ_c + [−B, B]^{2d}. The robust objective
//! is max_{|S| ≤ k} min_{θ ∈ Θ} f_θ(S).
//!
//! - [`rr`]: RR sets, sampled in parallel (rayon), stored flat;
//!   `lanes` steps several batches per thread to hide memory latency.
//! - [`coverage`]: lazy greedy (weighted) maximum coverage.
//! - [`opim`]: OPIM-C's stopping rule with IMM's worst-case sample size.
//! - [`hiro`]: the multiplicative-weights game.
//! - components `robust-im.greedy`, `robust-im.lugreedy`, `robust-im.hiro`
//!   (top degree and random seeds are `baselines.degree`, `baselines.random`).

pub mod coverage;
#[cfg(test)]
mod exact;
pub mod hiro;
mod lanes;
mod objectives;
pub mod opim;
pub mod rr;

pub use objectives::{Greedy, Hiro, LuGreedy};

tessera_sdk::export_plugin! {
    name: "robust-im",
    graph_objectives: [Greedy, LuGreedy, Hiro],
}
