//! The two finetuners: `profile` (each block alone) and `greedy` (SubTuning's
//! selection).

use tessera_sdk::{
    params, Cell, Component, Error, Finetuner, Host, LayerInfo, Oracle, Report, Result, Selection, State,
};

use crate::search::{self, Candidate, Limits, SearchResult};

params! {
    /// Parameters of [`Profile`].
    pub struct ProfileParams {
        /// k of the k-fold cross-validation on the training split (1 = score on the validation split).
        pub folds: u32 = 5,
        /// What then trains: `best-block` (the best block alone, if it beats the linear probe by `epsilon`) or `none` (the head only).
        pub select: String = "best-block".into(),
        /// The least gain over the linear probe for `best-block` to pick a block.
        pub epsilon: f64 = 0.01,
    }
}

/// The finetuning profile: the validation accuracy of training each block
/// alone (with a fresh head) from the pretrained weights. L trainings.
pub struct Profile {
    params: ProfileParams,
}

impl Component for Profile {
    /// It chooses once, before training, and keeps nothing after: a new
    /// instance continues as well.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "profile";
    const SUMMARY: &'static str =
        "Finetuning profile: k-fold validation accuracy of training each block alone plus a fresh head.";
    type Params = ProfileParams;

    fn new(params: ProfileParams) -> Result<Self> {
        if !matches!(params.select.as_str(), "best-block" | "none") {
            return Err(Error::invalid_param(
                "select",
                format!("unknown `{}` (known: best-block, none)", params.select),
            ));
        }
        Ok(Profile { params })
    }
}

/// Scores through `oracle`, reporting progress and checking for cancellation.
fn scorer<'o, 'a>(
    oracle: &'o mut Oracle<'a>,
    host: &'o Host,
    folds: u32,
    expected: u64,
) -> impl FnMut(&[u32]) -> Result<f64> + use<'o, 'a> {
    let mut done = 0;
    move |set: &[u32]| {
        host.check_cancelled()?;
        let s = oracle.score(set, folds)?;
        done += 1;
        host.progress(done, expected, "oracle trainings");
        Ok(s)
    }
}

fn names(set: &[u32], candidates: &[Candidate]) -> String {
    let names: Vec<&str> = candidates.iter().filter(|c| set.contains(&c.position)).map(|c| c.name.as_str()).collect();
    if names.is_empty() {
        "(head only)".into()
    } else {
        names.join(" ")
    }
}

/// The profile as a curve (x = block position) and a table.
fn report_profile(report: &mut Report, candidates: &[Candidate], scores: &[f64], probe: f64) {
    let legend: Vec<String> = candidates.iter().map(|c| format!("{} {}", c.position, c.name)).collect();
    report.series(
        "finetuning_profile",
        &format!("block ({})", legend.join(", ")),
        "validation accuracy",
        candidates.iter().map(|c| c.position as f64).collect(),
        scores.to_vec(),
    );
    let rows = candidates
        .iter()
        .zip(scores)
        .map(|(c, &s)| {
            vec![
                Cell::Integer(c.position as i64),
                Cell::Text(c.name.as_str().into()),
                Cell::Integer(c.parameters as i64),
                Cell::Number(s),
                Cell::Number(s - probe),
            ]
        })
        .collect();
    report.table("finetuning_profile", &["position", "block", "parameters", "accuracy", "gain_over_probe"], rows);
}

impl Finetuner for Profile {
    fn select(&mut self, layers: &[LayerInfo], oracle: &mut Oracle, host: &Host) -> Result<Selection> {
        let candidates = search::candidates(layers);
        let mut score = scorer(oracle, host, self.params.folds, candidates.len() as u64 + 1);
        let probe = score(&[])?;
        let scores = search::profile(&candidates, &mut score)?;
        let mut report = Report::new();
        report.scalar("linear_probe_score", probe);
        report_profile(&mut report, &candidates, &scores, probe);
        let best = candidates.iter().zip(&scores).fold(None, |best: Option<(&Candidate, f64)>, (c, &s)| match best {
            Some((_, b)) if b >= s => best,
            _ => Some((c, s)),
        });
        let mut trainable = vec![];
        if let Some((c, s)) = best {
            report.scalar("best_block_position", c.position as f64).scalar("best_block_score", s);
            if self.params.select == "best-block" && s - probe >= self.params.epsilon {
                trainable.push(c.position);
            }
        }
        report.headline("chosen_score", if trainable.is_empty() { probe } else { best.map_or(probe, |b| b.1) });
        log::info!("profile: training {}", names(&trainable, &candidates));
        Ok(Selection::layers(trainable, report))
    }
}

params! {
    /// Parameters of [`Greedy`].
    pub struct GreedyParams {
        /// k of the k-fold cross-validation on the training split (1 = score on the validation split).
        pub folds: u32 = 5,
        /// Stop adding when the best addition gains less than this (removing: when the best removal loses this much or more).
        pub epsilon: f64 = 0.01,
        /// At most this many blocks (0 = no limit).
        pub max_blocks: u64 = 0,
        /// At most this many forward FLOPs per example that the task adds in Siamese inference: those of every block from its first tuned block on (0 = no budget).
        pub flops_budget: u64 = 0,
        /// `none` (add blocks to a linear probe), `all` (remove blocks from full finetuning) or `best-of-both`.
        pub start: String = "none".into(),
        /// Return the best-scoring set seen on the path (within the limits) rather than where the search stopped.
        pub keep_best: bool = false,
    }
}

/// SubTuning's greedy selection of the blocks to finetune.
pub struct Greedy {
    params: GreedyParams,
}

impl Component for Greedy {
    /// It chooses once, before training, and keeps nothing after: a new
    /// instance continues as well.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "greedy";
    const SUMMARY: &'static str =
        "SubTuning: greedily add (or remove) the block that most improves k-fold validation accuracy, until the gain is below epsilon or a block/FLOPs budget is reached.";
    type Params = GreedyParams;

    fn new(params: GreedyParams) -> Result<Self> {
        if !matches!(params.start.as_str(), "none" | "all" | "best-of-both") {
            return Err(Error::invalid_param(
                "start",
                format!("unknown `{}` (known: none, all, best-of-both)", params.start),
            ));
        }
        if params.folds == 0 {
            return Err(Error::invalid_param("folds", "must be at least 1"));
        }
        Ok(Greedy { params })
    }
}

impl Greedy {
    /// Runs the searches the parameters ask for; returns each with its name.
    fn search(
        &self,
        candidates: &[Candidate],
        limits: &Limits,
        score: &mut dyn FnMut(&[u32]) -> Result<f64>,
    ) -> Result<Vec<(&'static str, SearchResult)>> {
        let eps = self.params.epsilon;
        let mut out = vec![];
        if self.params.start != "all" {
            out.push(("add", search::add_greedily(candidates, limits, eps, score)?));
        }
        if self.params.start != "none" {
            out.push(("remove", search::remove_greedily(candidates, limits, eps, score)?));
        }
        Ok(out)
    }
}

impl Finetuner for Greedy {
    fn select(&mut self, layers: &[LayerInfo], oracle: &mut Oracle, host: &Host) -> Result<Selection> {
        let candidates = search::candidates(layers);
        let limits = Limits { max_blocks: self.params.max_blocks as usize, flops_budget: self.params.flops_budget };
        let n = candidates.len() as u64;
        let mut score = scorer(oracle, host, self.params.folds, n * (n + 1) / 2 + 1);
        let searches = self.search(&candidates, &limits, &mut score)?;
        let mut report = Report::new();
        let mut rows = vec![];
        let mut chosen: Option<(Vec<u32>, f64)> = None;
        for (direction, result) in &searches {
            let end = if self.params.keep_best {
                result.best_seen(&limits, &candidates)
            } else {
                (result.set.clone(), result.score)
            };
            report
                .scalar(&format!("{direction}_score"), end.1)
                .scalar(&format!("{direction}_blocks"), end.0.len() as f64);
            let better = match &chosen {
                None => true,
                Some((set, s)) => end.1 > *s || (end.1 == *s && end.0.len() < set.len()),
            };
            if better {
                chosen = Some(end);
            }
            for t in &result.path {
                let block = t.block.and_then(|b| candidates.iter().find(|c| c.position == b));
                rows.push(vec![
                    Cell::Text((*direction).into()),
                    Cell::Integer(t.step as i64),
                    Cell::Text(t.change.as_str().into()),
                    Cell::Text(block.map_or("", |c| c.name.as_str()).into()),
                    Cell::Text(names(&t.set, &candidates).into()),
                    Cell::Number(t.score),
                    Cell::Text(if t.taken { "yes" } else { "" }.into()),
                ]);
            }
            let taken: Vec<&search::Trial> = result.path.iter().filter(|t| t.taken).collect();
            report.series(
                &format!("search_path/{direction}"),
                "search step",
                "validation accuracy",
                taken.iter().map(|t| t.step as f64).collect(),
                taken.iter().map(|t| t.score).collect(),
            );
            if *direction == "add" {
                // The first step scored every block alone: the profile, for free.
                let probe = result.path[0].score;
                let singles: Vec<(Candidate, f64)> = result
                    .path
                    .iter()
                    .filter(|t| t.step == 1)
                    .filter_map(|t| Some((candidates.iter().find(|c| Some(c.position) == t.block)?.clone(), t.score)))
                    .collect();
                let (cands, scores): (Vec<Candidate>, Vec<f64>) = singles.into_iter().unzip();
                report.scalar("linear_probe_score", probe);
                report_profile(&mut report, &cands, &scores, probe);
            }
        }
        report.table("greedy_path", &["search", "step", "move", "block", "set", "score", "taken"], rows);
        let (set, s) = chosen.expect("at least one search");
        let flops = search::siamese_flops(&set, &candidates);
        report
            .headline("chosen_score", s)
            .scalar("chosen_blocks", set.len() as f64)
            .scalar("chosen_flops", flops as f64);
        report.table(
            "chosen_blocks",
            &["position", "block"],
            candidates
                .iter()
                .filter(|c| set.contains(&c.position))
                .map(|c| vec![Cell::Integer(c.position as i64), Cell::Text(c.name.as_str().into())])
                .collect(),
        );
        log::info!("greedy: chose {} (validation accuracy {s:.4})", names(&set, &candidates));
        Ok(Selection::layers(set, report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::testing::{ScriptedOracle, TestHost};
    use tessera_sdk::Component;

    /// A synthetic oracle with known scores: blocks 2 and 3 help (0.1 each),
    /// the others hurt (0.03 each).
    fn synthetic() -> ScriptedOracle {
        ScriptedOracle::new(|trainable, _| {
            trainable.iter().fold(0.6, |s, &b| if b == 2 || b == 3 { s + 0.1 } else { s - 0.03 })
        })
    }

    fn layers() -> Vec<LayerInfo> {
        ["stem", "layer1.0", "layer2.0", "layer3.0", "pool", "head"]
            .iter()
            .enumerate()
            .map(|(i, name)| LayerInfo::new(name, if *name == "pool" { 0 } else { 100 }, 1000, i as u32))
            .collect()
    }

    /// The finetuner's selection, and every (blocks, folds) it asked about.
    fn run<F: Finetuner>(finetuner: &mut F) -> (Selection, Vec<(Vec<u32>, u32)>) {
        let mut oracle = synthetic();
        let host = TestHost::new(0);
        let chosen = oracle.with_oracle(|o| finetuner.select(&layers(), o, &host.host())).unwrap();
        (chosen, oracle.queries.iter().map(|q| (q.trainable.to_vec(), q.folds)).collect())
    }

    #[test]
    fn greedy_through_the_oracle_picks_the_known_best_set_and_reports_its_path() {
        for start in ["none", "all", "best-of-both"] {
            let mut greedy = Greedy::new(GreedyParams { start: start.into(), ..Default::default() }).unwrap();
            let (chosen, calls) = run(&mut greedy);
            assert_eq!(chosen.trainable.to_vec(), vec![2, 3], "start = {start}");
            assert!(calls.iter().all(|(set, folds)| *folds == 5 && !set.contains(&4) && !set.contains(&5)));
            let path = chosen.report.tables.iter().find(|t| t.name.as_str() == "greedy_path").unwrap();
            assert_eq!(path.rows.len(), calls.len(), "every oracle call is on the path");
            let score = chosen.report.scalars.iter().find(|s| s.name.as_str() == "chosen_score").unwrap().value;
            assert!((score - 0.8).abs() < 1e-12);
        }
    }

    #[test]
    fn the_profile_scores_each_block_alone() {
        let (chosen, calls) = run(&mut Profile::new(ProfileParams::default()).unwrap());
        let sets: Vec<Vec<u32>> = calls.into_iter().map(|(s, _)| s).collect();
        assert_eq!(sets, vec![vec![], vec![0], vec![1], vec![2], vec![3]]);
        assert_eq!(chosen.trainable.to_vec(), vec![2], "the best block, the first of a tie");
        let profile = chosen.report.series.iter().find(|s| s.name.as_str() == "finetuning_profile").unwrap();
        let want = [0.57, 0.57, 0.7, 0.7];
        assert!(profile.y.iter().zip(want).all(|(y, w)| (y - w).abs() < 1e-12), "{:?}", profile.y);
    }
}
