//! The two metrics, on a population of training runs: one run per setting
//! (batch size and learning rate) and seed, every checkpoint a member.

use std::collections::BTreeMap;

use tessera_sdk::{
    observation, params, Cell, Checkpoint, Component, Error, Host, Metric, ObservationRequest, Observations, Report,
    Result, State,
};

use crate::distance::{mean_total_variation, outputs_at, shared_levels};

/// One training run: its members (rows) in step order with their figures.
struct Run {
    setting: i64,
    seed: i64,
    batch_size: i64,
    rows: Vec<usize>,
    steps: Vec<f64>,
    seen: Vec<f64>,
    /// Held-out cross-entropy, mean over points of −ln p(y).
    loss: Vec<f64>,
    accuracy: Vec<f64>,
}

/// The runs of a population, from its `population-members`,
/// `population-true-probability` and `population-correct` on `split`.
fn runs(observations: &Observations, split: &str) -> Result<Vec<Run>> {
    let members = observations.i64(split, observation::POPULATION_MEMBERS)?;
    let truth = observations.f32(split, observation::POPULATION_TRUE_PROBABILITY)?;
    let correct = observations.f32(split, observation::POPULATION_CORRECT)?;
    let m = members.len() / 6;
    if m == 0 {
        return Err(Error::msg("the population has no member"));
    }
    let n = truth.len() / m;
    let mut by_run: BTreeMap<i64, Run> = BTreeMap::new();
    for i in 0..m {
        let row = &members[i * 6..(i + 1) * 6];
        let run = by_run.entry(row[0]).or_insert_with(|| Run {
            setting: row[1],
            seed: row[2],
            batch_size: row[5],
            rows: vec![],
            steps: vec![],
            seen: vec![],
            loss: vec![],
            accuracy: vec![],
        });
        let p = &truth[i * n..(i + 1) * n];
        run.rows.push(i);
        run.steps.push(row[3] as f64);
        run.seen.push(row[4] as f64);
        run.loss.push(p.iter().map(|&v| -(v.max(1e-12) as f64).ln()).sum::<f64>() / n.max(1) as f64);
        run.accuracy.push(correct[i * n..(i + 1) * n].iter().map(|&c| c as f64).sum::<f64>() / n.max(1) as f64);
    }
    Ok(by_run.into_values().collect())
}

/// A name for each setting: `batch 16`, or `batch 16 (setting 2)` when two
/// settings share a batch size.
fn setting_names(runs: &[Run]) -> BTreeMap<i64, String> {
    let mut batch_of: BTreeMap<i64, i64> = BTreeMap::new();
    for r in runs {
        batch_of.insert(r.setting, r.batch_size);
    }
    let shared = |b: i64| batch_of.values().filter(|&&x| x == b).count() > 1;
    batch_of
        .iter()
        .map(|(&s, &b)| (s, if shared(b) { format!("batch {b} (setting {s})") } else { format!("batch {b}") }))
        .collect()
}

params! {
    /// Parameters of [`FunctionalDistance`].
    pub struct FunctionalDistanceParams {
        /// The held-out split.
        pub split: String = "test".into(),
        /// Loss levels compared, spread over the range every run crosses.
        pub levels: u64 = 8,
    }
}

/// d_TV between runs of different settings at equal held-out loss (with the
/// same seed, so the same start and stream, and with other seeds), against
/// the noise floor of one setting across seeds.
pub struct FunctionalDistance {
    params: FunctionalDistanceParams,
    report: Option<Report>,
}

impl Component for FunctionalDistance {
    /// Each observation replaces its whole report: a new instance that
    /// observes the next checkpoint reports the same.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "functional-distance";
    const SUMMARY: &'static str =
        "Mean total-variation distance between models of different batch sizes at equal held-out loss, with the same-batch noise floor.";
    type Params = FunctionalDistanceParams;

    fn new(params: FunctionalDistanceParams) -> Result<Self> {
        if params.levels == 0 {
            return Err(Error::invalid_param("levels", "must be at least 1"));
        }
        Ok(FunctionalDistance { params, report: None })
    }
}

impl Metric for FunctionalDistance {
    fn requires(&self) -> Vec<ObservationRequest> {
        let split = self.params.split.as_str();
        [
            observation::POPULATION_MEMBERS,
            observation::POPULATION_TRUE_PROBABILITY,
            observation::POPULATION_CORRECT,
            observation::POPULATION_PROBABILITIES,
        ]
        .into_iter()
        .map(|kind| ObservationRequest::new(split, kind))
        .collect()
    }

    fn observe(&mut self, _checkpoint: &Checkpoint, observations: &Observations, _host: &Host) -> Result<()> {
        let split = self.params.split.as_str();
        let runs = runs(observations, split)?;
        let probabilities = observations.get(split, observation::POPULATION_PROBABILITIES)?;
        let (classes, per_member) = match probabilities.shape.as_slice() {
            [_, n, c] => (*c as usize, (*n * *c) as usize),
            other => return Err(Error::msg(format!("population-probabilities has shape {other:?}, not [m, n, c]"))),
        };
        let outputs = probabilities.as_f32().ok_or_else(|| Error::msg("population-probabilities is not float"))?;
        let names = setting_names(&runs);
        let levels =
            shared_levels(&runs.iter().map(|r| r.loss.clone()).collect::<Vec<_>>(), self.params.levels as usize);
        if levels.is_empty() {
            return Err(Error::msg(
                "the runs share no range of held-out loss (each run's lowest loss is above another's first): train longer or checkpoint earlier",
            ));
        }
        // Each run's outputs at each level (None where it does not cross it).
        let at_levels: Vec<Vec<Option<Vec<f32>>>> = runs
            .iter()
            .map(|r| {
                let slices: Vec<&[f32]> =
                    r.rows.iter().map(|&i| &outputs[i * per_member..(i + 1) * per_member]).collect();
                levels.iter().map(|&l| outputs_at(&r.loss, &slices, l)).collect()
            })
            .collect();
        // Pairs of runs: other setting and same seed (a shared start and
        // stream), other setting and other seed, or the noise floor: same
        // setting, other seed.
        let mut between: BTreeMap<(i64, i64), Vec<Vec<f64>>> = BTreeMap::new();
        let mut across_seeds: Vec<Vec<f64>> = vec![vec![]; levels.len()];
        let mut floor: BTreeMap<i64, Vec<Vec<f64>>> = BTreeMap::new();
        let mut rows = Vec::new();
        for (a, ra) in runs.iter().enumerate() {
            for (b, rb) in runs.iter().enumerate().skip(a + 1) {
                let (sa, sb) = if ra.setting <= rb.setting { (ra, rb) } else { (rb, ra) };
                let (kind, target) = match (ra.setting == rb.setting, ra.seed == rb.seed) {
                    (true, true) => continue,
                    (false, true) => (
                        "between settings, same seed",
                        between.entry((sa.setting, sb.setting)).or_insert_with(|| vec![vec![]; levels.len()]),
                    ),
                    (false, false) => ("between settings, other seeds", &mut across_seeds),
                    (true, false) => {
                        ("noise floor", floor.entry(ra.setting).or_insert_with(|| vec![vec![]; levels.len()]))
                    }
                };
                for (k, level) in levels.iter().enumerate() {
                    let (Some(pa), Some(pb)) = (&at_levels[a][k], &at_levels[b][k]) else { continue };
                    let tv = mean_total_variation(pa, pb, classes);
                    target[k].push(tv);
                    rows.push(vec![
                        Cell::Number(*level),
                        Cell::Text(kind.into()),
                        Cell::Text(names[&sa.setting].clone().into()),
                        Cell::Integer(sa.seed),
                        Cell::Text(names[&sb.setting].clone().into()),
                        Cell::Integer(sb.seed),
                        Cell::Number(tv),
                    ]);
                }
            }
        }
        let mut report = Report::new();
        let x_label = format!("held-out loss level on `{split}` (cross-entropy)");
        let mean = |v: &[f64]| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
        let add_curves = |report: &mut Report, name: String, per_level: &[Vec<f64>]| -> Vec<f64> {
            let (xs, ys): (Vec<f64>, Vec<f64>) =
                levels.iter().zip(per_level).filter(|(_, v)| !v.is_empty()).map(|(l, v)| (*l, mean(v))).unzip();
            report.series(&format!("tv-by-loss/{name}"), &x_label, "mean TV distance", xs, ys.clone());
            ys
        };
        let (mut all_between, mut all_floor) = (vec![], vec![]);
        for ((a, b), per_level) in &between {
            let ys = add_curves(&mut report, format!("{} vs {}, same seed", names[a], names[b]), per_level);
            report.defined(&format!("mean_tv {} vs {}", names[a], names[b]), mean(&ys));
            all_between.extend(ys);
        }
        let all_across = if across_seeds.iter().any(|v| !v.is_empty()) {
            add_curves(&mut report, "other batch size, other seed".into(), &across_seeds)
        } else {
            vec![]
        };
        for (s, per_level) in &floor {
            let ys = add_curves(&mut report, format!("noise floor, {}", names[s]), per_level);
            report.defined(&format!("noise_floor {}", names[s]), mean(&ys));
            all_floor.extend(ys);
        }
        if floor.is_empty() {
            log::warn!("functional-distance: one seed per setting, so no noise floor (add population.seeds)");
        }
        report
            .scalar("levels", levels.len() as f64)
            .defined("mean_tv_between_settings", mean(&all_between))
            .defined("mean_tv_between_settings_other_seeds", mean(&all_across))
            .defined("mean_noise_floor", mean(&all_floor))
            .defined_headline("between_over_floor", mean(&all_between) / mean(&all_floor))
            .defined("other_seeds_between_over_floor", mean(&all_across) / mean(&all_floor));
        report.table("distances", &["loss_level", "kind", "setting_a", "seed_a", "setting_b", "seed_b", "tv"], rows);
        self.report = Some(report);
        Ok(())
    }

    fn finish(&mut self, _host: &Host) -> Result<Report> {
        self.report.take().ok_or_else(|| Error::no_population(Self::NAME, "`every_checkpoint = true`"))
    }
}

params! {
    /// Parameters of [`LossCurves`].
    pub struct LossCurvesParams {
        /// The held-out split.
        pub split: String = "test".into(),
    }
}

/// Held-out loss and accuracy per setting against examples seen and steps
/// (mean over seeds), and per-step comparisons of batch sizes.
pub struct LossCurves {
    params: LossCurvesParams,
    report: Option<Report>,
}

impl Component for LossCurves {
    /// Each observation replaces its whole report: a new instance that
    /// observes the next checkpoint reports the same.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "loss-curves";
    const SUMMARY: &'static str =
        "Held-out loss and accuracy per batch size against examples seen and steps, and whether the larger batch is ever worse per step.";
    type Params = LossCurvesParams;

    fn new(params: LossCurvesParams) -> Result<Self> {
        Ok(LossCurves { params, report: None })
    }
}

/// y at `x` on the piecewise-linear curve (xs increasing); None outside it.
fn interpolate(xs: &[f64], ys: &[f64], x: f64) -> Option<f64> {
    let i = xs.windows(2).position(|w| w[0] <= x && x <= w[1])?;
    let t = if xs[i + 1] > xs[i] { (x - xs[i]) / (xs[i + 1] - xs[i]) } else { 0.0 };
    Some(ys[i] + t * (ys[i + 1] - ys[i]))
}

/// The mean over `runs` of each checkpoint's figures (runs of one setting
/// share their schedule; longer runs are cut to the shortest).
fn mean_curve(runs: &[&Run], figure: impl Fn(&Run) -> &Vec<f64>) -> Vec<f64> {
    let len = runs.iter().map(|r| r.loss.len()).min().unwrap_or(0);
    (0..len).map(|k| runs.iter().map(|r| figure(r)[k]).sum::<f64>() / runs.len() as f64).collect()
}

impl Metric for LossCurves {
    fn requires(&self) -> Vec<ObservationRequest> {
        let split = self.params.split.as_str();
        [observation::POPULATION_MEMBERS, observation::POPULATION_TRUE_PROBABILITY, observation::POPULATION_CORRECT]
            .into_iter()
            .map(|kind| ObservationRequest::new(split, kind))
            .collect()
    }

    fn observe(&mut self, _checkpoint: &Checkpoint, observations: &Observations, _host: &Host) -> Result<()> {
        let runs = runs(observations, &self.params.split)?;
        let names = setting_names(&runs);
        let mut report = Report::new();
        // Per setting: mean curves over its seeds.
        let mut curves: BTreeMap<i64, (i64, Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for (&setting, name) in &names {
            let of: Vec<&Run> = runs.iter().filter(|r| r.setting == setting).collect();
            let (seen, steps) = (mean_curve(&of, |r| &r.seen), mean_curve(&of, |r| &r.steps));
            let (loss, accuracy) = (mean_curve(&of, |r| &r.loss), mean_curve(&of, |r| &r.accuracy));
            report.series(
                &format!("loss-by-examples/{name}"),
                "examples seen (log scale)",
                "held-out loss",
                seen.clone(),
                loss.clone(),
            );
            report.series(
                &format!("loss-by-steps/{name}"),
                "steps (log scale)",
                "held-out loss",
                steps.clone(),
                loss.clone(),
            );
            report.series(
                &format!("accuracy-by-examples/{name}"),
                "examples seen (log scale)",
                "held-out accuracy",
                seen,
                accuracy.clone(),
            );
            let best = loss.iter().copied().fold(f64::INFINITY, f64::min);
            report
                .defined(&format!("final_loss {name}"), *loss.last().unwrap_or(&f64::NAN))
                .defined(&format!("best_loss {name}"), best)
                .defined(&format!("final_accuracy {name}"), *accuracy.last().unwrap_or(&f64::NAN))
                .defined(&format!("best_accuracy {name}"), accuracy.iter().copied().fold(f64::NEG_INFINITY, f64::max));
            curves.insert(setting, (of[0].batch_size, steps, loss));
        }
        // Per step: is the larger batch ever worse than the smaller one?
        let mut rows = Vec::new();
        for (a, (batch_a, steps_a, loss_a)) in &curves {
            for (b, (batch_b, steps_b, loss_b)) in &curves {
                if batch_b <= batch_a {
                    continue;
                }
                let gaps: Vec<f64> = steps_a
                    .iter()
                    .zip(loss_a)
                    .filter_map(|(&s, &la)| interpolate(steps_b, loss_b, s).map(|lb| lb - la))
                    .collect();
                if gaps.is_empty() {
                    continue;
                }
                let not_worse = gaps.iter().filter(|&&g| g <= 0.0).count() as f64 / gaps.len() as f64;
                let worst = gaps.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let pair = format!("{} vs {}", names[b], names[a]);
                report
                    .scalar(&format!("larger_batch_not_worse_per_step {pair}"), not_worse)
                    .scalar(&format!("larger_batch_worst_gap_per_step {pair}"), worst);
                rows.push(vec![
                    Cell::Text(names[b].clone().into()),
                    Cell::Text(names[a].clone().into()),
                    Cell::Integer(gaps.len() as i64),
                    Cell::Number(not_worse),
                    Cell::Number(worst),
                ]);
            }
        }
        report.table(
            "per_step",
            &["larger_batch", "smaller_batch", "steps_compared", "fraction_not_worse", "worst_loss_gap"],
            rows,
        );
        self.report = Some(report);
        Ok(())
    }

    fn finish(&mut self, _host: &Host) -> Result<Report> {
        self.report.take().ok_or_else(|| Error::no_population(Self::NAME, "`every_checkpoint = true`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_stays_inside_the_curve() {
        let (xs, ys) = ([1.0, 3.0, 5.0], [2.0, 1.0, 0.0]);
        assert_eq!(interpolate(&xs, &ys, 2.0), Some(1.5));
        assert_eq!(interpolate(&xs, &ys, 5.0), Some(0.0));
        assert_eq!(interpolate(&xs, &ys, 6.0), None);
    }
}
