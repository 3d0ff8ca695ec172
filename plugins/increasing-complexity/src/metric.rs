//! The metric: μ_Y(F_t; L) and its parts at each checkpoint t of training.

use tessera_sdk::{
    observation, params, Array, Cell, Checkpoint, Component, Error, Host, Metric, ObservationRequest, Observations,
    Report, Result, State,
};

use crate::information::{Information, JointCounts};

params! {
    /// Parameters of [`PerformanceCorrelation`].
    pub struct PerformanceCorrelationParams {
        /// The held-out split the predictions are taken on.
        pub split: String = "test".into(),
        /// L: `classifier` (the manifest's `[reference]` model, e.g. a linear
        /// classifier trained to convergence) or `checkpoint` (F's own
        /// predictions at its first checkpoint at or after `reference_step`).
        pub reference: String = "classifier".into(),
        /// `reference = "checkpoint"`: the step of F that serves as L.
        pub reference_step: u64 = 0,
        /// The checkpoints the summary calls "early": the first ones where
        /// I(F;Y) exceeds this many bits.
        pub early_threshold: f64 = 0.1,
    }
}

/// The performance correlation μ_Y(F_t; L) = I(F_t;Y) − I(F_t;Y|L) over
/// training, with I(F_t;Y), I(F_t;Y|L) and I(L;Y), in bits.
pub struct PerformanceCorrelation {
    params: PerformanceCorrelationParams,
    /// (step, epoch) of each checkpoint.
    checkpoints: Vec<(u64, f64)>,
    /// F's accuracy at each checkpoint.
    accuracy: Vec<f64>,
    /// `classifier`: the estimates at each checkpoint.
    information: Vec<Information>,
    /// F's predictions at each checkpoint (with `checkpoint`, L is one of them).
    predictions: Vec<Vec<i64>>,
    /// Y.
    labels: Vec<i64>,
    /// L's predictions (the reference classifier's, or the chosen checkpoint's).
    reference: Vec<i64>,
    reference_accuracy: Option<f64>,
}

impl Component for PerformanceCorrelation {
    /// Every checkpoint observed so far: its accuracy, information and
    /// predictions, and the labels and reference they are compared with.
    fn save_state(&self) -> Result<State> {
        let information: Vec<[f64; 4]> = self.information.iter().map(Information::to_array).collect();
        State::encode(&(
            &self.checkpoints,
            &self.accuracy,
            information,
            &self.predictions,
            (&self.labels, &self.reference, self.reference_accuracy),
        ))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        type Saved = (Vec<(u64, f64)>, Vec<f64>, Vec<[f64; 4]>, Vec<Vec<i64>>, (Vec<i64>, Vec<i64>, Option<f64>));
        let (checkpoints, accuracy, information, predictions, (labels, reference, reference_accuracy)) =
            State::decode::<Saved>(bytes)?;
        (self.checkpoints, self.accuracy, self.predictions) = (checkpoints, accuracy, predictions);
        self.information = information.into_iter().map(Information::from_array).collect();
        (self.labels, self.reference, self.reference_accuracy) = (labels, reference, reference_accuracy);
        Ok(())
    }

    const NAME: &'static str = "performance-correlation";
    const SUMMARY: &'static str =
        "μ_Y(F;L) = I(F;Y) − I(F;Y|L), I(F;Y), I(F;Y|L) and I(L;Y) in bits over training (L: a reference classifier or an earlier checkpoint).";
    type Params = PerformanceCorrelationParams;

    fn new(params: PerformanceCorrelationParams) -> Result<Self> {
        if !["classifier", "checkpoint"].contains(&params.reference.as_str()) {
            return Err(Error::invalid_param("reference", "must be `classifier` or `checkpoint`"));
        }
        if params.split.is_empty() {
            return Err(Error::invalid_param("split", "must name a split, e.g. `test`"));
        }
        Ok(PerformanceCorrelation {
            params,
            checkpoints: vec![],
            accuracy: vec![],
            information: vec![],
            predictions: vec![],
            labels: vec![],
            reference: vec![],
            reference_accuracy: None,
        })
    }
}

fn accuracy(predictions: &[i64], labels: &[i64]) -> f64 {
    predictions.iter().zip(labels).filter(|(p, y)| p == y).count() as f64 / labels.len().max(1) as f64
}

fn estimate(f: &[i64], y: &[i64], l: &[i64]) -> Result<Information> {
    Ok(JointCounts::new(f, y, l).map_err(Error::msg)?.information())
}

impl PerformanceCorrelation {
    /// What the curves are computed from, for an independent check: F at
    /// every checkpoint (`predictions`, checkpoints × n), L, Y and the steps.
    fn add_arrays(&self, report: &mut Report) {
        let (m, n) = (self.predictions.len() as u64, self.labels.len() as u64);
        let f: Vec<i64> = self.predictions.iter().flatten().copied().collect();
        report.array("predictions", Array::i64(vec![m, n], f));
        report.array("reference_predictions", Array::i64(vec![n], self.reference.clone()));
        report.array("labels", Array::i64(vec![n], self.labels.clone()));
        let steps = self.checkpoints.iter().map(|c| c.0 as i64).collect();
        report.array("steps", Array::i64(vec![m], steps));
    }
}

impl Metric for PerformanceCorrelation {
    fn requires(&self) -> Vec<ObservationRequest> {
        let split = self.params.split.as_str();
        let mut kinds = vec![observation::PREDICTIONS, observation::LABELS];
        if self.params.reference == "classifier" {
            kinds.push(observation::REFERENCE_PREDICTIONS);
        }
        kinds.into_iter().map(|kind| ObservationRequest::new(split, kind)).collect()
    }

    fn observe(&mut self, checkpoint: &Checkpoint, observations: &Observations, _host: &Host) -> Result<()> {
        let split = self.params.split.as_str();
        let f = observations.i64(split, observation::PREDICTIONS)?;
        let y = observations.i64(split, observation::LABELS)?;
        self.checkpoints.push((checkpoint.step, checkpoint.epoch));
        self.accuracy.push(accuracy(f, y));
        if self.labels.is_empty() {
            self.labels = y.to_vec();
        }
        self.predictions.push(f.to_vec());
        if self.params.reference == "classifier" {
            let l = observations.i64(split, observation::REFERENCE_PREDICTIONS)?;
            self.reference_accuracy.get_or_insert_with(|| accuracy(l, y));
            self.information.push(estimate(f, y, l)?);
            if self.reference.is_empty() {
                self.reference = l.to_vec();
            }
        }
        Ok(())
    }

    fn finish(&mut self, _host: &Host) -> Result<Report> {
        let mut report = Report::new();
        if self.params.reference == "checkpoint" {
            let at =
                self.checkpoints.iter().position(|&(step, _)| step >= self.params.reference_step).ok_or_else(|| {
                    Error::invalid_param(
                        "reference_step",
                        format!(
                            "no checkpoint at or after step {} (the last is step {})",
                            self.params.reference_step,
                            self.checkpoints.last().map_or(0, |c| c.0)
                        ),
                    )
                })?;
            let l = &self.predictions[at];
            self.reference = l.clone();
            report.scalar("reference_step", self.checkpoints[at].0 as f64);
            self.reference_accuracy = Some(accuracy(l, &self.labels));
            self.information =
                self.predictions.iter().map(|f| estimate(f, &self.labels, l)).collect::<Result<Vec<_>>>()?;
        }
        if self.information.is_empty() {
            return Ok(report);
        }
        self.add_arrays(&mut report);
        let steps: Vec<f64> = self.checkpoints.iter().map(|c| c.0 as f64).collect();
        let x_label = "step (log scale)";
        let info = &self.information;
        let curves = [
            ("I(F;Y)", info.iter().map(|i| i.i_fy).collect::<Vec<_>>()),
            ("mu_Y(F;L)", info.iter().map(|i| i.mu).collect()),
            ("I(F;Y|L)", info.iter().map(|i| i.i_fy_given_l).collect()),
            ("I(L;Y)", info.iter().map(|i| i.i_ly).collect()),
        ];
        for (name, y) in curves {
            report.series(&format!("information/{name}"), x_label, "bits", steps.clone(), y);
        }
        report.series("accuracy_of_F", x_label, "accuracy", steps.clone(), self.accuracy.clone());

        let last = *self.information.last().expect("non-empty");
        report.scalar("final_i_fy", last.i_fy);
        report.scalar("final_i_fy_given_l", last.i_fy_given_l);
        report.scalar("final_mu", last.mu);
        report.scalar("i_ly", last.i_ly);
        report.defined("reference_accuracy", self.reference_accuracy.unwrap_or(f64::NAN));
        report.defined_headline("final_mu_over_i_ly", last.mu / last.i_ly);
        // Early: μ/I(F;Y) at the first checkpoints where F knows something.
        let early: Vec<&Information> =
            self.information.iter().filter(|i| i.i_fy > self.params.early_threshold).take(3).collect();
        if let Some(first) = early.first() {
            report.defined("early_mu_over_i_fy", first.mu / first.i_fy);
            report.scalar(
                "early_mu_over_i_fy_mean3",
                early.iter().map(|i| i.mu / i.i_fy).sum::<f64>() / early.len() as f64,
            );
        }
        let rows = self
            .checkpoints
            .iter()
            .zip(&self.information)
            .zip(&self.accuracy)
            .map(|(((step, epoch), info), acc)| {
                vec![
                    Cell::Integer(*step as i64),
                    Cell::Number(*epoch),
                    Cell::Number(*acc),
                    Cell::Number(info.i_fy),
                    Cell::Number(info.i_fy_given_l),
                    Cell::Number(info.mu),
                    Cell::Number(info.i_ly),
                ]
            })
            .collect();
        report.table("information", &["step", "epoch", "accuracy_F", "I_FY", "I_FY_given_L", "mu", "I_LY"], rows);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::testing::{self, TestHost};

    fn observe(metric: &mut PerformanceCorrelation, step: u64, f: &[i64], y: &[i64], l: Option<&[i64]>) {
        let mut items = vec![
            testing::i64_observation("test", observation::PREDICTIONS, f.to_vec()),
            testing::i64_observation("test", observation::LABELS, y.to_vec()),
        ];
        if let Some(l) = l {
            items.push(testing::i64_observation("test", observation::REFERENCE_PREDICTIONS, l.to_vec()));
        }
        let host = TestHost::new(0);
        let cp = Checkpoint { step, epoch: step as f64 / 10.0, examples_seen: step * 10, is_final: false };
        metric.observe(&cp, &testing::observations(&items), &host.host()).unwrap();
    }

    #[test]
    fn a_checkpoint_reference_compares_with_f_itself() {
        let params =
            PerformanceCorrelationParams { reference: "checkpoint".into(), reference_step: 20, ..Default::default() };
        let mut metric = PerformanceCorrelation::new(params).unwrap();
        let y = [0, 0, 1, 1, 0, 1, 0, 1];
        observe(&mut metric, 10, &[0, 0, 0, 0, 0, 0, 0, 0], &y, None);
        observe(&mut metric, 20, &[0, 0, 1, 0, 0, 1, 1, 1], &y, None);
        observe(&mut metric, 30, &y, &y, None);
        let services = TestHost::new(0);
        let report = metric.finish(&services.host()).unwrap();
        let scalar = |name: &str| report.scalars.iter().find(|s| s.name.as_str() == name).unwrap().value;
        assert_eq!(scalar("reference_step"), 20.0);
        // At step 20, F is L: nothing beyond L.
        let beyond = report.series.iter().find(|s| s.name.as_str() == "information/I(F;Y|L)").unwrap();
        assert!(beyond.y[1].abs() < 1e-12 && beyond.y[2] > 0.0);
        assert_eq!(scalar("reference_accuracy"), 0.75);
    }

    #[test]
    fn the_classifier_reference_needs_its_observation_and_bad_params_are_named() {
        let metric = PerformanceCorrelation::new(PerformanceCorrelationParams::default()).unwrap();
        let kinds: Vec<String> = metric.requires().iter().map(|r| r.kind.to_string()).collect();
        assert!(kinds.contains(&observation::REFERENCE_PREDICTIONS.to_string()));
        let err = PerformanceCorrelation::new(PerformanceCorrelationParams {
            reference: "linear".into(),
            ..Default::default()
        })
        .err()
        .unwrap();
        assert!(err.to_string().starts_with("parameter `reference`"), "{err}");
        let mut metric = PerformanceCorrelation::new(PerformanceCorrelationParams {
            reference: "checkpoint".into(),
            reference_step: 99,
            ..Default::default()
        })
        .unwrap();
        observe(&mut metric, 10, &[0, 1], &[0, 1], None);
        let services = TestHost::new(0);
        let err = metric.finish(&services.host()).err().unwrap();
        assert!(err.to_string().contains("no checkpoint at or after step 99"), "{err}");
    }

    #[test]
    fn a_classifier_reference_reports_the_four_curves() {
        let mut metric = PerformanceCorrelation::new(PerformanceCorrelationParams::default()).unwrap();
        let y = [0, 0, 1, 1];
        observe(&mut metric, 1, &[0, 0, 0, 1], &y, Some(&[0, 0, 1, 1]));
        observe(&mut metric, 2, &[0, 0, 1, 1], &y, Some(&[0, 0, 1, 1]));
        let services = TestHost::new(0);
        let report = metric.finish(&services.host()).unwrap();
        let names: Vec<&str> = report.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names[..4],
            ["information/I(F;Y)", "information/mu_Y(F;L)", "information/I(F;Y|L)", "information/I(L;Y)"]
        );
        let scalar = |name: &str| report.scalars.iter().find(|s| s.name.as_str() == name).unwrap().value;
        assert!((scalar("i_ly") - 1.0).abs() < 1e-12 && (scalar("final_mu") - 1.0).abs() < 1e-12);
        // F at each checkpoint, L and Y: enough to recompute every curve.
        let array = |name: &str| &report.arrays.iter().find(|a| a.name.as_str() == name).unwrap().array;
        assert_eq!(array("predictions").shape.as_slice(), &[2, 4]);
        assert_eq!(array("predictions").as_i64().unwrap(), &[0, 0, 0, 1, 0, 0, 1, 1]);
        assert_eq!(array("reference_predictions").as_i64().unwrap(), &[0, 0, 1, 1]);
        assert_eq!(array("labels").as_i64().unwrap(), &y);
        assert_eq!(array("steps").as_i64().unwrap(), &[1, 2]);
        assert_eq!(report.tables[0].rows.len(), 2);
    }
}
