//! The graph a graph objective sees (CSR, lent by the host) and the seed
//! sets it chooses.

use abi_stable::{
    std_types::{RSlice, RVec},
    StableAbi,
};

use super::*;

/// A directed graph in CSR form, borrowed from the host: the out-edges of node
/// `u` are `targets[offsets[u]..offsets[u+1]]`, with `probabilities` (the
/// independent-cascade p_uv of each edge, same indexing) where the host has them.
/// The host also lends the in-edges (the reverse CSR, built once per graph
/// and shared by every variant on it): the in-neighbours of `v` are
/// `in_sources[in_offsets[v]..in_offsets[v+1]]`, with `in_probabilities`.
///
/// Where every edge into a node has the same probability (weighted cascade:
/// 1 / indeg(v); uniform: p), the host lends that one value per node as
/// `target_probabilities` instead, and `probabilities` and
/// `in_probabilities` are empty: 4n bytes instead of 8m.
/// [`GraphView::edge_probabilities`] and [`GraphView::probability`] read
/// either form.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct GraphView<'a> {
    /// Number of nodes n.
    pub nodes: u64,
    /// CSR offsets, n + 1 of them.
    pub offsets: RSlice<'a, u64>,
    /// Edge targets, m of them.
    pub targets: RSlice<'a, u32>,
    /// Edge probabilities p_uv, m of them, or empty.
    pub probabilities: RSlice<'a, f32>,
    /// Reverse CSR offsets, n + 1 of them, or empty where the host built none.
    pub in_offsets: RSlice<'a, u64>,
    /// Edge sources in reverse CSR order (by target, then source), m of them, or empty.
    pub in_sources: RSlice<'a, u32>,
    /// p_uv in reverse CSR order, m of them, or empty.
    pub in_probabilities: RSlice<'a, f32>,
    /// p_uv = `target_probabilities[v]` for every edge into v, n of them, or
    /// empty (then the per-edge `probabilities` hold the model).
    pub target_probabilities: RSlice<'a, f32>,
    /// Dimension d of the node features.
    pub feature_dim: u32,
    /// Node features x_u, n·d of them, row-major, or empty.
    pub features: RSlice<'a, f32>,
    /// Hyperparametric model: the centre θ_c of the box Θ = θ_c + [−B, B]^{2d}
    /// of edge-probability parameters (2d values; `probabilities` are p at
    /// θ_c); empty when the probabilities are fixed.
    pub theta_center: RSlice<'a, f32>,
    /// Hyperparametric model: the box radius B.
    pub theta_radius: f64,
}

impl<'a> GraphView<'a> {
    /// Number of edges m.
    pub fn edges(&self) -> u64 {
        self.targets.len() as u64
    }

    /// Out-degree of node `u`.
    pub fn out_degree(&self, u: u32) -> u64 {
        self.offsets[u as usize + 1] - self.offsets[u as usize]
    }

    /// Out-neighbours of node `u`.
    pub fn out_neighbors(&self, u: u32) -> &[u32] {
        let (a, b) = (self.offsets[u as usize] as usize, self.offsets[u as usize + 1] as usize);
        &self.targets.as_slice()[a..b]
    }

    /// Whether the host lent the in-edges (`in_offsets`, `in_sources`).
    pub fn has_in_edges(&self) -> bool {
        self.in_offsets.len() as u64 == self.nodes + 1 && self.in_sources.len() == self.targets.len()
    }

    /// In-neighbours of node `v`; panics if the host lent no in-edges.
    pub fn in_neighbors(&self, v: u32) -> &[u32] {
        let (a, b) = (self.in_offsets[v as usize] as usize, self.in_offsets[v as usize + 1] as usize);
        &self.in_sources.as_slice()[a..b]
    }

    /// Whether the host lent edge probabilities, in either form.
    pub fn has_probabilities(&self) -> bool {
        self.target_probabilities.len() as u64 == self.nodes || self.probabilities.len() == self.targets.len()
    }

    /// p_uv of out-edge `edge` (its index into `targets`); 0 where the host
    /// lent no probabilities.
    pub fn probability(&self, edge: usize) -> f32 {
        let per_target = self.target_probabilities.as_slice();
        let per_edge = self.probabilities.as_slice();
        match per_target.is_empty() {
            false => per_target[self.targets[edge] as usize],
            true => per_edge.get(edge).copied().unwrap_or(0.0),
        }
    }

    /// p_uv of every out-edge in CSR order: the lent slice, or made from
    /// `target_probabilities` (m values) where the host lent those.
    pub fn edge_probabilities(&self) -> std::borrow::Cow<'a, [f32]> {
        let per_target = self.target_probabilities.as_slice();
        if per_target.is_empty() {
            return std::borrow::Cow::Borrowed(self.probabilities.as_slice());
        }
        std::borrow::Cow::Owned(self.targets.iter().map(|&v| per_target[v as usize]).collect())
    }

    /// Whether the edge probabilities come from a hyperparametric model
    /// (then [`GraphView::probabilities_at`] gives them for any θ).
    pub fn is_hyperparametric(&self) -> bool {
        !self.theta_center.is_empty()
    }

    /// The hyperparametric edge probabilities at `theta` (2d values):
    /// p_uv = σ(θᵀ [x_u; x_v]) for every edge, in CSR order. Panics if `theta`
    /// does not have 2d values.
    pub fn probabilities_at(&self, theta: &[f32]) -> Vec<f32> {
        let d = self.feature_dim as usize;
        assert_eq!(theta.len(), 2 * d, "θ has 2d = {} values", 2 * d);
        let mut out = Vec::with_capacity(self.targets.len());
        for u in 0..self.nodes as u32 {
            let xu = self.half_score(&theta[..d], u);
            out.extend(self.out_neighbors(u).iter().map(|&v| sigmoid(xu + self.half_score(&theta[d..], v))));
        }
        out
    }

    /// θ_halfᵀ x_u, for one half (d values) of θ.
    fn half_score(&self, theta_half: &[f32], u: u32) -> f32 {
        let d = self.feature_dim as usize;
        let x = &self.features.as_slice()[u as usize * d..(u as usize + 1) * d];
        theta_half.iter().zip(x).map(|(t, x)| t * x).sum()
    }
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// A seed set with its probability in a (possibly randomized) solution.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct WeightedSeeds {
    /// Probability of playing this set; the weights of a choice sum to 1.
    pub weight: f64,
    /// The seed nodes.
    pub seeds: RVec<u32>,
}

/// A graph objective's answer: a distribution over seed sets (one set with
/// weight 1 for a deterministic method), with its report.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct SeedChoice {
    /// The seed sets and their weights.
    pub sets: RVec<WeightedSeeds>,
    /// Whatever the objective wants in results.json.
    pub report: Report,
}

impl SeedChoice {
    /// A deterministic answer: one seed set.
    pub fn single(seeds: Vec<u32>, report: Report) -> Self {
        SeedChoice { sets: vec![WeightedSeeds { weight: 1.0, seeds: seeds.into() }].into(), report }
    }
}
