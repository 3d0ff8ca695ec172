//! Directed graphs in CSR form, a seeded generator, independent-cascade
//! probabilities and Monte Carlo spread estimates.

use anyhow::{bail, Result};
use tessera_sdk::{GraphView, SeedRng};

/// A directed graph: the out-edges of `u` are `targets[offsets[u]..offsets[u+1]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// CSR offsets, n + 1.
    pub offsets: Vec<u64>,
    /// Edge targets, m.
    pub targets: Vec<u32>,
    /// Independent-cascade probability p_uv per edge, m.
    pub probabilities: Vec<f32>,
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
        Ok(Graph { offsets, targets, probabilities: vec![0.0; edges.len()] })
    }

    /// Number of nodes n.
    pub fn nodes(&self) -> u32 {
        (self.offsets.len() - 1) as u32
    }

    /// Number of edges m.
    pub fn edges(&self) -> u64 {
        self.targets.len() as u64
    }

    /// Sets every p_uv to `p`.
    pub fn set_uniform(&mut self, p: f32) {
        self.probabilities.iter_mut().for_each(|q| *q = p);
    }

    /// Weighted cascade: p_uv = 1 / indeg(v).
    pub fn set_weighted_cascade(&mut self) {
        let mut indeg = vec![0u32; self.nodes() as usize];
        for &v in &self.targets {
            indeg[v as usize] += 1;
        }
        for (p, &v) in self.probabilities.iter_mut().zip(&self.targets) {
            *p = 1.0 / indeg[v as usize] as f32;
        }
    }

    /// The borrowed view plugins receive.
    pub fn view(&self) -> GraphView<'_> {
        GraphView {
            nodes: self.nodes() as u64,
            offsets: self.offsets.as_slice().into(),
            targets: self.targets.as_slice().into(),
            probabilities: self.probabilities.as_slice().into(),
            feature_dim: 0,
            features: (&[][..]).into(),
        }
    }
}

/// Erdős–Rényi G(n, m): m distinct directed edges without self-loops, uniformly.
pub fn erdos_renyi(n: u32, m: u64, seed: u64) -> Result<Graph> {
    let possible = n as u64 * (n as u64).saturating_sub(1);
    if m > possible {
        bail!("G(n={n}, m={m}): at most {possible} directed edges fit");
    }
    let mut rng = SeedRng::derive(seed, 0x6EA9);
    let mut seen = std::collections::HashSet::with_capacity(m as usize);
    let mut edges = Vec::with_capacity(m as usize);
    while (edges.len() as u64) < m {
        let u = rng.below(n as u64) as u32;
        let v = rng.below(n as u64) as u32;
        if u != v && seen.insert((u, v)) {
            edges.push((u, v));
        }
    }
    Graph::from_edges(n, &edges)
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
/// forward simulations.
pub fn spread(graph: &Graph, seeds: &[u32], simulations: u32, seed: u64) -> SpreadEstimate {
    let n = graph.nodes() as usize;
    let mut rng = SeedRng::derive(seed, 0x5E7D);
    let mut active = vec![u32::MAX; n];
    let mut frontier = Vec::new();
    let (mut sum, mut sum_sq) = (0.0, 0.0);
    for sim in 0..simulations {
        frontier.clear();
        let mut count = 0u64;
        for &s in seeds {
            if (s as usize) < n && active[s as usize] != sim {
                active[s as usize] = sim;
                frontier.push(s);
                count += 1;
            }
        }
        while let Some(u) = frontier.pop() {
            let (a, b) = (graph.offsets[u as usize] as usize, graph.offsets[u as usize + 1] as usize);
            for e in a..b {
                let v = graph.targets[e] as usize;
                if active[v] != sim && rng.next_f64() < graph.probabilities[e] as f64 {
                    active[v] = sim;
                    frontier.push(v as u32);
                    count += 1;
                }
            }
        }
        sum += count as f64;
        sum_sq += (count * count) as f64;
    }
    let k = simulations.max(1) as f64;
    let mean = sum / k;
    let var = (sum_sq / k - mean * mean).max(0.0) * k / (k - 1.0).max(1.0);
    SpreadEstimate { mean, ci95: 1.96 * (var / k).sqrt() }
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
    fn erdos_renyi_has_m_distinct_edges() {
        let g = erdos_renyi(50, 300, 1).unwrap();
        assert_eq!(g.edges(), 300);
        assert_eq!(g, erdos_renyi(50, 300, 1).unwrap());
        assert!(erdos_renyi(3, 7, 1).is_err());
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
    }
}
