//! The two metrics. Both run in population experiments: the host hands them
//! the population's prediction matrices once, as one observation.

use tessera_sdk::{
    observation, params, Array, Cell, Checkpoint, Component, Error, Host, Metric, ObservationRequest, Observations,
    Report, Result, State,
};

use crate::profiles::{
    line_fit, point_stats, probit, select_negative, split_by_run, BinnedProfiles, Correlation, PointClass, PointStats,
    ScoreMatrix, Taxonomy,
};

/// The population as a metric reads it.
struct Scores<'a> {
    models: usize,
    points: usize,
    /// a_z(θ), m × n (borrowed from the observation: no copy of the matrix).
    scores: std::borrow::Cow<'a, [f32]>,
    /// The points' labels.
    labels: Vec<i64>,
    /// Global accuracy A(θ) of each model on the accuracy split.
    accuracy: Vec<f64>,
    /// The training run of each model.
    runs: Vec<i64>,
}

impl Scores<'_> {
    fn matrix(&self) -> ScoreMatrix<'_> {
        ScoreMatrix { models: self.models, points: self.points, scores: &self.scores }
    }
}

/// What both metrics take: which scores, on which points, against which accuracy.
struct Setup {
    split: String,
    accuracy_split: String,
    score: String,
    probit: bool,
    correlation: Correlation,
    min_accuracy: f64,
}

impl Setup {
    fn new(
        split: &str,
        accuracy_split: &str,
        score: &str,
        probit: bool,
        correlation: &str,
        min_accuracy: f64,
    ) -> Result<Self> {
        if !["correct", "probability"].contains(&score) {
            return Err(Error::invalid_param(
                "score",
                "must be `correct` (1[f(x) = y]) or `probability` (of the true label)",
            ));
        }
        let correlation = Correlation::parse(correlation)
            .ok_or_else(|| Error::invalid_param("correlation", "must be `pearson` or `spearman`"))?;
        for (key, value) in [("split", split), ("accuracy_split", accuracy_split)] {
            if value.is_empty() {
                return Err(Error::invalid_param(
                    key,
                    "must name a split the population was evaluated on, e.g. `test`",
                ));
            }
        }
        Ok(Setup {
            split: split.into(),
            accuracy_split: accuracy_split.into(),
            score: score.into(),
            probit,
            correlation,
            min_accuracy,
        })
    }

    /// The members taken into account: global accuracy at least `min_accuracy`.
    fn members(&self, scores: &Scores) -> Vec<usize> {
        (0..scores.models).filter(|&i| scores.accuracy[i] >= self.min_accuracy).collect()
    }

    fn score_kind(&self) -> &'static str {
        if self.score == "correct" {
            observation::POPULATION_CORRECT
        } else {
            observation::POPULATION_TRUE_PROBABILITY
        }
    }

    fn requires(&self) -> Vec<ObservationRequest> {
        vec![
            ObservationRequest::new(&self.split, self.score_kind()),
            ObservationRequest::new(&self.split, observation::LABELS),
            ObservationRequest::new(&self.split, observation::POPULATION_RUN),
            ObservationRequest::new(&self.accuracy_split, observation::POPULATION_CORRECT),
        ]
    }

    fn read<'a>(&self, observations: &Observations<'a>) -> Result<Scores<'a>> {
        let array = observations.get(&self.split, self.score_kind())?;
        let (models, points) = match array.shape.as_slice() {
            [m, n] => (*m as usize, *n as usize),
            other => {
                return Err(Error::msg(format!("`{}` has shape {other:?}, not [models, points]", self.score_kind())))
            }
        };
        let scores = observations.f32(&self.split, self.score_kind())?.into();
        let labels = observations.i64(&self.split, observation::LABELS)?.to_vec();
        let runs = observations.i64(&self.split, observation::POPULATION_RUN)?.to_vec();
        let correct = observations.f32(&self.accuracy_split, observation::POPULATION_CORRECT)?;
        if models < 2 || correct.len() % models != 0 {
            return Err(Error::msg(format!("the population has {models} members; profiles need at least 2")));
        }
        let all: Vec<usize> = (0..models).collect();
        let accuracy_points = correct.len() / models;
        let accuracy = ScoreMatrix { models, points: accuracy_points, scores: correct }.row_means(&all, None);
        Ok(Scores { models, points, scores, labels, accuracy, runs })
    }

    /// x of each of `rows`: A(θ), or Φ⁻¹(A(θ)) on probit scale.
    fn x(&self, scores: &Scores, rows: &[usize]) -> Vec<f64> {
        rows.iter().map(|&i| if self.probit { probit(scores.accuracy[i]) } else { scores.accuracy[i] }).collect()
    }

    fn x_label(&self) -> String {
        let a = format!("global accuracy A on `{}`", self.accuracy_split);
        if self.probit {
            format!("probit({a})")
        } else {
            a
        }
    }
}

params! {
    /// Parameters of [`Profile`].
    pub struct ProfileParams {
        /// The split whose points are profiled.
        pub split: String = "test".into(),
        /// The split whose accuracy is the global accuracy A(θ).
        pub accuracy_split: String = "test".into(),
        /// The pointwise score a_z: `correct` (1[f(x) = y]) or `probability` (of the true label).
        pub score: String = "correct".into(),
        /// Correlate with Φ⁻¹(A) instead of A (as accuracy-on-the-line plots do).
        pub probit: bool = false,
        /// Leave out members whose global accuracy is below this (e.g. near-chance ones).
        pub min_accuracy: f64 = 0.0,
        /// The correlation the taxonomy uses: `pearson` or `spearman`.
        pub correlation: String = "pearson".into(),
        /// Compatible: correlation with A at least this.
        pub compatible: f64 = 0.3,
        /// Negative: correlation with A at most this.
        pub negative: f64 = -0.1,
        /// Accuracy bins of the profiles A ↦ E[a_z | A].
        pub bins: u64 = 10,
        /// Profiles plotted per class (the most typical points of each).
        pub examples_per_class: u64 = 3,
    }
}

/// Per-point profiles and the taxonomy of a split's points.
pub struct Profile {
    params: ProfileParams,
    setup: Setup,
    taxonomy: Taxonomy,
    report: Option<Report>,
}

impl Component for Profile {
    /// Each observation replaces its whole report: a new instance that
    /// observes the next checkpoint reports the same.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "profile";
    const SUMMARY: &'static str =
        "Per-point profiles A -> E[a_z | A] over a population: correlations, slopes, and compatible / incompatible / negative points.";
    type Params = ProfileParams;

    fn new(params: ProfileParams) -> Result<Self> {
        let setup = Setup::new(
            &params.split,
            &params.accuracy_split,
            &params.score,
            params.probit,
            &params.correlation,
            params.min_accuracy,
        )?;
        if params.negative.partial_cmp(&params.compatible) != Some(std::cmp::Ordering::Less) {
            return Err(Error::invalid_param("negative", "must be below `compatible`"));
        }
        let taxonomy =
            Taxonomy { correlation: setup.correlation, compatible: params.compatible, negative: params.negative };
        Ok(Profile { params, setup, taxonomy, report: None })
    }
}

impl Metric for Profile {
    fn requires(&self) -> Vec<ObservationRequest> {
        self.setup.requires()
    }

    fn observe(&mut self, _checkpoint: &Checkpoint, observations: &Observations, host: &Host) -> Result<()> {
        let scores = self.setup.read(observations)?;
        host.check_cancelled()?;
        let rows = self.setup.members(&scores);
        if rows.len() < 2 {
            return Err(Error::invalid_param(
                "min_accuracy",
                format!("leaves {} of {} members", rows.len(), scores.models),
            ));
        }
        let x = self.setup.x(&scores, &rows);
        let matrix = scores.matrix();
        let stats = point_stats(&matrix, &rows, &x);
        let classes: Vec<PointClass> = stats.iter().map(|s| self.taxonomy.classify(s)).collect();
        let mut report = Report::new();
        report.scalar("members", rows.len() as f64).scalar("points", scores.points as f64);
        let n = scores.points.max(1) as f64;
        for class in PointClass::ALL {
            let count = classes.iter().filter(|&&c| c == class).count() as f64;
            report.scalar(class.as_str(), count).scalar(&format!("{}_fraction", class.as_str()), count / n);
        }
        report.scalar("constant_points", stats.iter().filter(|s| s.constant).count() as f64);
        let r = |s: &PointStats| self.setup.correlation.of(s);
        report.defined("mean_correlation", stats.iter().map(r).sum::<f64>() / n);
        let (lo, hi) =
            rows.iter().map(|&i| scores.accuracy[i]).fold((f64::MAX, f64::MIN), |(l, h), a| (l.min(a), h.max(a)));
        report.scalar("min_global_accuracy", lo).scalar("max_global_accuracy", hi);

        // The histogram of correlations (constant points left out).
        let edges = 20;
        let mut counts = vec![0.0; edges];
        for s in stats.iter().filter(|s| !s.constant) {
            counts[(((r(s) + 1.0) / 2.0 * edges as f64) as usize).min(edges - 1)] += 1.0;
        }
        let centres: Vec<f64> = (0..edges).map(|b| -1.0 + (b as f64 + 0.5) * 2.0 / edges as f64).collect();
        let name = format!("{:?} correlation of a_z with A", self.setup.correlation).to_lowercase();
        report.series("correlation_histogram", &name, "points", centres, counts);

        // Profiles: the mean profile of each class, and a few typical points.
        let x_label = self.setup.x_label();
        let y_label = format!("E[a_z | A] ({})", self.setup.score);
        let profiles = BinnedProfiles::new(&matrix, &rows, &x, self.params.bins as usize);
        for class in PointClass::ALL {
            let mut members: Vec<usize> = (0..scores.points).filter(|&z| classes[z] == class).collect();
            if members.is_empty() {
                continue;
            }
            let binned = profiles.mean_of(&members);
            report.series(
                &format!("class-profiles/{} ({} points)", class.as_str(), members.len()),
                &x_label,
                &y_label,
                binned.iter().map(|b| b.0).collect(),
                binned.iter().map(|b| b.1).collect(),
            );
            // Typical points: the strongest correlations for compatible and
            // negative, the weakest (non-constant first) for incompatible.
            members.sort_by(|&a, &b| {
                let key = |z: usize| match class {
                    PointClass::Compatible => -r(&stats[z]),
                    PointClass::Negative => r(&stats[z]),
                    PointClass::Incompatible => r(&stats[z]).abs() + if stats[z].constant { 2.0 } else { 0.0 },
                };
                key(a).total_cmp(&key(b)).then(a.cmp(&b))
            });
            for &z in members.iter().take(self.params.examples_per_class as usize) {
                let profile = profiles.of(z);
                report.series(
                    &format!(
                        "profiles-{}/point {z} (label {}, r = {:.2})",
                        class.as_str(),
                        scores.labels[z],
                        r(&stats[z])
                    ),
                    &x_label,
                    &y_label,
                    profile.iter().map(|p| p.0).collect(),
                    profile.iter().map(|p| p.1).collect(),
                );
            }
        }
        let rows = (0..scores.points).map(|z| {
            let s = &stats[z];
            vec![
                Cell::Integer(z as i64),
                Cell::Integer(scores.labels[z]),
                Cell::Number(s.mean),
                Cell::Number(s.pearson),
                Cell::Number(s.spearman),
                Cell::Number(s.slope),
                Cell::Text(classes[z].as_str().into()),
            ]
        });
        report.table(
            "points",
            &["point", "label", "mean_score", "pearson", "spearman", "slope", "class"],
            rows.collect(),
        );
        // Every point's profile: E[a_z | A] in each non-empty accuracy bin.
        let mut columns = vec!["point".to_string()];
        columns.extend(profiles.centres.iter().zip(&profiles.counts).map(|(c, k)| format!("A={c:.3} ({k} models)")));
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        let rows = (0..scores.points).map(|z| {
            std::iter::once(Cell::Integer(z as i64)).chain(profiles.means.iter().map(|m| Cell::Number(m[z]))).collect()
        });
        report.table("profiles", &columns, rows.collect());
        self.report = Some(report);
        Ok(())
    }

    fn finish(&mut self, _host: &Host) -> Result<Report> {
        self.report.take().ok_or_else(|| Error::no_population(Self::NAME, ""))
    }
}

params! {
    /// Parameters of [`NegSubset`].
    pub struct NegSubsetParams {
        /// The split the subset is chosen from.
        pub split: String = "test".into(),
        /// The split whose accuracy is the global accuracy A(θ).
        pub accuracy_split: String = "test".into(),
        /// The pointwise score used for selection: `correct` or `probability`.
        pub score: String = "correct".into(),
        /// Select on correlation with Φ⁻¹(A) instead of A.
        pub probit: bool = false,
        /// Leave out members whose global accuracy is below this (e.g. near-chance ones).
        pub min_accuracy: f64 = 0.0,
        /// `pearson` or `spearman`.
        pub correlation: String = "pearson".into(),
        /// Points in the subset, split evenly over the classes (like
        /// CIFAR-10-NEG's 100 per class).
        pub size: u64 = 100,
        /// Only points whose correlation on the selection half is below this.
        pub max_correlation: f64 = 0.0,
        /// Repeat the protocol over this many random halvings of the runs and
        /// report the held-out correlation's mean and spread (tables and plots
        /// show the first halving).
        pub halvings: u64 = 10,
    }
}

/// A NEG subset: class-balanced negative points chosen on half of the
/// population's runs, and its accuracy against A on the held-out half.
pub struct NegSubset {
    params: NegSubsetParams,
    setup: Setup,
    report: Option<Report>,
}

impl Component for NegSubset {
    /// Each observation replaces its whole report: a new instance that
    /// observes the next checkpoint reports the same.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "neg-subset";
    const SUMMARY: &'static str =
        "A class-balanced subset of negatively correlated points, selected on half of the runs; its accuracy vs global accuracy on the held-out half.";
    type Params = NegSubsetParams;

    fn new(params: NegSubsetParams) -> Result<Self> {
        let setup = Setup::new(
            &params.split,
            &params.accuracy_split,
            &params.score,
            params.probit,
            &params.correlation,
            params.min_accuracy,
        )?;
        if params.size == 0 {
            return Err(Error::invalid_param("size", "must be at least 1"));
        }
        if params.halvings == 0 {
            return Err(Error::invalid_param("halvings", "must be at least 1"));
        }
        Ok(NegSubset { params, setup, report: None })
    }
}

/// The selection half's choice and what the held-out half says about it.
pub struct NegSubsetOutcome {
    /// Members (rows) that selected, and the held-out ones.
    pub selection: Vec<usize>,
    /// The held-out members.
    pub held_out: Vec<usize>,
    /// The chosen points.
    pub points: Vec<usize>,
    /// Per chosen point: its correlation on the selection half.
    pub selection_correlation: Vec<f64>,
}

/// Each of `rows`' global accuracy, its mean score on `subset` (all points
/// when `None`: accuracy for correctness scores), and the Pearson correlation
/// and slope of the second against the first.
fn score_line(scores: &Scores, rows: &[usize], subset: Option<&[usize]>) -> (Vec<f64>, Vec<f64>, f64, f64) {
    let x: Vec<f64> = rows.iter().map(|&i| scores.accuracy[i]).collect();
    let y = scores.matrix().row_means(rows, subset);
    let (r, slope) = line_fit(&x, &y);
    (x, y, r, slope)
}

/// Chooses the NEG subset from the rows of the selection half only. `stats`
/// is computed on `selection` rows; nothing else of the matrix is read.
fn choose(setup: &Setup, params: &NegSubsetParams, scores: &Scores, seed: u64) -> NegSubsetOutcome {
    let mut rng = tessera_sdk::SeedRng::new(seed);
    let (selection, held_out) = split_by_run(&scores.runs, |runs| rng.shuffle(runs));
    let kept = setup.members(scores);
    let keep =
        |rows: Vec<usize>| -> Vec<usize> { rows.into_iter().filter(|i| kept.binary_search(i).is_ok()).collect() };
    let (selection, held_out) = (keep(selection), keep(held_out));
    let x = setup.x(scores, &selection);
    let stats = point_stats(&scores.matrix(), &selection, &x);
    let classes = {
        let mut c = scores.labels.clone();
        c.sort_unstable();
        c.dedup();
        c.len().max(1)
    };
    let per_class = (params.size as usize).div_ceil(classes);
    let points = select_negative(&stats, &scores.labels, setup.correlation, params.max_correlation, per_class);
    let selection_correlation = points.iter().map(|&z| setup.correlation.of(&stats[z])).collect();
    NegSubsetOutcome { selection, held_out, points, selection_correlation }
}

/// Every halving's held-out members and chosen points, as 0/1 masks, and
/// its held-out correlation: what the halving figures are computed from.
struct HalvingArrays {
    models: usize,
    points: usize,
    held_out: Vec<i64>,
    subset: Vec<i64>,
    correlation: Vec<f32>,
}

impl HalvingArrays {
    fn new(models: usize, points: usize) -> Self {
        HalvingArrays { models, points, held_out: vec![], subset: vec![], correlation: vec![] }
    }

    fn push(&mut self, outcome: &NegSubsetOutcome, correlation: f64) {
        let mask = |len: usize, chosen: &[usize]| {
            let mut m = vec![0i64; len];
            chosen.iter().for_each(|&i| m[i] = 1);
            m
        };
        self.held_out.extend(mask(self.models, &outcome.held_out));
        self.subset.extend(mask(self.points, &outcome.points));
        self.correlation.push(correlation as f32);
    }

    fn add_to(self, report: &mut Report) {
        let h = self.correlation.len() as u64;
        report.array("halving_held_out_members", Array::i64(vec![h, self.models as u64], self.held_out));
        report.array("halving_subsets", Array::i64(vec![h, self.points as u64], self.subset));
        report.array("halving_held_out_correlation", Array::f32(vec![h], self.correlation));
    }
}

impl Metric for NegSubset {
    fn requires(&self) -> Vec<ObservationRequest> {
        self.setup.requires()
    }

    fn observe(&mut self, _checkpoint: &Checkpoint, observations: &Observations, host: &Host) -> Result<()> {
        let scores = self.setup.read(observations)?;
        let outcome = choose(&self.setup, &self.params, &scores, host.seed());
        let NegSubsetOutcome { selection, held_out, points, selection_correlation } = &outcome;
        if selection.len() < 2 || held_out.len() < 2 {
            return Err(Error::msg(format!(
                "{} selection and {} held-out members: each half needs at least 2 (add seeds or models, or lower min_accuracy)",
                selection.len(),
                held_out.len()
            )));
        }
        let matrix = scores.matrix();
        let mut report = Report::new();
        let runs = |rows: &[usize]| {
            let mut r: Vec<i64> = rows.iter().map(|&i| scores.runs[i]).collect();
            r.sort_unstable();
            r.dedup();
            r.len() as f64
        };
        report
            .scalar("size", points.len() as f64)
            .scalar("selection_members", selection.len() as f64)
            .scalar("selection_runs", runs(selection))
            .scalar("held_out_members", held_out.len() as f64)
            .scalar("held_out_runs", runs(held_out));
        if points.is_empty() {
            log::warn!("neg-subset: no point correlates below {} on the selection half", self.params.max_correlation);
        }
        let (hx, hy, hr, hslope) = score_line(&scores, held_out, Some(points));
        let (_, wy, wr, wslope) = score_line(&scores, held_out, None);
        let (_, _, sr, _) = score_line(&scores, selection, Some(points));
        report
            .defined_headline("held_out_correlation", hr)
            .scalar("held_out_slope", hslope)
            .defined("held_out_whole_split_correlation", wr)
            .scalar("held_out_whole_split_slope", wslope)
            .defined("selection_correlation", sr)
            .scalar("held_out_subset_accuracy_mean", hy.iter().sum::<f64>() / hy.len() as f64);
        // The same protocol over other random halvings of the runs.
        let mut correlations = vec![hr];
        let mut halvings = HalvingArrays::new(scores.models, scores.points);
        halvings.push(&outcome, hr);
        for h in 1..self.params.halvings {
            host.check_cancelled()?;
            let other = choose(&self.setup, &self.params, &scores, host.seed().wrapping_add(h));
            if other.held_out.len() >= 2 {
                let r = score_line(&scores, &other.held_out, Some(&other.points)).2;
                correlations.push(r);
                halvings.push(&other, r);
            }
        }
        halvings.add_to(&mut report);
        let k = correlations.len() as f64;
        let mean = correlations.iter().sum::<f64>() / k;
        let sd = (correlations.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (k - 1.0).max(1.0)).sqrt();
        report
            .scalar("halvings", k)
            .defined("held_out_correlation_mean", mean)
            .defined("held_out_correlation_sd", sd)
            .scalar("halvings_where_subset_falls", correlations.iter().filter(|&&r| r < 0.0).count() as f64);
        let mut order: Vec<usize> = (0..hx.len()).collect();
        order.sort_by(|&a, &b| hx[a].total_cmp(&hx[b]));
        let x_sorted: Vec<f64> = order.iter().map(|&k| hx[k]).collect();
        let y_label = format!("accuracy on the subset ({}) (scatter)", self.setup.score);
        let x_label = format!("global accuracy A on `{}` (held-out models)", self.setup.accuracy_split);
        report.series(
            &format!("accuracy-on-the-line/all of `{}`", self.setup.split),
            &x_label,
            &y_label,
            x_sorted.clone(),
            order.iter().map(|&k| wy[k]).collect(),
        );
        report.series(
            "accuracy-on-the-line/NEG subset",
            &x_label,
            &y_label,
            x_sorted,
            order.iter().map(|&k| hy[k]).collect(),
        );
        // The held-out half's own view of each chosen point.
        let hx_rows: Vec<f64> = held_out.iter().map(|&i| scores.accuracy[i]).collect();
        let held_stats = point_stats(&matrix, held_out, &hx_rows);
        let rows = points.iter().zip(selection_correlation).map(|(&z, &r)| {
            vec![
                Cell::Integer(z as i64),
                Cell::Integer(scores.labels[z]),
                Cell::Number(r),
                Cell::Number(self.setup.correlation.of(&held_stats[z])),
            ]
        });
        report.table(
            "neg_subset",
            &["point", "label", "selection_correlation", "held_out_correlation"],
            rows.collect(),
        );
        let rows = held_out.iter().enumerate().map(|(k, &i)| {
            vec![
                Cell::Integer(i as i64),
                Cell::Integer(scores.runs[i]),
                Cell::Number(hx[k]),
                Cell::Number(wy[k]),
                Cell::Number(hy[k]),
            ]
        });
        report.table(
            "held_out_models",
            &["member", "run", "global_accuracy", "split_score", "subset_score"],
            rows.collect(),
        );
        self.report = Some(report);
        Ok(())
    }

    fn finish(&mut self, _host: &Host) -> Result<Report> {
        self.report.take().ok_or_else(|| Error::no_population(Self::NAME, ""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::tests::planted;

    fn scores_of(m: usize, k: usize, seed: u64) -> Scores<'static> {
        let (scores, accuracy, n) = planted(m, k, seed);
        // Two classes alternating; runs of 2 members each (a run and its checkpoint).
        let labels = (0..n).map(|z| (z % 2) as i64).collect();
        let runs = (0..m).map(|i| (i / 2) as i64).collect();
        Scores { models: m, points: n, scores: scores.into(), labels, accuracy, runs }
    }

    fn setup() -> (Setup, NegSubsetParams) {
        let params = NegSubsetParams { size: 20, ..NegSubsetParams::default() };
        (Setup::new("test", "test", "correct", false, "pearson", 0.0).unwrap(), params)
    }

    #[test]
    fn the_neg_subset_is_planted_negative_points_balanced_per_class() {
        let (setup, params) = setup();
        let scores = scores_of(400, 40, 2);
        let outcome = choose(&setup, &params, &scores, 9);
        assert_eq!(outcome.points.len(), 20);
        assert!(outcome.points.iter().all(|&z| (80..120).contains(&z)), "{:?}", outcome.points);
        assert_eq!(outcome.points.iter().filter(|&&z| z % 2 == 0).count(), 10);
        // Halves hold whole runs.
        let runs_of = |rows: &[usize]| rows.iter().map(|&i| scores.runs[i]).collect::<std::collections::BTreeSet<_>>();
        assert!(runs_of(&outcome.selection).is_disjoint(&runs_of(&outcome.held_out)));
        assert_eq!(outcome.selection.len() + outcome.held_out.len(), 400);
    }

    #[test]
    fn selection_never_reads_the_held_out_half() {
        let (setup, params) = setup();
        let scores = scores_of(200, 30, 4);
        let before = choose(&setup, &params, &scores, 5);
        // Scramble every held-out row: the choice must not change.
        let mut perturbed = scores_of(200, 30, 4);
        let mut rng = tessera_sdk::SeedRng::new(77);
        for &i in &before.held_out {
            for z in 0..perturbed.points {
                perturbed.scores.to_mut()[i * perturbed.points + z] = (rng.next_f64() < 0.5) as u8 as f32;
            }
            perturbed.accuracy[i] = rng.next_f64();
        }
        let after = choose(&setup, &params, &perturbed, 5);
        assert_eq!((&after.selection, &after.held_out), (&before.selection, &before.held_out));
        assert_eq!(after.points, before.points);
        assert_eq!(after.selection_correlation, before.selection_correlation);
        // Flipping the selection rows on the negative points does change it.
        let mut touched = scores_of(200, 30, 4);
        for &i in &before.selection {
            for z in 60..90 {
                let v = &mut touched.scores.to_mut()[i * touched.points + z];
                *v = 1.0 - *v;
            }
        }
        assert_ne!(choose(&setup, &params, &touched, 5).points, before.points);
    }

    #[test]
    fn every_halving_is_saved_as_masks_with_its_correlation() {
        let (setup, params) = setup();
        let scores = scores_of(40, 10, 2);
        let mut halvings = HalvingArrays::new(scores.models, scores.points);
        let outcomes: Vec<NegSubsetOutcome> = (0..3).map(|seed| choose(&setup, &params, &scores, seed)).collect();
        outcomes.iter().enumerate().for_each(|(h, o)| halvings.push(o, h as f64 / 10.0));
        let mut report = Report::new();
        halvings.add_to(&mut report);
        let array = |name: &str| &report.arrays.iter().find(|a| a.name.as_str() == name).unwrap().array;
        let held = array("halving_held_out_members");
        assert_eq!(held.shape.as_slice(), &[3, 40]);
        let row = |a: &Array, h: usize, len: usize| -> Vec<usize> {
            let v = &a.as_i64().unwrap()[h * len..(h + 1) * len];
            (0..len).filter(|&i| v[i] == 1).collect()
        };
        for (h, o) in outcomes.iter().enumerate() {
            assert_eq!(row(held, h, 40), o.held_out);
            let mut points = o.points.clone();
            points.sort_unstable();
            assert_eq!(row(array("halving_subsets"), h, scores.points), points);
        }
        assert_eq!(array("halving_held_out_correlation").as_f32().unwrap(), &[0.0, 0.1, 0.2]);
    }
}
