//! Reverse-reachable (RR) sets of the independent-cascade model (Borgs et
//! al. 2014): pick a root v uniformly, keep each in-edge (u, v) with
//! probability p_uv, and collect every node that reaches v through kept
//! edges. For any seed set S, n · P(RR ∩ S ≠ ∅) is the expected spread of S,
//! so spread estimates become coverage counts.

use std::borrow::Cow;

use rayon::prelude::*;
use tessera_sdk::{GraphView, SeedRng};

use crate::lanes::{self, prefetch};

/// The in-edges of every node: borrowed from the host, which indexes them
/// once per graph, or built here from the out-edges where it lent none.
pub struct ReverseGraph<'a> {
    /// Number of nodes n.
    pub nodes: u32,
    offsets: Cow<'a, [u64]>,
    sources: Cow<'a, [u32]>,
}

impl<'a> ReverseGraph<'a> {
    /// The host's in-edges, or the transpose of its out-edges.
    pub fn new(graph: &GraphView<'a>) -> Self {
        let nodes = graph.nodes as u32;
        if graph.has_in_edges() {
            let (offsets, sources) = (graph.in_offsets.as_slice(), graph.in_sources.as_slice());
            return ReverseGraph { nodes, offsets: Cow::Borrowed(offsets), sources: Cow::Borrowed(sources) };
        }
        let (offsets, sources) = transpose(graph);
        ReverseGraph { nodes, offsets: Cow::Owned(offsets), sources: Cow::Owned(sources) }
    }

    /// The in-neighbours of `v`.
    pub fn in_neighbors(&self, v: u32) -> &[u32] {
        &self.sources[self.offsets[v as usize] as usize..self.offsets[v as usize + 1] as usize]
    }

    /// The graph's own probabilities in reverse CSR order: the host's, or
    /// permuted here where it lent no in-edges; none where it lent one
    /// probability per target node (see [`Model::of_graph`]).
    pub fn probabilities(&self, graph: &GraphView<'a>) -> Cow<'a, [f32]> {
        if !graph.target_probabilities.is_empty() {
            return Cow::Borrowed(&[]);
        }
        if graph.has_in_edges() && graph.in_probabilities.len() == graph.in_sources.len() {
            return Cow::Borrowed(graph.in_probabilities.as_slice());
        }
        let mut next = self.offsets.to_vec();
        let mut out = vec![0f32; self.sources.len()];
        for u in 0..self.nodes as usize {
            for e in graph.offsets[u] as usize..graph.offsets[u + 1] as usize {
                let v = graph.targets[e] as usize;
                out[next[v] as usize] = graph.probability(e);
                next[v] += 1;
            }
        }
        Cow::Owned(out)
    }

    /// Edge indices (reverse CSR order) of `v`'s in-edges.
    fn range(&self, v: u32) -> std::ops::Range<usize> {
        self.offsets[v as usize] as usize..self.offsets[v as usize + 1] as usize
    }
}

/// The reverse CSR of `graph`'s out-edges: (offsets, sources).
fn transpose(graph: &GraphView) -> (Vec<u64>, Vec<u32>) {
    let n = graph.nodes as usize;
    let mut offsets = vec![0u64; n + 1];
    for &v in graph.targets.iter() {
        offsets[v as usize + 1] += 1;
    }
    for i in 1..=n {
        offsets[i] += offsets[i - 1];
    }
    let mut next = offsets.clone();
    let mut sources = vec![0u32; graph.targets.len()];
    for u in 0..n {
        for &v in graph.out_neighbors(u as u32) {
            sources[next[v as usize] as usize] = u as u32;
            next[v as usize] += 1;
        }
    }
    (offsets, sources)
}

/// The independent-cascade model on the reverse graph: p_uv of every
/// in-edge (reverse CSR order) and, per node, the probability its in-edges
/// share (weighted cascade, uniform models), or −1 where they differ.
pub struct Model<'g> {
    /// The in-edges.
    pub graph: &'g ReverseGraph<'g>,
    probabilities: &'g [f32],
    shared: Cow<'g, [f32]>,
}

impl<'g> Model<'g> {
    /// The model of the host's graph: the one probability per target node
    /// it lent (weighted cascade, uniform), else `probabilities` (reverse
    /// CSR order, from [`ReverseGraph::probabilities`]).
    pub fn of_graph(graph: &'g ReverseGraph<'g>, view: &GraphView<'g>, probabilities: &'g [f32]) -> Self {
        let per_target = view.target_probabilities.as_slice();
        match per_target.len() == graph.nodes as usize {
            true => Model { graph, probabilities: &[], shared: Cow::Borrowed(per_target) },
            false => Model::new(graph, probabilities),
        }
    }

    /// The model with in-edge probabilities `probabilities` (reverse CSR order).
    pub fn new(graph: &'g ReverseGraph<'g>, probabilities: &'g [f32]) -> Self {
        assert_eq!(probabilities.len(), graph.sources.len(), "one probability per in-edge");
        let shared = (0..graph.nodes)
            .into_par_iter()
            .map(|v| {
                let p = &probabilities[graph.range(v)];
                let first = p.first().copied().unwrap_or(0.0);
                if p.iter().all(|&q| q == first) {
                    first
                } else {
                    -1.0
                }
            })
            .collect::<Vec<f32>>();
        Model { graph, probabilities, shared: Cow::Owned(shared) }
    }

    /// Number of nodes n.
    pub fn nodes(&self) -> u32 {
        self.graph.nodes
    }

    /// Prefetches what expanding `v` reads first: its in-edge range and
    /// shared probability.
    pub(crate) fn prefetch_node(&self, v: u32) {
        prefetch(&self.graph.offsets, v as usize + 1);
        prefetch(&self.shared, v as usize);
    }

    /// Prefetches the start of `v`'s in-edge list (and probabilities, where
    /// they differ per edge).
    pub(crate) fn prefetch_in_edges(&self, v: u32) {
        let first = self.graph.offsets[v as usize] as usize;
        prefetch(&self.graph.sources, first);
        prefetch(self.probabilities, first);
    }

    /// Keeps each in-edge of `v` with its probability: for a probability the
    /// node's in-edges share, jump from kept edge to kept edge by geometric
    /// gaps (cost ∝ edges kept, not in-degree: hubs of weighted cascade are
    /// cheap); otherwise one draw per edge.
    pub(crate) fn kept_in_edges(&self, v: u32, rng: &mut SeedRng, mut keep: impl FnMut(u32)) {
        let range = self.graph.range(v);
        let shared = self.shared[v as usize];
        let sources = &self.graph.sources[range.clone()];
        if shared < 0.0 {
            for (&u, &p) in sources.iter().zip(&self.probabilities[range]) {
                if rng.next_f64() < p as f64 {
                    keep(u);
                }
            }
        } else if shared >= 1.0 {
            sources.iter().for_each(|&u| keep(u));
        } else if shared > 0.0 {
            let log_q = (1.0 - shared as f64).ln();
            let gap = |rng: &mut SeedRng| ((1.0 - rng.next_f64()).ln() / log_q) as usize;
            let mut i = gap(rng);
            while i < sources.len() {
                keep(sources[i]);
                i += 1 + gap(rng);
            }
        }
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

    /// Samples sets until there are `target`, on all cores, under `model`.
    /// Batch b of 1,024 sets draws from stream (seed, b), so the same seed
    /// gives the same sets.
    pub fn extend_to(&mut self, target: usize, model: &Model, seed: u64) {
        RrSets::extend_together(&mut [(self, seed, target)], model);
    }

    /// [`RrSets::extend_to`] for several collections at once, each with its
    /// own (seed, target): their batches share the cores, so small rounds
    /// use them all.
    pub fn extend_together(parts: &mut [(&mut RrSets, u64, usize)], model: &Model) {
        let ranges: Vec<std::ops::Range<u64>> =
            parts.iter().map(|(sets, _, target)| sets.batches_to(*target)).collect();
        let jobs: Vec<(u64, u64)> = parts
            .iter()
            .zip(&ranges)
            .flat_map(|((_, seed, _), range)| range.clone().map(move |b| (*seed, b)))
            .collect();
        let mut batches = lanes::sample(model, &jobs, SETS_PER_BATCH).into_iter();
        for ((sets, _, target), range) in parts.iter_mut().zip(ranges) {
            let mine: Vec<lanes::Batch> = batches.by_ref().take(range.clone().count()).collect();
            sets.append(range.start, mine, *target);
        }
    }

    /// The batches that hold sets `len()..target`.
    fn batches_to(&self, target: usize) -> std::ops::Range<u64> {
        let have = self.len() as u64;
        if target as u64 <= have {
            return 0..0;
        }
        have / SETS_PER_BATCH..(target as u64).div_ceil(SETS_PER_BATCH)
    }

    /// Appends the sets of `batches` (the first is batch `first`) that it
    /// lacks, up to `target`.
    fn append(&mut self, first: u64, batches: Vec<lanes::Batch>, target: usize) {
        // The first batch may be partly present already: skip what we have.
        let mut skip = (self.len() as u64).saturating_sub(first * SETS_PER_BATCH) as usize;
        let adding = batches.iter().map(|(_, nodes)| nodes.len()).sum::<usize>();
        self.nodes.reserve_exact(adding);
        self.offsets.reserve_exact(target.saturating_sub(self.len()));
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
        self.coverage_of(&seed_mask(seeds, nodes))
    }

    /// Sets holding a node marked in `is_seed` (see [`seed_mask`]).
    pub fn coverage_of(&self, is_seed: &[bool]) -> u64 {
        (0..self.len()).into_par_iter().filter(|&i| self.set(i).iter().any(|&v| is_seed[v as usize])).count() as u64
    }

    /// The spread estimate n · coverage / |R|.
    pub fn spread(&self, seeds: &[u32], nodes: u32) -> f64 {
        self.spread_of(&seed_mask(seeds, nodes))
    }

    /// [`RrSets::spread`] of the nodes marked in `is_seed` (n = its length).
    pub fn spread_of(&self, is_seed: &[bool]) -> f64 {
        is_seed.len() as f64 * self.coverage_of(is_seed) as f64 / self.len().max(1) as f64
    }
}

/// `is_seed[v]` for the nodes of `seeds`, over `0..nodes`.
pub fn seed_mask(seeds: &[u32], nodes: u32) -> Vec<bool> {
    let mut is_seed = vec![false; nodes as usize];
    seeds.iter().for_each(|&s| is_seed[s as usize] = true);
    is_seed
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::abi_stable::std_types::RSlice;
    use tessera_sdk::testing::{graph as view, graph_per_target};

    #[test]
    fn rr_sets_are_reproducible_whatever_the_batching() {
        // A path 0 -> 1 -> 2 -> 3 with p = 1: RR(v) = {0..=v}.
        let (offsets, targets, p) = ([0u64, 1, 2, 3, 3], [1u32, 2, 3], [1.0f32; 3]);
        let g = view(&offsets, &targets, &p);
        let rev = ReverseGraph::new(&g);
        let model = Model::new(&rev, &p);
        let mut all = RrSets::new();
        all.extend_to(3000, &model, 7);
        assert_eq!(all.len(), 3000);
        for i in 0..all.len() {
            let set = all.set(i);
            let root = set[0];
            assert_eq!(set.len(), root as usize + 1, "RR({root}) = {set:?}");
        }
        let mut stepwise = RrSets::new();
        stepwise.extend_to(100, &model, 7);
        stepwise.extend_to(2000, &model, 7);
        stepwise.extend_to(3000, &model, 7);
        assert_eq!(stepwise, all);
        let (mut first, mut second) = (RrSets::new(), RrSets::new());
        first.extend_to(1500, &model, 7);
        RrSets::extend_together(&mut [(&mut first, 7, 3000), (&mut second, 8, 1100)], &model);
        let mut alone = RrSets::new();
        alone.extend_to(1100, &model, 8);
        assert_eq!((&first, &second), (&all, &alone), "together, each collection has its own sets and size");
        // Spread of {0} on the path with p = 1 is 4.
        assert_eq!(all.spread(&[0], 4), 4.0);
    }

    #[test]
    fn geometric_skipping_keeps_each_edge_with_its_probability() {
        // A star into node 0 from 1..=1000, all p = 0.01 (weighted cascade
        // would give 0.001): each in-neighbour is in RR(0) with probability p.
        let n = 1001usize;
        let mut offsets = vec![1000u64; n + 1];
        offsets[0] = 0;
        for (u, o) in offsets.iter_mut().enumerate().skip(1).take(1000) {
            *o = u as u64; // node u has one out-edge, to 0
        }
        let targets = vec![0u32; 1000];
        let p = vec![0.01f32; 1000];
        let g = view(&offsets, &targets, &p);
        let rev = ReverseGraph::new(&g);
        let model = Model::new(&rev, &p);
        assert_eq!(model.shared[0], 0.01);
        let mut rng = SeedRng::new(5);
        let mut kept = vec![0u32; n];
        for _ in 0..2000 {
            model.kept_in_edges(0, &mut rng, |u| kept[u as usize] += 1);
        }
        let total: u32 = kept.iter().sum();
        // 2,000 × 1,000 × 0.01 = 20,000 expected, sd ≈ 141.
        assert!((total as f64 - 20_000.0).abs() < 600.0, "{total}");
        assert!(kept[1..].iter().all(|&k| k < 60), "every edge alike");
        let mut differ = p.clone();
        differ[0] = 0.5;
        assert_eq!(Model::new(&rev, &differ).shared[0], -1.0, "mixed probabilities: one draw per edge");
    }

    #[test]
    fn the_hosts_in_edges_and_our_own_transpose_give_the_same_sets() {
        // 0 -> 1, 0 -> 2, 1 -> 3, 2 -> 3, 3 -> 4, 4 -> 0.
        let (offsets, targets) = ([0u64, 2, 3, 4, 5, 6], [1u32, 2, 3, 3, 4, 0]);
        let p = [0.5f32, 0.3, 0.8, 0.4, 0.6, 0.2];
        let g = view(&offsets, &targets, &p);
        assert!(!g.has_in_edges());
        let own = ReverseGraph::new(&g);
        let own_p = own.probabilities(&g);
        // What the host lends: by target, sources increasing, p with its edge.
        let (in_offsets, in_sources, in_p) =
            ([0u64, 1, 2, 3, 5, 6], [4u32, 0, 0, 1, 2, 3], [0.2f32, 0.5, 0.3, 0.8, 0.4, 0.6]);
        let lent = GraphView {
            in_offsets: RSlice::from_slice(&in_offsets),
            in_sources: RSlice::from_slice(&in_sources),
            in_probabilities: RSlice::from_slice(&in_p),
            ..g
        };
        assert!(lent.has_in_edges());
        let borrowed = ReverseGraph::new(&lent);
        let borrowed_p = borrowed.probabilities(&lent);
        assert!(matches!((&borrowed.sources, &borrowed_p), (Cow::Borrowed(_), Cow::Borrowed(_))), "no copy");
        assert_eq!((&own.offsets[..], &own.sources[..], &own_p[..]), (&in_offsets[..], &in_sources[..], &in_p[..]));
        let (mut a, mut b) = (RrSets::new(), RrSets::new());
        a.extend_to(5000, &Model::new(&own, &own_p), 3);
        b.extend_to(5000, &Model::new(&borrowed, &borrowed_p), 3);
        assert_eq!(a, b);
    }

    #[test]
    fn one_probability_per_target_gives_the_sets_of_the_same_per_edge_model() {
        // Weighted cascade on 0 -> 1, 0 -> 2, 1 -> 3, 2 -> 3, 3 -> 4, 4 -> 0, 0 -> 3.
        let (offsets, targets) = ([0u64, 3, 4, 5, 6, 7], [1u32, 2, 3, 3, 3, 4, 0]);
        let per_target = [1.0f32, 1.0, 1.0, 1.0 / 3.0, 1.0];
        let per_edge: Vec<f32> = targets.iter().map(|&v| per_target[v as usize]).collect();
        let (lent, edges) = (graph_per_target(&offsets, &targets, &per_target), view(&offsets, &targets, &per_edge));
        let (rev_lent, rev_edges) = (ReverseGraph::new(&lent), ReverseGraph::new(&edges));
        let (p_lent, p_edges) = (rev_lent.probabilities(&lent), rev_edges.probabilities(&edges));
        assert!(p_lent.is_empty(), "no per-edge copy");
        let (mut a, mut b) = (RrSets::new(), RrSets::new());
        a.extend_to(5000, &Model::of_graph(&rev_lent, &lent, &p_lent), 7);
        b.extend_to(5000, &Model::of_graph(&rev_edges, &edges, &p_edges), 7);
        assert_eq!(a, b);
    }

    #[test]
    fn rr_estimates_match_exact_enumeration_on_tiny_graphs() {
        // 0 -> 1, 0 -> 2, 1 -> 3, 2 -> 3, 3 -> 4, 4 -> 0 (a cycle back).
        let offsets = [0u64, 2, 3, 4, 5, 6];
        let targets = [1u32, 2, 3, 3, 4, 0];
        let p = [0.5f32, 0.3, 0.8, 0.4, 0.6, 0.2];
        let g = view(&offsets, &targets, &p);
        let rev = ReverseGraph::new(&g);
        let p_in = rev.probabilities(&g);
        let mut sets = RrSets::new();
        sets.extend_to(400_000, &Model::new(&rev, &p_in), 11);
        for seeds in [&[0u32][..], &[3], &[1, 2], &[4, 2]] {
            let exact = crate::exact::spread(&offsets, &targets, &p, seeds);
            let estimate = sets.spread(seeds, 5);
            // Binomial standard error of n · coverage/θ is at most n · 0.5/√θ ≈ 0.004.
            assert!((estimate - exact).abs() < 0.02, "{seeds:?}: RR {estimate} vs exact {exact}");
        }
        // The enumeration itself, by hand: σ({0}) on 0 -> 1 -> 2 is 1 + p + p·q.
        let exact = crate::exact::spread(&[0, 1, 2, 2], &[1, 2], &[0.5, 0.25], &[0]);
        assert!((exact - (1.0 + 0.5 + 0.125)).abs() < 1e-12);
    }
}
