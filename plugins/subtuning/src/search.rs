//! The finetuning profile and SubTuning's greedy search, over any scoring
//! function `score(S)` = validation accuracy of training the blocks `S` plus
//! a fresh head (the host's oracle, or a synthetic one in tests).

use tessera_sdk::{LayerInfo, Result};

/// A block the search may choose.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Position in the network ([`LayerInfo::position`]).
    pub position: u32,
    /// The block's name.
    pub name: String,
    /// Its parameters (what training it costs in memory).
    pub parameters: u64,
    /// Its forward FLOPs per example (what a task tuning it adds to Siamese
    /// inference).
    pub flops: u64,
}

/// The blocks worth choosing among: every layer with parameters but the
/// head (the last layer), which always trains.
pub fn candidates(layers: &[LayerInfo]) -> Vec<Candidate> {
    let Some(head) = layers.iter().map(|l| l.position).max() else { return vec![] };
    layers
        .iter()
        .filter(|l| l.position != head && l.parameters > 0)
        .map(|l| Candidate { position: l.position, name: l.name.to_string(), parameters: l.parameters, flops: l.flops })
        .collect()
}

/// Limits on the chosen set.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    /// At most this many blocks (0 = no limit).
    pub max_blocks: usize,
    /// At most this many forward FLOPs per example of a task's own in
    /// Siamese inference, [`siamese_flops`] (0 = no budget).
    pub flops_budget: u64,
}

impl Limits {
    fn allow(&self, set: &[u32], candidates: &[Candidate]) -> bool {
        (self.max_blocks == 0 || set.len() <= self.max_blocks)
            && (self.flops_budget == 0 || siamese_flops(set, candidates) <= self.flops_budget)
    }
}

/// What tuning `set` adds to Siamese inference, per example: the FLOPs of
/// every block from the first tuned one on (they see the task's own
/// activations, tuned or not); 0 for the head alone.
pub fn siamese_flops(set: &[u32], candidates: &[Candidate]) -> u64 {
    match set.iter().min() {
        Some(&first) => candidates.iter().filter(|c| c.position >= first).map(|c| c.flops).sum(),
        None => 0,
    }
}

/// What a step of the search did to a candidate block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// The starting set.
    Start,
    /// Tried adding the block.
    Add,
    /// Tried removing the block.
    Remove,
}

impl Move {
    /// `start`, `add` or `remove`.
    pub fn as_str(self) -> &'static str {
        match self {
            Move::Start => "start",
            Move::Add => "add",
            Move::Remove => "remove",
        }
    }
}

/// One scored set on the search's path.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// The step (0 = the start).
    pub step: usize,
    /// What was tried.
    pub change: Move,
    /// The block added or removed (None at the start).
    pub block: Option<u32>,
    /// The set scored, ascending.
    pub set: Vec<u32>,
    /// Its validation accuracy.
    pub score: f64,
    /// Whether the search moved to this set.
    pub taken: bool,
}

/// Where a search ended and how it got there.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    /// The chosen blocks, ascending.
    pub set: Vec<u32>,
    /// Their validation accuracy.
    pub score: f64,
    /// Every set scored, in order.
    pub path: Vec<Trial>,
}

impl SearchResult {
    /// The best-scoring set on the path within `limits` (ties: fewer blocks,
    /// then the earlier), SubTuning's "keep the best set seen".
    pub fn best_seen(&self, limits: &Limits, candidates: &[Candidate]) -> (Vec<u32>, f64) {
        let mut best = (self.set.clone(), self.score);
        for t in self.path.iter().filter(|t| limits.allow(&t.set, candidates)) {
            if t.score > best.1 || (t.score == best.1 && t.set.len() < best.0.len()) {
                best = (t.set.clone(), t.score);
            }
        }
        best
    }
}

fn with(set: &[u32], block: u32) -> Vec<u32> {
    let mut s: Vec<u32> = set.iter().copied().chain([block]).collect();
    s.sort_unstable();
    s
}

fn without(set: &[u32], block: u32) -> Vec<u32> {
    set.iter().copied().filter(|&b| b != block).collect()
}

/// The finetuning profile: the score of each candidate block trained alone
/// (with the head), in the candidates' order.
pub fn profile(candidates: &[Candidate], score: &mut dyn FnMut(&[u32]) -> Result<f64>) -> Result<Vec<f64>> {
    candidates.iter().map(|c| score(&[c.position])).collect()
}

/// Greedy forward selection: from the empty set (a linear probe), add the
/// block whose addition scores best, while that gains at least `epsilon` and
/// the limits allow. Ties go to the block with fewer parameters.
pub fn add_greedily(
    candidates: &[Candidate],
    limits: &Limits,
    epsilon: f64,
    score: &mut dyn FnMut(&[u32]) -> Result<f64>,
) -> Result<SearchResult> {
    let mut set = vec![];
    let mut current = score(&set)?;
    let mut path = vec![Trial { step: 0, change: Move::Start, block: None, set: vec![], score: current, taken: true }];
    for step in 1.. {
        let mut best: Option<(usize, &Candidate, f64)> = None;
        for c in candidates.iter().filter(|c| !set.contains(&c.position)) {
            let trial = with(&set, c.position);
            if !limits.allow(&trial, candidates) {
                continue;
            }
            let s = score(&trial)?;
            path.push(Trial { step, change: Move::Add, block: Some(c.position), set: trial, score: s, taken: false });
            if best.is_none_or(|(_, b, bs)| s > bs || (s == bs && c.parameters < b.parameters)) {
                best = Some((path.len() - 1, c, s));
            }
        }
        match best {
            Some((at, c, s)) if s - current >= epsilon => {
                path[at].taken = true;
                set = with(&set, c.position);
                current = s;
            }
            _ => break,
        }
    }
    Ok(SearchResult { set, score: current, path })
}

/// Greedy backward elimination: from every candidate block, remove the block
/// whose removal scores best, while that loses less than `epsilon`, and
/// always while the set breaks the limits.
pub fn remove_greedily(
    candidates: &[Candidate],
    limits: &Limits,
    epsilon: f64,
    score: &mut dyn FnMut(&[u32]) -> Result<f64>,
) -> Result<SearchResult> {
    let mut set: Vec<u32> = candidates.iter().map(|c| c.position).collect();
    set.sort_unstable();
    let mut current = score(&set)?;
    let mut path =
        vec![Trial { step: 0, change: Move::Start, block: None, set: set.clone(), score: current, taken: true }];
    for step in 1.. {
        if set.is_empty() {
            break;
        }
        let mut best: Option<(usize, u32, f64)> = None;
        for &b in &set {
            let trial = without(&set, b);
            let s = score(&trial)?;
            path.push(Trial { step, change: Move::Remove, block: Some(b), set: trial, score: s, taken: false });
            if best.is_none_or(|(_, _, bs)| s > bs) {
                best = Some((path.len() - 1, b, s));
            }
        }
        let (at, b, s) = best.expect("a non-empty set");
        if !limits.allow(&set, candidates) || s > current - epsilon {
            path[at].taken = true;
            set = without(&set, b);
            current = s;
        } else {
            break;
        }
    }
    Ok(SearchResult { set, score: current, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(n: u32) -> Vec<Candidate> {
        (0..n)
            .map(|p| Candidate { position: p, name: format!("b{p}"), parameters: 10 + p as u64, flops: 100 })
            .collect()
    }

    /// A synthetic oracle whose best set is {3, 5}: each of them adds 0.1,
    /// together 0.05 more; every other block costs 0.02; the probe scores 0.5.
    fn known(set: &[u32]) -> Result<f64> {
        let has = |b| set.contains(&b);
        let mut s = 0.5 + 0.1 * has(3) as u8 as f64 + 0.1 * has(5) as u8 as f64;
        if has(3) && has(5) {
            s += 0.05;
        }
        s -= 0.02 * set.iter().filter(|&&b| b != 3 && b != 5).count() as f64;
        Ok(s)
    }

    #[test]
    fn both_directions_find_the_known_best_set() {
        let cands = blocks(7);
        let mut calls = 0;
        let mut score = |s: &[u32]| {
            calls += 1;
            known(s)
        };
        let forward = add_greedily(&cands, &Limits::default(), 0.01, &mut score).unwrap();
        assert_eq!(forward.set, vec![3, 5]);
        assert!((forward.score - 0.75).abs() < 1e-12);
        // Start, 7 candidates, 6, then 5 that gain nothing.
        assert_eq!(forward.path.len(), 1 + 7 + 6 + 5);
        assert_eq!(calls, forward.path.len());
        let backward = remove_greedily(&cands, &Limits::default(), 0.01, &mut known).unwrap();
        assert_eq!(backward.set, vec![3, 5]);
        let taken: Vec<Option<u32>> = backward.path.iter().filter(|t| t.taken).map(|t| t.block).collect();
        assert_eq!(taken.len(), 6, "the start and five removals: {taken:?}");
    }

    #[test]
    fn epsilon_and_limits_stop_the_search() {
        let cands = blocks(7);
        let greedy = add_greedily(&cands, &Limits::default(), 0.2, &mut known).unwrap();
        assert!(greedy.set.is_empty(), "no single block gains 0.2");
        let one = add_greedily(&cands, &Limits { max_blocks: 1, flops_budget: 0 }, 0.01, &mut known).unwrap();
        assert_eq!(one.set, vec![3], "ties go to the smaller block");
        // 100 FLOPs a block: 300 allows sets from block 4 on.
        assert_eq!(siamese_flops(&[3, 5], &cands), 400);
        let budget = Limits { max_blocks: 0, flops_budget: 300 };
        assert_eq!(add_greedily(&cands, &budget, 0.01, &mut known).unwrap().set, vec![5]);
        let shrunk = remove_greedily(&cands, &Limits { max_blocks: 1, flops_budget: 0 }, 0.01, &mut known).unwrap();
        assert_eq!(shrunk.set.len(), 1, "removal continues until the limits hold");
        assert!(shrunk.set == vec![3] || shrunk.set == vec![5]);
    }

    #[test]
    fn the_best_set_seen_can_beat_where_the_search_stopped() {
        // Removing from all: only the full set is good, every removal costs 0.005 < ε.
        let score = |s: &[u32]| Ok(0.9 - 0.005 * (4 - s.len()) as f64);
        let result = remove_greedily(&blocks(4), &Limits::default(), 0.01, &mut { score }).unwrap();
        assert!(result.set.is_empty(), "each step loses less than ε");
        let (best, s) = result.best_seen(&Limits::default(), &blocks(4));
        assert_eq!((best.len(), s), (4, 0.9));
    }

    #[test]
    fn the_head_and_parameter_free_blocks_are_not_candidates() {
        let layer = |p: u32, name: &str, parameters| LayerInfo::new(name, parameters, 0, p);
        let layers = [layer(0, "stem", 5), layer(1, "layer1.0", 9), layer(2, "pool", 0), layer(3, "head", 4)];
        let names: Vec<String> = candidates(&layers).into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["stem", "layer1.0"]);
    }
}
