//! Greedy maximum coverage over RR sets, lazily evaluated (CELF): pick k
//! nodes, each time the one covering the most weight of not-yet-covered
//! sets. Coverage is monotone submodular, so the greedy set covers at least
//! (1 − 1/e) of the best k-set's weight.
//!
//! Along the way it bounds the best k-set's weight from above as OPIM-C
//! does (Tang et al. 2018): for every prefix S_i of the greedy set,
//! OPT ≤ Cov(S_i) + the sum of the k largest marginal gains with respect to
//! S_i (submodularity), and the bound is the least of these over i = 0..k.

use std::collections::BinaryHeap;

use rayon::prelude::*;

use crate::rr::RrSets;

/// A node's marginal gain in the heap (may be stale: an upper bound).
#[derive(PartialEq)]
struct Gain(f64, u32);

impl Eq for Gain {}

impl PartialOrd for Gain {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Gain {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Larger gain first; ties to the lower node id.
        self.0.total_cmp(&other.0).then_with(|| other.1.cmp(&self.1))
    }
}

/// One collection of RR sets and the weight each of its sets carries (for
/// a mixture Σ_i w_i f_θi, collection i's sets weigh w_i · n / |R_i|).
pub struct Weighted<'a> {
    /// The sets.
    pub sets: &'a RrSets,
    /// The weight of each set.
    pub weight: f64,
}

/// The greedy k-set and the total weight it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Cover {
    /// Chosen nodes, in the order chosen.
    pub seeds: Vec<u32>,
    /// Weight covered after each pick.
    pub covered: Vec<f64>,
    /// An upper bound on the weight the best k-set covers: the least, over
    /// the greedy prefixes S_i, of Cov(S_i) plus the k largest marginal gains.
    pub optimum_bound: f64,
}

/// Lazy greedy max coverage of `collections` with `k` nodes of `0..nodes`.
pub fn greedy(collections: &[Weighted], nodes: u32, k: u32) -> Cover {
    let sets: Vec<&RrSets> = collections.iter().map(|c| c.sets).collect();
    let weights: Vec<f64> = collections.iter().map(|c| c.weight).collect();
    CoverageIndex::new(&sets, nodes).greedy(&weights, k)
}

/// Which sets each node is in, over several RR collections: built once,
/// then greedy runs under any weights (HIRO reweighs every round).
pub struct CoverageIndex<'a> {
    collections: Vec<&'a RrSets>,
    nodes: u32,
    /// Global id of the first set of each collection.
    firsts: Vec<usize>,
    /// Sets over all collections.
    total: usize,
    /// Node v's sets are `members[offsets[v]..offsets[v+1]]` (global ids).
    offsets: Vec<u64>,
    members: Vec<u32>,
}

impl<'a> CoverageIndex<'a> {
    /// Indexes `collections` over nodes `0..nodes`, on all cores: each
    /// core owns a range of nodes and reads every set in order, so the
    /// index is the one a single core would build.
    pub fn new(collections: &[&'a RrSets], nodes: u32) -> Self {
        let n = nodes as usize;
        let mut firsts = Vec::with_capacity(collections.len());
        let mut total = 0usize;
        for c in collections {
            firsts.push(total);
            total += c.len();
        }
        let ranges = node_ranges(n);
        let mut offsets = vec![0u64; n + 1];
        split_by(&mut offsets[1..], &ranges, |node| node).into_par_iter().for_each(|(mine, counts)| {
            for_each_entry(collections, |_, v| {
                if mine.contains(&(v as usize)) {
                    counts[v as usize - mine.start] += 1;
                }
            });
        });
        for i in 1..=n {
            offsets[i] += offsets[i - 1];
        }
        let mut members = vec![0u32; offsets[n] as usize];
        split_by(&mut members, &ranges, |node| offsets[node] as usize).into_par_iter().for_each(|(mine, slots)| {
            let base = offsets[mine.start];
            let mut next: Vec<u64> = offsets[mine.clone()].iter().map(|&o| o - base).collect();
            for_each_entry(collections, |set, v| {
                if mine.contains(&(v as usize)) {
                    slots[next[v as usize - mine.start] as usize] = set as u32;
                    next[v as usize - mine.start] += 1;
                }
            });
        });
        CoverageIndex { collections: collections.to_vec(), nodes, firsts, total, offsets, members }
    }

    /// Lazy greedy with k nodes, each set of collection c weighing `weights[c]`.
    pub fn greedy(&self, weights: &[f64], k: u32) -> Cover {
        let (n, offsets, members) = (self.nodes as usize, &self.offsets, &self.members);
        let weight_of = |s: usize| weights[locate(&self.firsts, s).0];
        let mut gain: Vec<f64> = (0..n)
            .into_par_iter()
            .map(|v| members[offsets[v] as usize..offsets[v + 1] as usize].iter().map(|&s| weight_of(s as usize)).sum())
            .collect();
        let in_some_set = |v: usize| offsets[v] < offsets[v + 1];
        let mut heap = Queue::new(&gain, in_some_set);
        let mut covered_set = vec![false; self.total];
        let mut chosen = vec![false; n];
        let mut cover = Cover { seeds: vec![], covered: vec![], optimum_bound: f64::INFINITY };
        let mut covered = 0.0;
        let mut bound = top_gains(&mut heap, &gain, &chosen, k as usize);
        while (cover.seeds.len() as u32) < k.min(self.nodes) {
            let Some(Gain(g, v)) = heap.pop(&gain) else { break };
            if chosen[v as usize] {
                continue;
            }
            if g != gain[v as usize] {
                heap.push(Gain(gain[v as usize], v)); // stale: re-queue with the current gain
                continue;
            }
            chosen[v as usize] = true;
            covered += g;
            cover.seeds.push(v);
            cover.covered.push(covered);
            for &s in &members[offsets[v as usize] as usize..offsets[v as usize + 1] as usize] {
                if !std::mem::replace(&mut covered_set[s as usize], true) {
                    // Every other node of this set loses its weight.
                    let (c, i) = locate(&self.firsts, s as usize);
                    for &u in self.collections[c].set(i) {
                        gain[u as usize] -= weights[c];
                    }
                }
            }
            bound = bound.min(covered + top_gains(&mut heap, &gain, &chosen, k as usize));
        }
        cover.optimum_bound = bound;
        cover
    }
}

/// The sum of the `k` largest current gains of unchosen nodes. The heap's
/// entries are upper bounds of their nodes' gains: an entry that is current
/// when popped is the largest gain left. Stale entries are refreshed on the
/// way (which the greedy's next pick then saves), current ones pushed back.
fn top_gains(heap: &mut Queue, gain: &[f64], chosen: &[bool], k: usize) -> f64 {
    let mut top: Vec<Gain> = Vec::with_capacity(k);
    while top.len() < k {
        let Some(Gain(g, v)) = heap.pop(gain) else { break };
        if chosen[v as usize] {
            continue;
        }
        if g != gain[v as usize] {
            heap.push(Gain(gain[v as usize], v));
            continue;
        }
        top.push(Gain(g, v));
    }
    let sum = top.iter().map(|t| t.0).sum();
    top.into_iter().for_each(|t| heap.push(t));
    sum
}

/// The nodes in the order of a max-heap of (gain, lower id first) over all
/// nodes, holding in its heap only the nodes in some set. The others' gain
/// is that of no set and never changes, so they wait in id order outside
/// it: rounds of small RR collections on large graphs do not heap every node.
struct Queue {
    heap: BinaryHeap<Gain>,
    /// Nodes in no set, in increasing id; `idle[next_idle..]` not yet taken.
    idle: Vec<u32>,
    next_idle: usize,
}

impl Queue {
    /// The queue of every node v at `gain[v]`.
    fn new(gain: &[f64], in_some_set: impl Fn(usize) -> bool) -> Queue {
        let nodes = 0..gain.len() as u32;
        let heap = nodes.clone().filter(|&v| in_some_set(v as usize)).map(|v| Gain(gain[v as usize], v)).collect();
        let idle = nodes.filter(|&v| !in_some_set(v as usize)).collect();
        Queue { heap, idle, next_idle: 0 }
    }

    /// The greatest entry: the heap's top, or the next node in no set where
    /// that ranks higher (its gain is `gain[v]` for good).
    fn pop(&mut self, gain: &[f64]) -> Option<Gain> {
        let idle = self.idle.get(self.next_idle).map(|&v| Gain(gain[v as usize], v));
        let take_idle = match (self.heap.peek(), &idle) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(top), Some(waiting)) => top < waiting,
        };
        if !take_idle {
            return self.heap.pop();
        }
        self.next_idle += 1;
        idle
    }

    /// Queues `entry` (a node taken from `pop`, put back).
    fn push(&mut self, entry: Gain) {
        self.heap.push(entry);
    }
}

/// The nodes `0..n` in one range per core (at most 8: every range reads
/// all the sets).
fn node_ranges(n: usize) -> Vec<std::ops::Range<usize>> {
    let parts = rayon::current_num_threads().clamp(1, 8);
    (0..parts).map(|i| n * i / parts..n * (i + 1) / parts).collect()
}

/// `values` cut where each range of nodes starts (node `v` starts at index
/// `at(v)`), each piece with its range.
fn split_by<'v, T>(
    mut values: &'v mut [T],
    ranges: &[std::ops::Range<usize>],
    at: impl Fn(usize) -> usize,
) -> Vec<(std::ops::Range<usize>, &'v mut [T])> {
    let mut pieces = Vec::with_capacity(ranges.len());
    let mut taken = 0;
    for (i, range) in ranges.iter().enumerate() {
        let end = ranges.get(i + 1).map_or(taken + values.len(), |next| at(next.start));
        let (piece, rest) = values.split_at_mut(end - taken);
        pieces.push((range.clone(), piece));
        (values, taken) = (rest, end);
    }
    pieces
}

/// Calls `visit(global set id, node)` for every entry of every set, in order.
fn for_each_entry(collections: &[&RrSets], mut visit: impl FnMut(usize, u32)) {
    let mut id = 0;
    for c in collections {
        for i in 0..c.len() {
            c.set(i).iter().for_each(|&v| visit(id, v));
            id += 1;
        }
    }
}

/// (collection, index within it) of global set id `s`.
fn locate(firsts: &[usize], s: usize) -> (usize, usize) {
    let c = firsts.partition_point(|&f| f <= s) - 1;
    (c, s - firsts[c])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(list: &[&[u32]]) -> RrSets {
        let mut r = RrSets::new();
        for s in list {
            r.push(s);
        }
        r
    }

    /// `count` random RR sets over nodes 0..n, each of 1..=max_len distinct nodes.
    fn random_sets(rng: &mut tessera_sdk::SeedRng, n: u32, count: usize, max_len: u64) -> RrSets {
        let mut r = RrSets::new();
        for _ in 0..count {
            let len = 1 + rng.below(max_len) as usize;
            let mut set: Vec<u32> = (0..len).map(|_| rng.below(n as u64) as u32).collect();
            set.sort_unstable();
            set.dedup(); // RR sets hold each node once
            r.push(&set);
        }
        r
    }

    /// The sets of `r` that `seeds` covers.
    fn count(r: &RrSets, seeds: &[u32]) -> f64 {
        (0..r.len()).filter(|&i| r.set(i).iter().any(|v| seeds.contains(v))).count() as f64
    }

    #[test]
    fn the_index_is_the_same_on_any_number_of_cores() {
        let mut rng = tessera_sdk::SeedRng::new(4);
        let (a, b) = (random_sets(&mut rng, 97, 300, 12), random_sets(&mut rng, 97, 200, 30));
        let build = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let index = pool.install(|| CoverageIndex::new(&[&a, &b], 97));
            (index.offsets, index.members)
        };
        let (offsets, members) = build(1);
        for v in 0..97u32 {
            let mine = &members[offsets[v as usize] as usize..offsets[v as usize + 1] as usize];
            let expected: Vec<u32> =
                (0..500u32).filter(|&s| [&a, &b][(s >= 300) as usize].set(s as usize % 300).contains(&v)).collect();
            assert_eq!(mine, &expected[..], "node {v}: its sets, in order");
        }
        for threads in [2, 3, 8] {
            assert_eq!(build(threads), (offsets.clone(), members.clone()), "{threads} cores");
        }
    }

    #[test]
    fn greedy_finds_a_known_optimum_and_respects_weights() {
        // Nodes 0..6. {0} covers sets a,b,c; {1} covers d,e; {2} covers c,d;
        // the best 2-set is {0, 1}: all five sets.
        let r = sets(&[&[0, 3], &[0, 4], &[0, 2], &[1, 2], &[1, 5]]);
        let cover = greedy(&[Weighted { sets: &r, weight: 1.0 }], 6, 2);
        assert_eq!(cover.seeds, vec![0, 1]);
        assert_eq!(cover.covered, vec![3.0, 5.0]);
        // A second collection with heavy sets on node 5 changes the first pick.
        let heavy = sets(&[&[5], &[5]]);
        let cover = greedy(&[Weighted { sets: &r, weight: 1.0 }, Weighted { sets: &heavy, weight: 2.0 }], 6, 1);
        assert_eq!((cover.seeds.clone(), cover.covered.clone()), (vec![5], vec![5.0]));
        // Lazy evaluation gives plain greedy's answer: after 0, node 2 only adds set d.
        let cover = greedy(&[Weighted { sets: &r, weight: 1.0 }], 6, 3);
        assert_eq!(cover.covered, vec![3.0, 5.0, 5.0]);
    }

    /// Greedy by a full scan at every pick (every node, ties to the lower
    /// id), with the gains updated in the order `CoverageIndex` does.
    fn scanning_greedy(collections: &[Weighted], n: u32, k: u32) -> Cover {
        let sets: Vec<(usize, &[u32])> = collections
            .iter()
            .enumerate()
            .flat_map(|(c, w)| (0..w.sets.len()).map(move |i| (c, w.sets.set(i))))
            .collect();
        let weight = |s: usize| collections[sets[s].0].weight;
        let sets = &sets;
        let holding = |v: u32| (0..sets.len()).filter(move |&s| sets[s].1.contains(&v));
        let mut gain: Vec<f64> = (0..n).map(|v| holding(v).map(weight).sum()).collect();
        let (mut covered_set, mut chosen) = (vec![false; sets.len()], vec![false; n as usize]);
        let mut cover = Cover { seeds: vec![], covered: vec![], optimum_bound: f64::INFINITY };
        let ranked = |gain: &[f64], chosen: &[bool]| {
            let mut order: Vec<Gain> =
                (0..n).filter(|&v| !chosen[v as usize]).map(|v| Gain(gain[v as usize], v)).collect();
            order.sort_by(|a, b| b.cmp(a));
            order
        };
        let top =
            |gain: &[f64], chosen: &[bool]| ranked(gain, chosen).iter().take(k as usize).map(|g| g.0).sum::<f64>();
        let (mut covered, mut bound) = (0.0, top(&gain, &chosen));
        while (cover.seeds.len() as u32) < k.min(n) {
            let Gain(g, v) = ranked(&gain, &chosen).remove(0);
            chosen[v as usize] = true;
            covered += g;
            cover.seeds.push(v);
            cover.covered.push(covered);
            for s in holding(v) {
                if !std::mem::replace(&mut covered_set[s], true) {
                    sets[s].1.iter().for_each(|&u| gain[u as usize] -= weight(s));
                }
            }
            bound = bound.min(covered + top(&gain, &chosen));
        }
        cover.optimum_bound = bound;
        cover
    }

    #[test]
    fn lazy_greedy_is_the_scanning_greedy_with_nodes_in_no_set_and_any_weights() {
        let mut rng = tessera_sdk::SeedRng::new(21);
        for round in 0..40 {
            // Sets over 0..12 only, among 20 nodes: 8 in no set; k up to all.
            let (a, b) = (random_sets(&mut rng, 12, 6 + round % 7, 4), random_sets(&mut rng, 12, 5, 3));
            let weights = [Weighted { sets: &a, weight: 0.37 }, Weighted { sets: &b, weight: 1.9 }];
            for k in [1, 5, 14, 20] {
                assert_eq!(greedy(&weights, 20, k), scanning_greedy(&weights, 20, k), "round {round}, k = {k}");
            }
        }
    }

    #[test]
    fn greedy_matches_brute_force_on_random_instances() {
        let mut rng = tessera_sdk::SeedRng::new(3);
        for _ in 0..20 {
            let n = 8u32;
            let r = random_sets(&mut rng, n, 30, 3);
            let cover = greedy(&[Weighted { sets: &r, weight: 1.0 }], n, 2);
            // Plain (non-lazy) greedy by brute force.
            let count = |s: &[u32]| count(&r, s);
            let first = (0..n).max_by(|&a, &b| count(&[a]).total_cmp(&count(&[b])).then(b.cmp(&a))).unwrap();
            let best2 = (0..n).filter(|&v| v != first).map(|v| count(&[first, v])).fold(0.0, f64::max);
            assert_eq!(cover.covered[0], count(&[first]));
            assert_eq!(cover.covered[1], best2);
        }
    }

    #[test]
    fn the_optimum_bound_holds_and_is_never_looser_than_greedys() {
        let mut rng = tessera_sdk::SeedRng::new(11);
        for _ in 0..30 {
            let n = 9u32;
            let r = random_sets(&mut rng, n, 40, 4);
            let k = 3;
            let cover = greedy(&[Weighted { sets: &r, weight: 1.0 }], n, k);
            // The best 3-set by exhaustive search.
            let mut best = 0.0f64;
            for a in 0..n {
                for b in a + 1..n {
                    for c in b + 1..n {
                        best = best.max(count(&r, &[a, b, c]));
                    }
                }
            }
            let greedy_bound = cover.covered.last().unwrap() / (1.0 - 1.0 / std::f64::consts::E);
            assert!(cover.optimum_bound >= best, "{} < the optimum {best}", cover.optimum_bound);
            assert!(cover.optimum_bound <= greedy_bound + 1e-9, "{} > {greedy_bound}", cover.optimum_bound);
        }
    }
}
