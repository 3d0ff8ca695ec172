//! Seeded random graph generators: Erdős–Rényi G(n, m), Barabási–Albert
//! preferential attachment, Watts–Strogatz small worlds and R-MAT
//! (Kronecker-style power-law graphs, fast to 10⁷ edges and beyond).
//! The same arguments and seed always give the same graph.

use crate::error::{bail, Result};
use tessera_sdk::SeedRng;

use super::Graph;
use crate::choice::EdgeDirection;

/// Directed edges from undirected links: both directions, or one by a coin
/// (its own stream of `seed`, so `both` graphs stay as they were; flipped in
/// place, so no second list).
fn directed(mut links: Vec<(u32, u32)>, direction: EdgeDirection, seed: u64) -> Vec<(u32, u32)> {
    match direction {
        EdgeDirection::Both => links.iter().flat_map(|&(u, v)| [(u, v), (v, u)]).collect(),
        EdgeDirection::Random => {
            let mut coin = SeedRng::derive(seed, 0xD12E);
            links.iter_mut().filter(|_| coin.below(2) == 1).for_each(|(u, v)| std::mem::swap(u, v));
            links
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

/// Barabási–Albert: nodes arrive one by one and attach to `attach` distinct
/// earlier nodes chosen with probability proportional to their degree
/// (starting from a clique of `attach + 1`). Each link gives both
/// directions, or one by a coin (`direction`).
pub fn barabasi_albert(n: u32, attach: u32, direction: EdgeDirection, seed: u64) -> Result<Graph> {
    if attach == 0 || n <= attach {
        bail!("Barabási–Albert needs 1 <= attach < nodes (got attach {attach}, nodes {n})");
    }
    let mut rng = SeedRng::derive(seed, 0xBA);
    let mut edges: Vec<(u32, u32)> = Vec::with_capacity(2 * n as usize * attach as usize);
    // Every edge end once: sampling from it is sampling by degree.
    let mut ends: Vec<u32> = Vec::with_capacity(2 * n as usize * attach as usize);
    for u in 0..=attach {
        for v in 0..u {
            edges.push((u, v));
            ends.extend([u, v]);
        }
    }
    let mut chosen: Vec<u32> = Vec::with_capacity(attach as usize);
    for u in attach + 1..n {
        chosen.clear();
        while chosen.len() < attach as usize {
            let v = ends[rng.below(ends.len() as u64) as usize];
            if !chosen.contains(&v) {
                chosen.push(v);
            }
        }
        for &v in &chosen {
            edges.push((u, v));
            ends.extend([u, v]);
        }
    }
    drop(ends);
    Graph::from_edges(n, &directed(edges, direction, seed))
}

/// Watts–Strogatz: a ring where each node links to its `neighbors / 2`
/// nearest on each side, each link rewired with probability `rewire` to a
/// uniformly random node (no self-loops or duplicates). Each link gives
/// both directions, or one by a coin (`direction`).
pub fn watts_strogatz(n: u32, neighbors: u32, rewire: f64, direction: EdgeDirection, seed: u64) -> Result<Graph> {
    if neighbors < 2 || !neighbors.is_multiple_of(2) || neighbors >= n {
        bail!("Watts–Strogatz needs an even neighbors >= 2 below nodes (got {neighbors}, nodes {n})");
    }
    if !(0.0..=1.0).contains(&rewire) {
        bail!("Watts–Strogatz: rewire must be a probability (got {rewire})");
    }
    let mut rng = SeedRng::derive(seed, 0x3575);
    let mut present = std::collections::HashSet::new();
    let key = |u: u32, v: u32| if u < v { (u, v) } else { (v, u) };
    for u in 0..n {
        for j in 1..=neighbors / 2 {
            present.insert(key(u, (u + j) % n));
        }
    }
    let mut edges: Vec<(u32, u32)> = Vec::with_capacity(present.len());
    for u in 0..n {
        for j in 1..=neighbors / 2 {
            let v = (u + j) % n;
            let mut target = v;
            if rng.next_f64() < rewire {
                // A few tries at a fresh endpoint; keep the lattice edge otherwise.
                for _ in 0..16 {
                    let w = rng.below(n as u64) as u32;
                    if w != u && !present.contains(&key(u, w)) {
                        present.remove(&key(u, v));
                        present.insert(key(u, w));
                        target = w;
                        break;
                    }
                }
            }
            edges.push((u, target));
        }
    }
    Graph::from_edges(n, &directed(edges, direction, seed))
}

/// R-MAT (Chakrabarti et al. 2004): each of about `m` directed edges picks
/// its cell by descending ⌈log2 n⌉ times into the adjacency matrix's
/// quadrants with probabilities (a, b, c, 1 − a − b − c) — (0.57, 0.19, 0.19,
/// 0.05) gives the skewed, power-law degrees of real networks. Self-loops,
/// duplicates and ids ≥ n are dropped, so a few edges fewer than `m` remain.
pub fn rmat(n: u32, m: u64, (a, b, c): (f64, f64, f64), seed: u64) -> Result<Graph> {
    if n < 2 || !(a > 0.0 && b >= 0.0 && c >= 0.0 && a + b + c < 1.0) {
        bail!("R-MAT needs n >= 2 and quadrant probabilities a > 0, b, c >= 0 with a + b + c < 1");
    }
    let levels = 32 - (n - 1).leading_zeros();
    let mut rng = SeedRng::derive(seed, 0x2A7);
    let mut packed: Vec<u64> = Vec::with_capacity(m as usize);
    for _ in 0..m {
        let (mut u, mut v) = (0u32, 0u32);
        for _ in 0..levels {
            let r = rng.next_f64();
            let (du, dv) = if r < a {
                (0, 0)
            } else if r < a + b {
                (0, 1)
            } else if r < a + b + c {
                (1, 0)
            } else {
                (1, 1)
            };
            u = (u << 1) | du;
            v = (v << 1) | dv;
        }
        if u != v && u < n && v < n {
            packed.push(((u as u64) << 32) | v as u64);
        }
    }
    packed.sort_unstable();
    packed.dedup();
    Ok(Graph::from_sorted_packed(n, packed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erdos_renyi_has_m_distinct_edges() {
        let g = erdos_renyi(50, 300, 1).unwrap();
        assert_eq!(g.edges(), 300);
        assert_eq!(g, erdos_renyi(50, 300, 1).unwrap());
        assert!(erdos_renyi(3, 7, 1).is_err());
    }

    #[test]
    fn barabasi_albert_is_symmetric_with_hubs() {
        let g = barabasi_albert(2000, 3, EdgeDirection::Both, 4).unwrap();
        // Clique of 4 (6 edges) + 3 per later node, both directions.
        assert_eq!(g.edges(), 2 * (6 + 3 * 1996));
        assert_eq!(g, barabasi_albert(2000, 3, EdgeDirection::Both, 4).unwrap());
        let r = g.reverse();
        assert_eq!((r.offsets.clone(), r.targets.clone()), (g.offsets.clone(), g.targets.clone()), "symmetric");
        let max = (0..2000).map(|u| g.offsets[u + 1] - g.offsets[u]).max().unwrap();
        assert!(max > 60, "preferential attachment makes hubs (max degree {max})");
    }

    #[test]
    fn a_coin_keeps_one_direction_of_each_link() {
        let both = barabasi_albert(2000, 3, EdgeDirection::Both, 4).unwrap();
        let one = barabasi_albert(2000, 3, EdgeDirection::Random, 4).unwrap();
        assert_eq!(one.edges() * 2, both.edges());
        assert_eq!(one, barabasi_albert(2000, 3, EdgeDirection::Random, 4).unwrap());
        let has = |g: &Graph, u: u32, v: u32| {
            g.targets[g.offsets[u as usize] as usize..g.offsets[u as usize + 1] as usize].contains(&v)
        };
        let (mut forward, mut backward) = (0, 0);
        for u in 0..2000u32 {
            for &v in &both.targets[both.offsets[u as usize] as usize..both.offsets[u as usize + 1] as usize] {
                if u < v {
                    assert!(has(&one, u, v) != has(&one, v, u), "exactly one direction of {u}–{v}");
                    if has(&one, u, v) {
                        forward += 1
                    } else {
                        backward += 1
                    }
                }
            }
        }
        // 5,994 links, each way with probability 1/2: sd ≈ 39.
        assert!((forward as i64 - backward as i64).abs() < 300, "{forward} vs {backward}");
        let ws = watts_strogatz(500, 6, 0.1, EdgeDirection::Random, 2).unwrap();
        assert_eq!(ws.edges(), 500 * 3);
    }

    #[test]
    fn watts_strogatz_keeps_the_edge_count() {
        let g = watts_strogatz(500, 6, 0.1, EdgeDirection::Both, 2).unwrap();
        assert_eq!(g.edges(), 2 * 500 * 3);
        let lattice = watts_strogatz(500, 6, 0.0, EdgeDirection::Both, 2).unwrap();
        assert!((0..500).all(|u| lattice.offsets[u + 1] - lattice.offsets[u] == 6));
        assert_ne!(g, lattice);
        assert!(watts_strogatz(10, 3, 0.1, EdgeDirection::Both, 0).is_err());
    }

    #[test]
    fn rmat_is_skewed_and_reproducible() {
        let g = rmat(1 << 14, 100_000, (0.57, 0.19, 0.19), 9).unwrap();
        assert!(g.edges() > 80_000 && g.edges() <= 100_000, "{}", g.edges());
        assert_eq!(g, rmat(1 << 14, 100_000, (0.57, 0.19, 0.19), 9).unwrap());
        let mut degrees: Vec<u64> = (0..1 << 14).map(|u| g.offsets[u + 1] - g.offsets[u]).collect();
        degrees.sort_unstable();
        let top: u64 = degrees.iter().rev().take(164).sum(); // the top 1 % of nodes
        assert!(top as f64 > 0.1 * g.edges() as f64, "top 1 % hold {top} of {} edges", g.edges());
    }
}
