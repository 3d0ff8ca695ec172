//! RR sampling with the cache misses of several walks in flight at once.
//!
//! One RR walk is a chain of dependent loads: a node's in-edge range, then
//! its in-neighbours, then the next node's range. On a large graph each is
//! a cache miss, so one walk alone leaves the core waiting on memory. Batch
//! b of RR sets draws from its own stream (seed, b), so the walks of
//! several batches are independent: one thread steps up to [`LANES`]
//! batches in turn, prefetching what each lane's next step will read. A
//! batch's sets are exactly those of sampling it alone, so the collection
//! depends on neither the number of threads nor the grouping.

use rayon::prelude::*;
use tessera_sdk::SeedRng;

use crate::rr::Model;

/// Batches one thread steps in turn: enough misses in flight to cover the
/// latency of memory, few enough that the lanes' state stays in cache.
const LANES: usize = 8;

/// The sets of one batch: their lengths, and their nodes end to end.
pub type Batch = (Vec<u64>, Vec<u32>);

/// Samples `sets_per_batch` RR sets for each (seed, b) of `batches` under
/// `model`, from stream (seed, b), on all cores: the batches in that order.
pub fn sample(model: &Model, batches: &[(u64, u64)], sets_per_batch: u64) -> Vec<Batch> {
    let groups = batches.len().div_ceil(LANES).max(rayon::current_num_threads()).min(batches.len()).max(1);
    let chunk = batches.len().div_ceil(groups).max(1);
    let nodes = model.nodes();
    batches
        .par_chunks(chunk)
        .map_init(Vec::new, |lanes: &mut Vec<Lane>, group| {
            lanes.resize_with(group.len(), || Lane::new(nodes));
            let streams = group.iter().map(|&(seed, b)| SeedRng::derive(seed, b));
            streams.zip(lanes.iter_mut()).for_each(|(rng, lane)| lane.start(rng, sets_per_batch));
            step_all(lanes, model);
            lanes.iter_mut().map(Lane::take).collect::<Vec<Batch>>()
        })
        .flatten_iter()
        .collect()
}

/// Steps every lane in turn until all have sampled their sets.
fn step_all(lanes: &mut [Lane], model: &Model) {
    let mut running = lanes.len();
    while running > 0 {
        running = lanes.iter_mut().filter(|lane| lane.running()).map(|lane| lane.step(model)).filter(|&r| r).count();
    }
}

/// What a lane waits on.
#[derive(Clone, Copy)]
enum Pending {
    /// No node: the next step takes one from the stack.
    Nothing,
    /// Node v's in-edge range.
    Range(u32),
    /// Node v's in-edges.
    Edges(u32),
}

/// One batch's walk in progress.
struct Lane {
    rng: SeedRng,
    /// Sets still to start.
    sets_left: u64,
    /// Nodes reached and not yet expanded.
    stack: Vec<u32>,
    /// The node taken from the stack, and what of it is being fetched.
    pending: Pending,
    /// Whether a set is being sampled.
    in_set: bool,
    /// Bit v: v is in the current set.
    visited: Vec<u64>,
    /// Where the current set starts in `nodes`.
    set_start: usize,
    lengths: Vec<u64>,
    nodes: Vec<u32>,
}

impl Lane {
    /// An idle lane over `n` nodes.
    fn new(n: u32) -> Self {
        Lane {
            rng: SeedRng::new(0),
            sets_left: 0,
            stack: Vec::new(),
            pending: Pending::Nothing,
            in_set: false,
            visited: vec![0; (n as usize).div_ceil(64)],
            set_start: 0,
            lengths: Vec::new(),
            nodes: Vec::new(),
        }
    }

    /// Starts a batch of `sets` sets drawn from `rng`.
    fn start(&mut self, rng: SeedRng, sets: u64) {
        self.rng = rng;
        self.sets_left = sets;
        self.lengths = Vec::with_capacity(sets as usize);
        self.nodes = Vec::new();
    }

    /// Whether the batch has sets to sample still.
    fn running(&self) -> bool {
        self.sets_left > 0 || self.in_set
    }

    /// The finished batch.
    fn take(&mut self) -> Batch {
        self.nodes.shrink_to_fit();
        (std::mem::take(&mut self.lengths), std::mem::take(&mut self.nodes))
    }

    /// One step, so that no step waits on memory it asked for in the same
    /// step: a node taken from the stack has its in-edge range read one
    /// step later (prefetched when pushed), and its in-edges read and kept
    /// the step after (prefetched by the step before). Draws come in the
    /// order of sampling the batch alone. False once the batch is done.
    fn step(&mut self, model: &Model) -> bool {
        match self.pending {
            Pending::Range(v) => {
                model.prefetch_in_edges(v);
                self.pending = Pending::Edges(v);
                true
            }
            Pending::Edges(v) => {
                self.expand(v, model);
                self.take_next(model)
            }
            Pending::Nothing => self.take_next(model),
        }
    }

    /// Takes the next node from the stack, or closes the set and opens the
    /// next. False once the batch is done.
    fn take_next(&mut self, model: &Model) -> bool {
        self.pending = Pending::Nothing;
        if let Some(v) = self.stack.pop() {
            self.nodes.push(v);
            self.pending = Pending::Range(v);
            return true;
        }
        if self.in_set {
            self.close_set();
        }
        if self.sets_left == 0 {
            return false;
        }
        self.open_set(model);
        true
    }

    /// Keeps `v`'s in-edges and pushes the sources not yet in the set.
    fn expand(&mut self, v: u32, model: &Model) {
        let (visited, stack) = (&mut self.visited, &mut self.stack);
        model.kept_in_edges(v, &mut self.rng, |u| {
            if insert(visited, u) {
                stack.push(u);
                model.prefetch_node(u);
            }
        });
    }

    /// Draws a root and starts its set.
    fn open_set(&mut self, model: &Model) {
        self.sets_left -= 1;
        self.in_set = true;
        self.set_start = self.nodes.len();
        let root = self.rng.below(model.nodes() as u64) as u32;
        insert(&mut self.visited, root);
        self.stack.push(root);
        model.prefetch_node(root);
    }

    /// Records the set's length and clears its nodes from `visited`.
    fn close_set(&mut self) {
        self.in_set = false;
        let set = &self.nodes[self.set_start..];
        set.iter().for_each(|&v| self.visited[v as usize / 64] &= !(1 << (v % 64)));
        self.lengths.push(set.len() as u64);
    }
}

/// Sets bit `v`; true if it was clear.
fn insert(bits: &mut [u64], v: u32) -> bool {
    let (word, bit) = (&mut bits[v as usize / 64], 1u64 << (v % 64));
    let fresh = *word & bit == 0;
    *word |= bit;
    fresh
}

/// Asks the cache for the line holding `slice[i]`, if there is one: a hint
/// that never faults and changes no result.
#[inline(always)]
pub fn prefetch<T>(slice: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = slice.get(i) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch reads nothing and cannot fault; `x` is a valid reference anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((x as *const T).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (slice, i);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rr::ReverseGraph;
    use tessera_sdk::testing::graph as view;

    /// Batch b sampled alone, one walk after another: what lanes must give.
    fn one_walk_at_a_time(model: &Model, seed: u64, b: u64, sets: u64) -> Batch {
        let mut rng = SeedRng::derive(seed, b);
        let (mut lengths, mut nodes) = (Vec::new(), Vec::new());
        for _ in 0..sets {
            let mut visited = vec![false; model.nodes() as usize];
            let root = rng.below(model.nodes() as u64) as u32;
            let (start, mut stack) = (nodes.len(), vec![root]);
            visited[root as usize] = true;
            while let Some(v) = stack.pop() {
                nodes.push(v);
                model.kept_in_edges(v, &mut rng, |u| {
                    if !std::mem::replace(&mut visited[u as usize], true) {
                        stack.push(u);
                    }
                });
            }
            lengths.push((nodes.len() - start) as u64);
        }
        (lengths, nodes)
    }

    #[test]
    fn lanes_give_each_batch_the_sets_of_sampling_it_alone() {
        // 300 nodes, 8 random out-edges each; per-edge probabilities on
        // even targets, shared ones (weighted-cascade-like, 1 and 0 too) on odd.
        let (n, mut rng) = (300u32, SeedRng::new(9));
        let targets: Vec<u32> = (0..n * 8).map(|_| rng.below(n as u64) as u32).collect();
        let offsets: Vec<u64> = (0..=n as u64).map(|u| u * 8).collect();
        let p: Vec<f32> = targets
            .iter()
            .map(|&v| match v % 4 {
                0 | 2 => rng.next_f64() as f32 * 0.4,
                1 => 0.15,
                _ if v % 8 == 3 => 1.0,
                _ => 0.0,
            })
            .collect();
        let g = view(&offsets, &targets, &p);
        let rev = ReverseGraph::new(&g);
        let p_in = rev.probabilities(&g);
        let model = Model::new(&rev, &p_in);
        for (batches, sets) in [(0..1u64, 50u64), (3..20, 40), (0..37, 7)] {
            let jobs: Vec<(u64, u64)> = batches.clone().map(|b| (11 + b % 2, b)).collect();
            let alone: Vec<Batch> = jobs.iter().map(|&(seed, b)| one_walk_at_a_time(&model, seed, b, sets)).collect();
            assert_eq!(sample(&model, &jobs, sets), alone);
        }
        assert!(
            sample(&model, &[(11, 0), (11, 1)], 30).iter().any(|(lengths, _)| lengths.iter().any(|&l| l > 3)),
            "walks branch"
        );
    }
}
