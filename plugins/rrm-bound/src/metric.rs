//! The metric on a population: clean runs (no label noise) and noisy runs
//! (η > 0, each with its own noise draw), every run's last member.

use std::collections::BTreeMap;

use tessera_sdk::{
    observation, params, Cell, Checkpoint, Component, Error, Host, Metric, ObservationRequest, Observations, Report,
    Result, State,
};

use crate::gaps::{complexity, theorem_ii_bound, Gaps};

params! {
    /// Parameters of [`Rrm`].
    pub struct RrmParams {
        /// The split the classifiers trained on (evaluated with its clean labels).
        pub train_split: String = "train".into(),
        /// The held-out split.
        pub test_split: String = "test".into(),
    }
}

/// The RRM decomposition of the generalization gap, the RRM bound and
/// Theorem II's bound, from the clean and the noisy runs of a population.
pub struct Rrm {
    params: RrmParams,
    report: Option<Report>,
}

impl Component for Rrm {
    /// Each observation replaces its whole report: a new instance that
    /// observes the next checkpoint reports the same.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "rrm";
    const SUMMARY: &'static str =
        "Robustness, memorization and rationality gaps (summing to Train − Test), the RRM bound and Theorem II's bound, from clean and η-noisy runs.";
    type Params = RrmParams;

    fn new(params: RrmParams) -> Result<Self> {
        Ok(Rrm { params, report: None })
    }
}

fn accuracy(predictions: &[i64], labels: &[i64], points: impl Iterator<Item = usize>) -> f64 {
    let (mut right, mut total) = (0usize, 0usize);
    for z in points {
        right += (predictions[z] == labels[z]) as usize;
        total += 1;
    }
    right as f64 / total.max(1) as f64
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

impl Metric for Rrm {
    fn requires(&self) -> Vec<ObservationRequest> {
        let (train, test) = (self.params.train_split.as_str(), self.params.test_split.as_str());
        vec![
            ObservationRequest::new(train, observation::POPULATION_PREDICTIONS),
            ObservationRequest::new(train, observation::POPULATION_TRAIN_LABELS),
            ObservationRequest::new(train, observation::POPULATION_MEMBERS),
            ObservationRequest::new(train, observation::LABELS),
            ObservationRequest::new(test, observation::POPULATION_CORRECT),
        ]
    }

    fn observe(&mut self, _checkpoint: &Checkpoint, observations: &Observations, _host: &Host) -> Result<()> {
        let (train, test) = (self.params.train_split.as_str(), self.params.test_split.as_str());
        let predictions = observations.i64(train, observation::POPULATION_PREDICTIONS)?;
        let trained_on = observations.i64(train, observation::POPULATION_TRAIN_LABELS)?;
        let members = observations.i64(train, observation::POPULATION_MEMBERS)?;
        let clean = observations.i64(train, observation::LABELS)?;
        let correct = observations.f32(test, observation::POPULATION_CORRECT)?;
        let m = members.len() / 6;
        let n = clean.len();
        let n_test = correct.len() / m.max(1);
        let classes = clean.iter().max().map_or(2, |&c| c + 1);
        // Each run's last member.
        let mut last: BTreeMap<i64, (i64, usize)> = BTreeMap::new();
        for i in 0..m {
            let (run, step) = (members[i * 6], members[i * 6 + 3]);
            if last.get(&run).is_none_or(|&(s, _)| step >= s) {
                last.insert(run, (step, i));
            }
        }
        struct Run {
            member: usize,
            flipped: Vec<usize>,
        }
        let runs: Vec<Run> = last
            .values()
            .map(|&(_, i)| {
                let labels = &trained_on[i * n..(i + 1) * n];
                Run { member: i, flipped: (0..n).filter(|&z| labels[z] != clean[z]).collect() }
            })
            .collect();
        let (clean_runs, noisy_runs): (Vec<&Run>, Vec<&Run>) = runs.iter().partition(|r| r.flipped.is_empty());
        if clean_runs.is_empty() || noisy_runs.is_empty() {
            return Err(Error::msg(format!(
                "{} clean and {} noisy runs: the decomposition needs both (population.settings with label_noise = 0 and > 0)",
                clean_runs.len(),
                noisy_runs.len()
            )));
        }
        let row = |i: usize| &predictions[i * n..(i + 1) * n];
        let test_accuracy =
            |i: usize| correct[i * n_test..(i + 1) * n_test].iter().map(|&c| c as f64).sum::<f64>() / n_test as f64;
        let train_acc: Vec<f64> = clean_runs.iter().map(|r| accuracy(row(r.member), clean, 0..n)).collect();
        let test_acc: Vec<f64> = clean_runs.iter().map(|r| test_accuracy(r.member)).collect();
        let train_eta: Vec<f64> = noisy_runs.iter().map(|r| accuracy(row(r.member), clean, 0..n)).collect();
        let ntrain_eta: Vec<f64> =
            noisy_runs.iter().map(|r| accuracy(row(r.member), clean, r.flipped.iter().copied())).collect();
        let eta = mean(&noisy_runs.iter().map(|r| r.flipped.len() as f64 / n as f64).collect::<Vec<_>>());
        let gaps = Gaps::new(mean(&train_acc), mean(&train_eta), mean(&ntrain_eta), mean(&test_acc));
        let noisy_predictions: Vec<Vec<i64>> = noisy_runs.iter().map(|r| row(r.member).to_vec()).collect();
        let noisy_labels: Vec<Vec<i64>> =
            noisy_runs.iter().map(|r| trained_on[r.member * n..(r.member + 1) * n].to_vec()).collect();
        let c = complexity(&noisy_predictions, &noisy_labels, clean, classes);
        let mut report = Report::new();
        report
            .scalar("train", gaps.train)
            .scalar("train_eta", gaps.train_eta)
            .scalar("ntrain_eta", gaps.ntrain_eta)
            .headline("test", gaps.test)
            .headline("generalization_gap", gaps.generalization)
            .headline("robustness_gap", gaps.robustness)
            .headline("memorization_gap", gaps.memorization)
            .headline("rationality_gap", gaps.rationality)
            .headline("rrm_bound", gaps.rrm_bound)
            .scalar("eta", eta)
            .scalar("clean_runs", clean_runs.len() as f64)
            .scalar("noisy_runs", noisy_runs.len() as f64)
            .scalar("c_pc_bits", c.pc)
            .scalar("c_dc_bits", c.dc)
            .scalar("c_dc_noised_bits", c.dc_noised)
            .headline("theorem_ii_pc", theorem_ii_bound(c.pc, eta))
            .headline("theorem_ii_dc", theorem_ii_bound(c.dc, eta))
            .scalar("noisy_test", mean(&noisy_runs.iter().map(|r| test_accuracy(r.member)).collect::<Vec<_>>()));
        // The paper's table, in percent.
        let pct = |v: f64| Cell::Number(100.0 * v);
        report.table(
            "rrm",
            &["gap", "robustness", "memorization", "rationality", "theorem_ii", "rrm", "test"],
            vec![vec![
                pct(gaps.generalization),
                pct(gaps.robustness),
                pct(gaps.memorization),
                pct(gaps.rationality),
                pct(theorem_ii_bound(c.pc, eta)),
                pct(gaps.rrm_bound),
                pct(gaps.test),
            ]],
        );
        self.report = Some(report);
        Ok(())
    }

    fn finish(&mut self, _host: &Host) -> Result<Report> {
        self.report.take().ok_or_else(|| Error::no_population(Self::NAME, "clean and `label_noise` settings"))
    }
}
