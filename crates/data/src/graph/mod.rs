//! Directed graphs in CSR form with node features, seeded generators, edge
//! list readers, independent-cascade probability models and Monte Carlo
//! spread estimates.

pub mod column;
pub mod csr_cache;
pub mod generators;
mod parse;
pub mod readers;

use crate::error::{bail, Result};
use tessera_sdk::{GraphView, SeedRng};

use crate::choice::{GraphGenerator, ProbabilityModel};
pub use column::Column;
pub use generators::{barabasi_albert, erdos_renyi, rmat, watts_strogatz};
pub use readers::{read_edge_list, write_snap, EdgeListFormat, GraphCache};

/// The graph `config` describes: generated (seeded by `seed`) or read from
/// its file (relative to `base`), with features and edge probabilities.
pub fn build(config: &crate::manifest::GraphConfig, seed: u64, base: &std::path::Path) -> Result<Graph> {
    let c = config;
    let mut graph = match c.generator {
        GraphGenerator::ErdosRenyi => erdos_renyi(c.nodes, c.edges, seed)?,
        GraphGenerator::BarabasiAlbert => barabasi_albert(c.nodes, c.attach, c.direction, seed)?,
        GraphGenerator::WattsStrogatz => watts_strogatz(c.nodes, c.neighbors, c.rewire, c.direction, seed)?,
        GraphGenerator::Rmat => rmat(c.nodes, c.edges, (c.rmat[0], c.rmat[1], c.rmat[2]), seed)?,
        GraphGenerator::File => {
            let path =
                c.path.as_ref().ok_or_else(|| crate::error::invalid!("graph.generator = \"file\" needs graph.path"))?;
            read_edge_list(&base.join(path), c.format, c.undirected, c.cache)?
        }
    };
    if c.feature_dim > 0 {
        if c.feature_range[0].partial_cmp(&c.feature_range[1]) == Some(std::cmp::Ordering::Greater)
            || c.feature_range.iter().any(|x| !x.is_finite())
        {
            bail!("graph.feature_range must be [lo, hi] with lo <= hi");
        }
        graph.set_uniform_features(c.feature_dim, c.feature_range, seed);
        if c.constant_feature {
            graph.features.iter_mut().step_by(c.feature_dim as usize).for_each(|x| *x = 1.0);
        }
    }
    match c.probability_model {
        ProbabilityModel::Uniform => graph.set_uniform(c.probability),
        ProbabilityModel::WeightedCascade => graph.set_weighted_cascade(),
        ProbabilityModel::Trivalency => graph.set_trivalency(seed),
        ProbabilityModel::Hyperparametric => {
            let theta = if c.theta.is_empty() {
                let mut rng = SeedRng::derive(seed, 0x7E7C);
                (0..2 * c.feature_dim).map(|_| (2.0 * rng.next_f64() - 1.0) as f32).collect()
            } else {
                c.theta.clone()
            };
            graph.set_hyperparametric(theta, c.radius)?;
        }
        ProbabilityModel::File => {
            if c.generator != GraphGenerator::File || graph.probabilities.iter().all(|&p| p == 0.0) {
                // (An edge list without weights has no per-edge probabilities at all.)
                bail!("graph.probability_model = \"file\" needs an edge list with a weight column (u v w)");
            }
        }
    }
    graph.index_in_edges();
    Ok(graph)
}

/// A directed graph: the out-edges of `u` are `targets[offsets[u]..offsets[u+1]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// CSR offsets, n + 1 (read in place from the cache file where the
    /// graph came from one).
    pub offsets: Column<u64>,
    /// Edge targets, m (likewise).
    pub targets: Column<u32>,
    /// Independent-cascade probability p_uv per edge, m, or none where
    /// `target_probabilities` hold the model (or no model is set yet).
    pub probabilities: Vec<f32>,
    /// p_uv = `target_probabilities[v]` for every edge into v, n, where the
    /// model gives every edge into a node the same probability (weighted
    /// cascade, uniform): 4n bytes where per-edge values in both orders take 8m.
    pub target_probabilities: Vec<f32>,
    /// Dimension d of the node features (0: none).
    pub feature_dim: u32,
    /// Node features x_u, n·d, row-major.
    pub features: Vec<f32>,
    /// Hyperparametric model: θ_c (2d values), or empty for fixed probabilities.
    pub theta_center: Vec<f32>,
    /// Hyperparametric model: the box radius B.
    pub theta_radius: f64,
    /// Lines of an edge list that were not taken as edges.
    pub dropped: DroppedEdges,
    /// The in-edges, indexed once the probabilities are final (see
    /// [`Graph::index_in_edges`]); empty until then.
    pub in_edges: InEdges,
}

/// The reverse CSR: the in-neighbours of `v` are
/// `sources[offsets[v]..offsets[v+1]]`, in increasing order, each with its p_uv.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InEdges {
    /// n + 1 offsets, or none before indexing.
    pub offsets: Vec<u64>,
    /// Edge sources, m.
    pub sources: Vec<u32>,
    /// p_uv of each in-edge, m.
    pub probabilities: Vec<f32>,
}

/// Lines of an edge list that were not taken as edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DroppedEdges {
    /// Edges from a node to itself.
    pub self_loops: u64,
    /// Repeats of an edge already read.
    pub duplicates: u64,
}

impl Graph {
    /// Builds the CSR form of `edges` (u, v) over `n` nodes.
    pub fn from_edges(n: u32, edges: &[(u32, u32)]) -> Result<Graph> {
        let mut degree = vec![0u64; n as usize + 1];
        for &(u, v) in edges {
            if u >= n || v >= n {
                bail!("edge ({u}, {v}) names a node outside 0..{n}");
            }
            degree[u as usize + 1] += 1;
        }
        for i in 1..degree.len() {
            degree[i] += degree[i - 1];
        }
        let offsets = degree.clone();
        let mut next = degree;
        let mut targets = vec![0u32; edges.len()];
        for &(u, v) in edges {
            targets[next[u as usize] as usize] = v;
            next[u as usize] += 1;
        }
        for u in 0..n as usize {
            targets[offsets[u] as usize..offsets[u + 1] as usize].sort_unstable();
        }
        Ok(Graph::from_csr(offsets, targets))
    }

    /// A graph of these CSR `offsets` and `targets`, with no probabilities
    /// (every p_uv reads 0), features or model.
    pub fn from_csr(offsets: impl Into<Column<u64>>, targets: impl Into<Column<u32>>) -> Graph {
        Graph {
            probabilities: vec![],
            target_probabilities: vec![],
            offsets: offsets.into(),
            targets: targets.into(),
            feature_dim: 0,
            features: vec![],
            theta_center: vec![],
            theta_radius: 0.0,
            dropped: DroppedEdges::default(),
            in_edges: InEdges::default(),
        }
    }

    /// Builds the CSR form of edges packed as `u << 32 | v`, sorted, without
    /// repeats, all below `n` (no (u, v) list in between: the generator's
    /// array is the only copy).
    pub fn from_sorted_packed(n: u32, packed: Vec<u64>) -> Graph {
        let mut offsets = vec![0u64; n as usize + 1];
        for &e in &packed {
            offsets[(e >> 32) as usize + 1] += 1;
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let targets: Vec<u32> = packed.iter().map(|&e| e as u32).collect();
        drop(packed);
        Graph::from_csr(offsets, targets)
    }

    /// Indexes the in-edges with the current probabilities (plugins get them
    /// in their view; call again if the probabilities change).
    pub fn index_in_edges(&mut self) {
        let offsets = self.in_offsets();
        let sources = self.scatter(&offsets, |u, _| u as u32);
        let probabilities = match self.probabilities.is_empty() {
            true => vec![],
            false => self.scatter(&offsets, |_, e| self.probabilities[e]),
        };
        self.in_edges = InEdges { offsets, sources, probabilities };
    }

    /// `probabilities` (CSR order) in reverse CSR order; needs the in-edges indexed.
    pub fn in_order(&self, probabilities: &[f32]) -> Vec<f32> {
        self.scatter(&self.in_edges.offsets, |_, e| probabilities[e])
    }

    /// The transposed graph (in-edges become out-edges), probabilities kept
    /// with their edges; features and model are shared.
    pub fn reverse(&self) -> Graph {
        let offsets = self.in_offsets();
        let targets = self.scatter(&offsets, |u, _| u as u32);
        let p = self.probabilities();
        let probabilities = self.scatter(&offsets, |_, e| p.get(e, self.targets[e]));
        let (target_probabilities, in_edges) = (vec![], InEdges::default());
        Graph {
            offsets: offsets.into(),
            targets: targets.into(),
            probabilities,
            target_probabilities,
            in_edges,
            ..self.clone()
        }
    }

    /// The reverse CSR's offsets (in-degree prefix sums).
    fn in_offsets(&self) -> Vec<u64> {
        let n = self.nodes() as usize;
        let mut offsets = vec![0u64; n + 1];
        for &v in &self.targets {
            offsets[v as usize + 1] += 1;
        }
        for i in 1..=n {
            offsets[i] += offsets[i - 1];
        }
        offsets
    }

    /// One value per edge, `value(u, e)` for edge e out of u, placed in
    /// reverse CSR order (`in_offsets`).
    fn scatter<T: Copy + Default>(&self, in_offsets: &[u64], value: impl Fn(usize, usize) -> T) -> Vec<T> {
        let mut next = in_offsets.to_vec();
        let mut out = vec![T::default(); self.targets.len()];
        for u in 0..self.nodes() as usize {
            for e in self.offsets[u] as usize..self.offsets[u + 1] as usize {
                let v = self.targets[e] as usize;
                out[next[v] as usize] = value(u, e);
                next[v] += 1;
            }
        }
        out
    }

    /// In-degree of every node.
    pub fn in_degrees(&self) -> Vec<u32> {
        let mut indeg = vec![0u32; self.nodes() as usize];
        for &v in &self.targets {
            indeg[v as usize] += 1;
        }
        indeg
    }

    /// Gives every node d features drawn from U[lo, hi] (seeded).
    pub fn set_uniform_features(&mut self, d: u32, [lo, hi]: [f32; 2], seed: u64) {
        let mut rng = SeedRng::derive(seed, 0xFEA7);
        self.feature_dim = d;
        let n = self.nodes() as usize * d as usize;
        self.features = (0..n).map(|_| lo + (hi - lo) * rng.next_f64() as f32).collect();
    }

    /// Trivalency: each p_uv drawn uniformly from {0.1, 0.01, 0.001} (seeded).
    pub fn set_trivalency(&mut self, seed: u64) {
        let mut rng = SeedRng::derive(seed, 0x7217);
        self.probabilities = (0..self.edges()).map(|_| [0.1, 0.01, 0.001][rng.below(3) as usize]).collect();
        self.target_probabilities = vec![];
    }

    /// The hyperparametric model: p_uv = σ(θᵀ [x_u; x_v]) at θ = `center`,
    /// with the uncertainty box θ_c + [−`radius`, `radius`]^{2d}.
    pub fn set_hyperparametric(&mut self, center: Vec<f32>, radius: f64) -> Result<()> {
        if self.feature_dim == 0 {
            bail!("the hyperparametric model needs node features (graph.feature_dim >= 1)");
        }
        if center.len() != 2 * self.feature_dim as usize {
            bail!("θ_c has {} values; the model needs 2d = {}", center.len(), 2 * self.feature_dim);
        }
        if radius.is_nan() || radius < 0.0 {
            bail!("the box radius B must be at least 0 (got {radius})");
        }
        self.theta_center = center;
        self.theta_radius = radius;
        self.target_probabilities = vec![];
        self.probabilities = self.view().probabilities_at(&self.theta_center);
        Ok(())
    }

    /// Number of nodes n.
    pub fn nodes(&self) -> u32 {
        (self.offsets.len() - 1) as u32
    }

    /// Number of edges m.
    pub fn edges(&self) -> u64 {
        self.targets.len() as u64
    }

    /// Sets every p_uv to `p` (one value per target node).
    pub fn set_uniform(&mut self, p: f32) {
        self.set_per_target(vec![p; self.nodes() as usize]);
    }

    /// Weighted cascade: p_uv = 1 / indeg(v) (one value per target node).
    pub fn set_weighted_cascade(&mut self) {
        let per_target = self.in_degrees().iter().map(|&d| if d == 0 { 0.0 } else { 1.0 / d as f32 }).collect();
        self.set_per_target(per_target);
    }

    fn set_per_target(&mut self, per_target: Vec<f32>) {
        self.probabilities = vec![];
        self.in_edges.probabilities = vec![];
        self.target_probabilities = per_target;
    }

    /// The edge probabilities as stored.
    pub fn probabilities(&self) -> EdgeProbabilities<'_> {
        match self.target_probabilities.is_empty() {
            true => EdgeProbabilities::PerEdge(&self.probabilities),
            false => EdgeProbabilities::PerTarget(&self.target_probabilities),
        }
    }

    /// p_uv of every edge in CSR order, made from the per-target values
    /// where the model has those.
    pub fn edge_probabilities(&self) -> std::borrow::Cow<'_, [f32]> {
        self.view().edge_probabilities()
    }

    /// The borrowed view plugins receive.
    pub fn view(&self) -> GraphView<'_> {
        let view = self.view_with(&self.probabilities, &self.in_edges.probabilities);
        GraphView { target_probabilities: self.target_probabilities.as_slice().into(), ..view }
    }

    /// The view with other edge probabilities, fixed ones (no hyperparametric
    /// box): `probabilities` in CSR order, `in_probabilities` the same in
    /// reverse CSR order.
    pub fn fixed_view<'a>(&'a self, probabilities: &'a [f32], in_probabilities: &'a [f32]) -> GraphView<'a> {
        GraphView { theta_center: (&[][..]).into(), ..self.view_with(probabilities, in_probabilities) }
    }

    fn view_with<'a>(&'a self, probabilities: &'a [f32], in_probabilities: &'a [f32]) -> GraphView<'a> {
        GraphView {
            nodes: self.nodes() as u64,
            offsets: self.offsets.as_slice().into(),
            targets: self.targets.as_slice().into(),
            probabilities: probabilities.into(),
            in_offsets: self.in_edges.offsets.as_slice().into(),
            in_sources: self.in_edges.sources.as_slice().into(),
            in_probabilities: in_probabilities.into(),
            target_probabilities: (&[][..]).into(),
            feature_dim: self.feature_dim,
            features: self.features.as_slice().into(),
            theta_center: self.theta_center.as_slice().into(),
            theta_radius: self.theta_radius,
        }
    }
}

/// Edge probabilities p_uv as a graph stores them.
#[derive(Debug, Clone, Copy)]
pub enum EdgeProbabilities<'a> {
    /// One per edge, in CSR order (none: every p_uv is 0).
    PerEdge(&'a [f32]),
    /// One per target node v, shared by every edge into it.
    PerTarget(&'a [f32]),
}

impl EdgeProbabilities<'_> {
    /// p of edge `edge` (its CSR index), which points to `target`.
    #[inline]
    pub fn get(&self, edge: usize, target: u32) -> f32 {
        match self {
            EdgeProbabilities::PerEdge(p) => p.get(edge).copied().unwrap_or(0.0),
            EdgeProbabilities::PerTarget(q) => q[target as usize],
        }
    }
}

/// A spread estimate with its 95% confidence half-width.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SpreadEstimate {
    /// Mean number of activated nodes, seeds included.
    pub mean: f64,
    /// Half-width of the normal-approximation 95% interval.
    pub ci95: f64,
}

/// The expected independent-cascade spread of `seeds`, by `simulations`
/// forward simulations under the graph's probabilities.
pub fn spread(graph: &Graph, seeds: &[u32], simulations: u32, seed: u64) -> SpreadEstimate {
    spread_with(graph, graph.probabilities(), seeds, simulations, seed)
}

/// The expected spread E_S[σ(S)] of a distribution over seed sets
/// (`(weight, seeds)` pairs) under `probabilities`, each set by `simulations`
/// Monte Carlo runs; the interval combines the sets' intervals.
pub fn expected_spread<'a>(
    graph: &Graph,
    probabilities: EdgeProbabilities,
    sets: impl IntoIterator<Item = (f64, &'a [u32])>,
    simulations: u32,
    seed: u64,
) -> SpreadEstimate {
    let (mut mean, mut variance) = (0.0, 0.0);
    for (weight, seeds) in sets {
        let e = spread_with(graph, probabilities, seeds, simulations, seed);
        mean += weight * e.mean;
        variance += (weight * e.ci95).powi(2);
    }
    SpreadEstimate { mean, ci95: variance.sqrt() }
}

/// Simulations per independent random stream: the estimate does not depend
/// on how many threads run them.
const SIMULATIONS_PER_STREAM: u32 = 64;

/// [`spread`] under the edge probabilities `probabilities`, run on all cores
/// (rayon); simulation batches draw from their own seeded streams.
pub fn spread_with(
    graph: &Graph,
    probabilities: EdgeProbabilities,
    seeds: &[u32],
    simulations: u32,
    seed: u64,
) -> SpreadEstimate {
    use rayon::prelude::*;
    let n = graph.nodes() as usize;
    let streams = simulations.div_ceil(SIMULATIONS_PER_STREAM);
    // Per worker: the activation marks, reused across its streams.
    let totals: Vec<(f64, f64)> = (0..streams)
        .into_par_iter()
        .map_init(
            || Cascades { active: vec![u32::MAX; n], frontier: Vec::new(), mark: 0 },
            |cascades, stream| {
                let mut rng = SeedRng::derive(seed, 0x5E7D_0000 + stream as u64);
                let runs = SIMULATIONS_PER_STREAM.min(simulations - stream * SIMULATIONS_PER_STREAM);
                (0..runs).fold((0.0, 0.0), |(sum, sum_sq), _| {
                    let count = cascades.run(graph, probabilities, seeds, &mut rng) as f64;
                    (sum + count, sum_sq + count * count)
                })
            },
        )
        .collect();
    // Add up in stream order (rayon keeps it): the same figures whatever the thread count.
    let (sum, sum_sq) = totals.iter().fold((0.0, 0.0), |(a, b), t| (a + t.0, b + t.1));
    let k = simulations.max(1) as f64;
    let mean = sum / k;
    let var = (sum_sq / k - mean * mean).max(0.0) * k / (k - 1.0).max(1.0);
    SpreadEstimate { mean, ci95: 1.96 * (var / k).sqrt() }
}

/// One worker's scratch for independent-cascade simulations.
struct Cascades {
    /// `mark` where a node is active in the current cascade.
    active: Vec<u32>,
    frontier: Vec<u32>,
    mark: u32,
}

impl Cascades {
    /// Runs one cascade from `seeds`; the number of nodes it activates.
    fn run(&mut self, graph: &Graph, probabilities: EdgeProbabilities, seeds: &[u32], rng: &mut SeedRng) -> u64 {
        let (active, mark) = (&mut self.active, self.mark);
        self.frontier.clear();
        let mut count = 0u64;
        for &s in seeds {
            if (s as usize) < active.len() && active[s as usize] != mark {
                active[s as usize] = mark;
                self.frontier.push(s);
                count += 1;
            }
        }
        while let Some(u) = self.frontier.pop() {
            let (a, b) = (graph.offsets[u as usize] as usize, graph.offsets[u as usize + 1] as usize);
            for (e, &v) in (a..b).zip(&graph.targets[a..b]) {
                if active[v as usize] != mark && rng.next_f64() < probabilities.get(e, v) as f64 {
                    active[v as usize] = mark;
                    self.frontier.push(v);
                    count += 1;
                }
            }
        }
        self.mark = self.mark.wrapping_add(1);
        if self.mark == u32::MAX {
            self.active.iter_mut().for_each(|a| *a = u32::MAX);
            self.mark = 0;
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_matches_edges() {
        let g = Graph::from_edges(3, &[(0, 2), (0, 1), (2, 0)]).unwrap();
        assert_eq!(g.offsets, vec![0, 2, 2, 3]);
        assert_eq!(g.targets, vec![1, 2, 0]);
        assert!(Graph::from_edges(2, &[(0, 5)]).is_err());
    }

    #[test]
    fn spread_on_a_path_is_exact_for_p_one_and_estimated_for_p_half() {
        let mut g = Graph::from_edges(3, &[(0, 1), (1, 2)]).unwrap();
        g.set_uniform(1.0);
        assert_eq!(spread(&g, &[0], 10, 0).mean, 3.0);
        g.set_uniform(0.5);
        // E = 1 + 0.5 + 0.25.
        let e = spread(&g, &[0], 20_000, 0);
        assert!((e.mean - 1.75).abs() < 3.0 * e.ci95.max(0.01), "{e:?}");
        assert_eq!(e, spread(&g, &[0], 20_000, 0), "reproducible");
    }

    #[test]
    fn monte_carlo_matches_exact_enumeration_on_a_tiny_graph() {
        // A diamond 0 -> {1, 2} -> 3: σ({0}) = 1 + p01 + p02 + P(3 reached).
        let mut g = Graph::from_edges(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]).unwrap();
        g.probabilities = vec![0.5, 0.4, 0.3, 0.6];
        let reach3 = 1.0 - (1.0 - 0.5 * 0.3) * (1.0 - 0.4 * 0.6);
        let exact = 1.0 + 0.5 + 0.4 + reach3;
        let e = spread(&g, &[0], 100_000, 3);
        assert!((e.mean - exact).abs() < 3.0 * e.ci95, "{e:?} vs exact {exact}");
    }

    #[test]
    fn the_reverse_graph_carries_probabilities_and_models_set_them() {
        let mut g = Graph::from_edges(3, &[(0, 1), (0, 2), (1, 2)]).unwrap();
        g.set_weighted_cascade();
        assert_eq!(g.edge_probabilities().as_ref(), &[1.0, 0.5, 0.5]);
        assert!(g.probabilities.is_empty(), "one value per target node, not per edge");
        let r = g.reverse();
        assert_eq!(
            (r.offsets.to_vec(), r.targets.to_vec(), r.probabilities.clone()),
            (vec![0, 0, 1, 3], vec![0, 0, 1], vec![1.0, 0.5, 0.5])
        );
        g.set_trivalency(3);
        assert!(g.probabilities.iter().all(|p| [0.1f32, 0.01, 0.001].contains(p)));
        assert!(g.set_hyperparametric(vec![0.0; 2], 1.0).is_err(), "needs features");
        g.set_uniform_features(2, [-1.0, 1.0], 5);
        assert!(g.features.iter().all(|x| (-1.0..=1.0).contains(x)));
        g.set_hyperparametric(vec![0.0; 4], 1.0).unwrap();
        assert!(g.probabilities.iter().all(|&p| p == 0.5), "σ(0) = 1/2");
        let theta = [1.0, -2.0, 0.5, 3.0];
        let p = g.view().probabilities_at(&theta);
        let x = |u: usize| &g.features[2 * u..2 * u + 2];
        let z = theta[0] * x(1)[0] + theta[1] * x(1)[1] + theta[2] * x(2)[0] + theta[3] * x(2)[1];
        assert!((p[2] - 1.0 / (1.0 + (-z).exp())).abs() < 1e-6, "edge (1, 2)");
    }
}
