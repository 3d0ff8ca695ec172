//! Forgetting events (Toneva et al., 2019).
//!
//! Follow each example through its presentations in training: a forgetting
//! event is a presentation at which it is misclassified after being
//! classified correctly at its previous one. Examples learned at some point
//! and never forgotten are "unforgettable"; examples never classified
//! correctly are never learned. Correctness is the training forward pass's
//! own (the per-step observations), so following every example costs no
//! extra pass. With label noise, the events of flipped and clean examples
//! are reported apart.

use std::collections::BTreeMap;

use tessera_sdk::prelude::*;

/// Counts forgetting events per example from the per-step observations.
pub struct Forgetting {
    /// Per example id: (presentations, events, ever correct, correct at the last one).
    examples: BTreeMap<i64, Presentations>,
    /// Per example id: whether its training label was flipped (at the last checkpoint).
    flipped: BTreeMap<i64, bool>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Presentations {
    count: u64,
    events: u64,
    learned: bool,
    last_correct: bool,
}

impl Component for Forgetting {
    fn save_state(&self) -> Result<State> {
        let examples: BTreeMap<i64, (u64, u64, bool, bool)> =
            self.examples.iter().map(|(&id, p)| (id, (p.count, p.events, p.learned, p.last_correct))).collect();
        State::encode(&(examples, &self.flipped))
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let (examples, flipped) = State::decode::<(BTreeMap<i64, (u64, u64, bool, bool)>, BTreeMap<i64, bool>)>(bytes)?;
        self.examples = (examples.into_iter())
            .map(|(id, (count, events, learned, last_correct))| {
                (id, Presentations { count, events, learned, last_correct })
            })
            .collect();
        self.flipped = flipped;
        Ok(())
    }

    const NAME: &'static str = "forgetting";
    const SUMMARY: &'static str =
        "Forgetting events per example (Toneva et al. 2019) from the training forward pass; flipped and clean labels apart.";
    type Params = NoParams;

    fn new(_: NoParams) -> Result<Self> {
        Ok(Forgetting { examples: BTreeMap::new(), flipped: BTreeMap::new() })
    }
}

impl Forgetting {
    /// One presentation of example `id`, classified `correct`ly or not.
    fn present(&mut self, id: i64, correct: bool) {
        let p = self.examples.entry(id).or_default();
        if p.count > 0 && p.last_correct && !correct {
            p.events += 1;
        }
        p.count += 1;
        p.learned |= correct;
        p.last_correct = correct;
    }

    /// The examples whose flipped flag is `flipped`.
    fn group(&self, flipped: bool) -> Vec<&Presentations> {
        self.examples.iter().filter(|(id, _)| self.flipped.get(id) == Some(&flipped)).map(|(_, p)| p).collect()
    }

    /// Mean events, and the share never learned, of the examples whose
    /// flipped flag is `flipped`.
    fn group_figures(&self, flipped: bool) -> (f64, f64) {
        let group = self.group(flipped);
        let n = group.len().max(1) as f64;
        let events = group.iter().map(|p| p.events).sum::<u64>() as f64 / n;
        (events, group.iter().filter(|p| !p.learned).count() as f64 / n)
    }
}

impl Metric for Forgetting {
    fn requires(&self) -> Vec<ObservationRequest> {
        [observation::STEP_IDS, observation::STEP_CORRECT, observation::EXAMPLE_IDS, observation::LABELS]
            .into_iter()
            .chain([observation::CLEAN_LABELS])
            .map(|kind| ObservationRequest::new("train", kind))
            .collect()
    }

    fn observe(&mut self, _: &Checkpoint, observations: &Observations, _: &Host) -> Result<()> {
        let ids = observations.i64("train", observation::STEP_IDS)?;
        let correct = observations.i64("train", observation::STEP_CORRECT)?;
        for (&id, &c) in ids.iter().zip(correct) {
            self.present(id, c == 1);
        }
        let (all, labels) =
            (observations.i64("train", observation::EXAMPLE_IDS)?, observations.i64("train", observation::LABELS)?);
        let clean = observations.i64("train", observation::CLEAN_LABELS)?;
        self.flipped = all.iter().zip(labels.iter().zip(clean)).map(|(&id, (l, c))| (id, l != c)).collect();
        Ok(())
    }

    fn finish(&mut self, _: &Host) -> Result<Report> {
        let n = self.examples.len().max(1) as f64;
        let count = |f: &dyn Fn(&Presentations) -> bool| self.examples.values().filter(|p| f(p)).count() as f64;
        let total: u64 = self.examples.values().map(|p| p.events).sum();
        let mut report = Report::new();
        report
            .scalar("forgetting_events", total as f64)
            .headline("events_per_example", total as f64 / n)
            .headline("unforgettable_fraction", count(&|p| p.learned && p.events == 0) / n)
            .scalar("never_learned_fraction", count(&|p| !p.learned) / n);
        if self.flipped.values().any(|&f| f) {
            let ((flipped_events, flipped_never), (clean_events, clean_never)) =
                (self.group_figures(true), self.group_figures(false));
            report
                .headline("events_per_flipped_example", flipped_events)
                .headline("events_per_clean_example", clean_events)
                .headline("never_learned_flipped_fraction", flipped_never)
                .headline("never_learned_clean_fraction", clean_never);
        }
        let rows = self.examples.iter().map(|(&id, p)| {
            let flipped = self.flipped.get(&id).copied().unwrap_or(false) as i64;
            vec![
                Cell::Integer(id),
                Cell::Integer(p.count as i64),
                Cell::Integer(p.events as i64),
                Cell::Integer(p.learned as i64),
                Cell::Integer(flipped),
            ]
        });
        report.table(
            "per_example",
            &["example_id", "presentations", "forgetting_events", "learned", "flipped"],
            rows.collect(),
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::testing::{self, TestHost};

    fn obs(kind: &str, values: Vec<i64>) -> tessera_sdk::Observation {
        testing::i64_observation("train", kind, values)
    }

    #[test]
    fn a_correct_then_wrong_presentation_is_one_event_and_flipped_examples_are_apart() {
        let mut m = Forgetting::new(NoParams {}).unwrap();
        // Example 0: right, wrong, right, wrong (2 events); 1: always right; 2: never right.
        let observations = [
            obs(observation::STEP_IDS, vec![0, 1, 2, 0, 1, 2, 0, 0]),
            obs(observation::STEP_CORRECT, vec![1, 1, 0, 0, 1, 0, 1, 0]),
            obs(observation::EXAMPLE_IDS, vec![0, 1, 2]),
            obs(observation::LABELS, vec![3, 1, 2]),
            obs(observation::CLEAN_LABELS, vec![0, 1, 2]),
        ];
        let host = TestHost::new(0);
        m.observe(&testing::checkpoint(1), &testing::observations(&observations), &host.host()).unwrap();
        let report = m.finish(&host.host()).unwrap();
        let scalar = |name: &str| report.scalars.iter().find(|s| s.name.as_str() == name).unwrap().value;
        assert_eq!(scalar("forgetting_events"), 2.0);
        assert_eq!(scalar("unforgettable_fraction"), 1.0 / 3.0);
        assert_eq!(scalar("never_learned_fraction"), 1.0 / 3.0);
        assert_eq!((scalar("events_per_flipped_example"), scalar("events_per_clean_example")), (2.0, 0.0));
        assert_eq!((scalar("never_learned_flipped_fraction"), scalar("never_learned_clean_fraction")), (0.0, 0.5));
    }
}
