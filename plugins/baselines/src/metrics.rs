//! Accuracy over training.

use tessera_sdk::{
    observation, params, Checkpoint, Component, Error, Host, Metric, ObservationRequest, Observations, Report, Result,
    State,
};

params! {
    /// Parameters of [`Accuracy`].
    pub struct AccuracyParams {
        /// The split to measure on.
        pub split: String = "test".to_string(),
    }
}

/// Fraction of correct hard predictions on a split, at every checkpoint.
pub struct Accuracy {
    split: String,
    steps: Vec<f64>,
    examples: Vec<f64>,
    accuracy: Vec<f64>,
}

impl Component for Accuracy {
    fn save_state(&self) -> Result<State> {
        State::encode(&(&self.steps, &self.examples, &self.accuracy))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        (self.steps, self.examples, self.accuracy) = State::decode::<(Vec<f64>, Vec<f64>, Vec<f64>)>(bytes)?;
        Ok(())
    }

    const NAME: &'static str = "accuracy";
    const SUMMARY: &'static str = "Accuracy of hard predictions on a split, per checkpoint.";
    type Params = AccuracyParams;

    fn new(params: AccuracyParams) -> Result<Self> {
        if params.split.is_empty() {
            return Err(Error::invalid_param("split", "must name a split, e.g. \"test\""));
        }
        Ok(Accuracy { split: params.split, steps: vec![], examples: vec![], accuracy: vec![] })
    }
}

/// Fraction of positions where `predictions` equals `labels`.
pub fn accuracy(predictions: &[i64], labels: &[i64]) -> Result<f64> {
    if predictions.len() != labels.len() {
        return Err(Error::msg(format!("{} predictions for {} labels", predictions.len(), labels.len())));
    }
    if labels.is_empty() {
        return Err(Error::msg("no examples to measure accuracy on"));
    }
    let correct = predictions.iter().zip(labels).filter(|(p, y)| p == y).count();
    Ok(correct as f64 / labels.len() as f64)
}

impl Metric for Accuracy {
    fn requires(&self) -> Vec<ObservationRequest> {
        vec![
            ObservationRequest::new(&self.split, observation::PREDICTIONS),
            ObservationRequest::new(&self.split, observation::LABELS),
        ]
    }

    fn observe(&mut self, checkpoint: &Checkpoint, observations: &Observations, _host: &Host) -> Result<()> {
        let predictions = observations.i64(&self.split, observation::PREDICTIONS)?;
        let labels = observations.i64(&self.split, observation::LABELS)?;
        let value = accuracy(predictions, labels)?;
        log::debug!("step {}: {} accuracy {value:.4}", checkpoint.step, self.split);
        self.steps.push(checkpoint.step as f64);
        self.examples.push(checkpoint.examples_seen as f64);
        self.accuracy.push(value);
        Ok(())
    }

    fn finish(&mut self, _host: &Host) -> Result<Report> {
        let mut report = Report::new();
        let name = format!("{}_accuracy", self.split);
        if let Some(last) = self.accuracy.last() {
            report.scalar(&name, *last);
            report.scalar(&format!("best_{name}"), self.accuracy.iter().cloned().fold(f64::MIN, f64::max));
        }
        report.series(&name, "step", "accuracy", self.steps.clone(), self.accuracy.clone());
        report.series(
            &format!("{name}_by_examples"),
            "examples seen",
            "accuracy",
            self.examples.clone(),
            self.accuracy.clone(),
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_counts_matches() {
        assert_eq!(accuracy(&[1, 2, 3, 4], &[1, 2, 0, 0]).unwrap(), 0.5);
        assert!(accuracy(&[1], &[1, 2]).is_err());
        assert!(accuracy(&[], &[]).is_err());
    }
}
