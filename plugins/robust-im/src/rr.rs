//! Reverse-reachable (RR) sets of the independent-cascade model (Borgs et
//! al. 2014): pick a root v uniformly, keep each in-edge (u, v) with
//! probability p_uv, and collect every node that reaches v through kept
//! edges. For any seed set S, n · P(RR ∩ S ≠ ∅) is the expected spread of S,
//! so spread estimates become coverage counts.

use rayon::prelude::*;
use tessera_sdk::{GraphView, SeedRng};

/// The in-edges of every node, with the index of each edge in the forward
/// CSR (where its probability is).
pub struct ReverseGraph {
    /// Number of nodes n.
    pub nodes: u32,
    offsets: Vec<u64>,
    sources: Vec<u32>,
    edge: Vec<u64>,
}

impl ReverseGraph {
    /// Transposes the host's graph.
    pub fn new(graph: &GraphView) -> Self {
        let n = graph.nodes as usize;
        let mut offsets = vec![0u64; n + 1];
        for &v in graph.targets.iter() {
            offsets[v as usize + 1] += 1;
        }
        for i in 1..=n {
            offsets[i] += offsets[i - 1];
        }
        let mut next = offsets.clone();
        let m = graph.targets.len();
        let (mut sources, mut edge) = (vec![0u32; m], vec![0u64; m]);
        for u in 0..n {
            for e in graph.offsets[u]..graph.offsets[u + 1] {
                let v = graph.targets[e as usize] as usize;
                let slot = next[v] as usize;
                sources[slot] = u as u32;
                edge[slot] = e;
                next[v] += 1;
            }
        }
        ReverseGraph { nodes: n as u32, offsets, sources, edge }
    }

    /// The in-neighbours of `v` with their forward edge indices.
    fn in_edges(&self, v: u32) -> impl Iterator<Item = (u32, u64)> + '_ {
        let (a, b) = (self.offsets[v as usize] as usize, self.offsets[v as usize + 1] as usize);
        self.sources[a..b].iter().copied().zip(self.edge[a..b].iter().copied())
    }
}

/// RR sets, stored flat: set i is `nodes[offsets[i]..offsets[i+1]]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RrSets {
    offsets: Vec<u64>,
    nodes: Vec<u32>,
}

/// RR sets sampled per independent random stream: the collection does not
/// depend on the number of threads.
const SETS_PER_BATCH: u64 = 1024;

impl RrSets {
    /// An empty collection.
    pub fn new() -> Self {
        RrSets { offsets: vec![0], nodes: vec![] }
    }

    /// Number of sets.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether there are no sets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one set (for tests and hand-made instances).
    pub fn push(&mut self, set: &[u32]) {
        self.nodes.extend_from_slice(set);
        self.offsets.push(self.nodes.len() as u64);
    }

    /// Set `i`.
    pub fn set(&self, i: usize) -> &[u32] {
        &self.nodes[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Total number of node entries (memory is about 4 bytes each).
    pub fn total_size(&self) -> u64 {
        self.nodes.len() as u64
    }

    /// Samples sets until there are `target`, on all cores, under edge
    /// probabilities `probabilities` (forward CSR order). Batch b of 1,024
    /// sets draws from stream (seed, b), so the same seed gives the same sets.
    pub fn extend_to(&mut self, target: usize, graph: &ReverseGraph, probabilities: &[f32], seed: u64) {
        let have = self.len() as u64;
        if target as u64 <= have {
            return;
        }
        let first_batch = have / SETS_PER_BATCH;
        let last_batch = (target as u64).div_ceil(SETS_PER_BATCH);
        let n = graph.nodes as usize;
        let batches: Vec<(Vec<u64>, Vec<u32>)> = (first_batch..last_batch)
            .into_par_iter()
            .map_init(
                || (vec![0u32; n], 0u32, Vec::<u32>::new()),
                |(visited, stamp, stack), batch| {
                    let mut rng = SeedRng::derive(seed, batch);
                    let (mut lengths, mut nodes) = (Vec::with_capacity(SETS_PER_BATCH as usize), Vec::new());
                    for _ in 0..SETS_PER_BATCH {
                        *stamp = stamp.wrapping_add(1);
                        if *stamp == 0 {
                            visited.iter_mut().for_each(|v| *v = 0);
                            *stamp = 1;
                        }
                        let start = nodes.len();
                        let root = rng.below(n as u64) as u32;
                        visited[root as usize] = *stamp;
                        stack.push(root);
                        while let Some(v) = stack.pop() {
                            nodes.push(v);
                            for (u, e) in graph.in_edges(v) {
                                if visited[u as usize] != *stamp && rng.next_f64() < probabilities[e as usize] as f64 {
                                    visited[u as usize] = *stamp;
                                    stack.push(u);
                                }
                            }
                        }
                        lengths.push((nodes.len() - start) as u64);
                    }
                    (lengths, nodes)
                },
            )
            .collect();
        // The first batch may be partly present already: skip what we have.
        let mut skip = (have - first_batch * SETS_PER_BATCH) as usize;
        for (lengths, nodes) in batches {
            let mut at = 0usize;
            for len in lengths {
                let len = len as usize;
                if skip > 0 {
                    skip -= 1;
                } else if self.len() < target {
                    self.nodes.extend_from_slice(&nodes[at..at + len]);
                    self.offsets.push(self.nodes.len() as u64);
                }
                at += len;
            }
        }
    }

    /// Sets that intersect `seeds`.
    pub fn coverage(&self, seeds: &[u32], nodes: u32) -> u64 {
        let mut is_seed = vec![false; nodes as usize];
        seeds.iter().for_each(|&s| is_seed[s as usize] = true);
        (0..self.len()).into_par_iter().filter(|&i| self.set(i).iter().any(|&v| is_seed[v as usize])).count() as u64
    }

    /// The spread estimate n · coverage / |R|.
    pub fn spread(&self, seeds: &[u32], nodes: u32) -> f64 {
        nodes as f64 * self.coverage(seeds, nodes) as f64 / self.len().max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::view;

    #[test]
    fn rr_sets_are_reproducible_whatever_the_batching() {
        // A path 0 -> 1 -> 2 -> 3 with p = 1: RR(v) = {0..=v}.
        let (offsets, targets, p) = ([0u64, 1, 2, 3, 3], [1u32, 2, 3], [1.0f32; 3]);
        let g = view(&offsets, &targets, &p);
        let rev = ReverseGraph::new(&g);
        let mut all = RrSets::new();
        all.extend_to(3000, &rev, &p, 7);
        assert_eq!(all.len(), 3000);
        for i in 0..all.len() {
            let set = all.set(i);
            let root = set[0];
            assert_eq!(set.len(), root as usize + 1, "RR({root}) = {set:?}");
        }
        let mut stepwise = RrSets::new();
        stepwise.extend_to(100, &rev, &p, 7);
        stepwise.extend_to(2000, &rev, &p, 7);
        stepwise.extend_to(3000, &rev, &p, 7);
        assert_eq!(stepwise, all);
        // Spread of {0} on the path with p = 1 is 4.
        assert_eq!(all.spread(&[0], 4), 4.0);
    }
}
