//! The plugin contracts the host checks at the boundary. A plugin's output
//! that breaks one fails its variant with an error naming the component;
//! nothing it returned is written out. (The sampler's exactly-once contract
//! is checked as batches are drawn, in the host's training loop; its loss
//! weights when it hands them over.)

use std::collections::BTreeSet;

use tessera_sdk::{Report, SeedChoice};

use crate::report::ReportJson;

/// A broken plugin contract: what fails the variant, naming the component.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Violation {
    /// A report with bad names or values.
    #[error("{component} broke the report contract: {detail}")]
    Report {
        /// `plugin.component`.
        component: String,
        /// What is wrong.
        detail: String,
    },
    /// A graph objective's answer that is no distribution over valid seed sets.
    #[error("{component} broke the graph-objective contract: {detail}")]
    SeedChoice {
        /// `plugin.component`.
        component: String,
        /// What is wrong.
        detail: String,
    },
    /// A sampler's epoch that does not visit the examples as its sampling mode says.
    #[error("{component} broke the sampler contract: the order of epoch {epoch} {detail}; {rule}")]
    Order {
        /// `plugin.component`.
        component: String,
        /// The epoch, 1-based.
        epoch: u64,
        /// The repeats or omissions.
        detail: String,
        /// The rule broken.
        rule: &'static str,
    },
    /// A sampler's loss weights that are not one finite, non-negative
    /// number per example.
    #[error("{component} broke the sampler contract: the loss weights of epoch {epoch} {detail}; an epoch's weights are one finite number of at least 0 per stored example")]
    Weights {
        /// `plugin.component`.
        component: String,
        /// The epoch, 1-based.
        epoch: u64,
        /// What is wrong.
        detail: String,
    },
    /// A sampler's per-step choice that is not a set of candidates with
    /// valid weights.
    #[error("{component} broke the sampler contract: its choice at step {step} {detail}; a step's choice is at least one distinct position below the number of candidates, with no weights or one finite weight of at least 0 per position")]
    Choice {
        /// `plugin.component`.
        component: String,
        /// The optimizer step, 0-based.
        step: u64,
        /// What is wrong.
        detail: String,
    },
    /// A finetuner's learning-rate multipliers that are not one finite,
    /// non-negative number per tensor.
    #[error("{component} broke the finetuner contract: its learning-rate multipliers {detail}; multipliers are one finite number of at least 0 per tensor of the model")]
    Multipliers {
        /// `plugin.component`.
        component: String,
        /// What is wrong.
        detail: String,
    },
    /// A finetuner's layer that the model does not have.
    #[error("{component} broke the finetuner contract: it chose layer {layer}, and the model has {layers}")]
    Layer {
        /// `plugin.component`.
        component: String,
        /// The position chosen.
        layer: u32,
        /// How many layers the model has.
        layers: usize,
    },
}

type Result<T> = std::result::Result<T, Violation>;

/// How far the weights of a seed-set distribution may sum from 1.
pub const WEIGHT_TOLERANCE: f64 = 1e-6;

/// A plugin's report, checked ([`Report::check`], the SDK's, so that a
/// plugin's own tests check the same): names non-empty and unique per kind,
/// scalars finite, every table row as long as its header, every series' x
/// and y of one length and finite, array names plain and shapes whole.
pub fn plugin_report(component: &str, report: &Report) -> Result<ReportJson> {
    report.check().map_err(|detail| Violation::Report { component: component.into(), detail })?;
    Ok(ReportJson::from(report))
}

/// A graph objective's answer for budget `k` on `nodes` nodes, checked: at
/// least one seed set, each of at most `k` distinct nodes of the graph, and
/// weights that are a probability distribution.
pub fn seed_choice(component: &str, choice: &SeedChoice, k: u32, nodes: u32) -> Result<()> {
    let broken = |detail: String| Violation::SeedChoice { component: component.into(), detail };
    if choice.sets.is_empty() {
        return Err(broken("it chose no seed set".into()));
    }
    let mut total = 0.0;
    for (i, set) in choice.sets.iter().enumerate() {
        if set.seeds.len() > k as usize {
            return Err(broken(format!("seed set {i} has {} nodes, over the budget of {k}", set.seeds.len())));
        }
        if let Some(bad) = set.seeds.iter().find(|&&u| u >= nodes) {
            return Err(broken(format!("seed {bad} of set {i} is not a node (n = {nodes})")));
        }
        if set.seeds.iter().collect::<BTreeSet<_>>().len() != set.seeds.len() {
            return Err(broken(format!("seed set {i} names a node twice")));
        }
        if !(set.weight.is_finite() && set.weight >= 0.0) {
            return Err(broken(format!("seed set {i} has weight {}; weights are probabilities", set.weight)));
        }
        total += set.weight;
    }
    if (total - 1.0).abs() > WEIGHT_TOLERANCE {
        return Err(broken(format!("the weights of its {} seed sets sum to {total}, not 1", choice.sets.len())));
    }
    Ok(())
}

/// The sampler contract of a sampling mode for a whole epoch (1-based
/// `epoch`); `visits` counts each example's visits.
pub fn sampled(component: &str, mode: tessera_sdk::Sampling, epoch: u64, visits: &[u8]) -> Result<()> {
    match mode {
        tessera_sdk::Sampling::Permutation => exactly_once(component, epoch, visits),
        tessera_sdk::Sampling::Subset => at_most_once(component, epoch, visits),
        tessera_sdk::Sampling::WithReplacement => Ok(()),
    }
}

/// A subset sampler's epoch visits no example twice.
fn at_most_once(component: &str, epoch: u64, visits: &[u8]) -> Result<()> {
    let repeated: Vec<String> =
        visits.iter().enumerate().filter(|(_, &v)| v > 1).map(|(i, _)| i.to_string()).take(5).collect();
    if repeated.is_empty() {
        return Ok(());
    }
    let detail = format!("visits example(s) {} more than once", repeated.join(", "));
    Err(Violation::Order { component: component.into(), epoch, detail, rule: SUBSET_RULE })
}

/// The sampler contract: a whole epoch (1-based `epoch`) visits every
/// example exactly once; `visits` counts each example's visits.
pub fn exactly_once(component: &str, epoch: u64, visits: &[u8]) -> Result<()> {
    let repeated: Vec<usize> = visits.iter().enumerate().filter(|(_, &v)| v > 1).map(|(i, _)| i).collect();
    let missing: Vec<usize> = visits.iter().enumerate().filter(|(_, &v)| v == 0).map(|(i, _)| i).collect();
    let first = |ids: &[usize]| ids.iter().take(5).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    let detail = match (repeated.is_empty(), missing.is_empty()) {
        (true, true) => return Ok(()),
        (false, _) => format!("visits {} example(s) more than once (first: {})", repeated.len(), first(&repeated)),
        (true, false) => {
            format!("leaves out {} of {} examples (first: {})", missing.len(), visits.len(), first(&missing))
        }
    };
    Err(Violation::Order { component: component.into(), epoch, detail, rule: PERMUTATION_RULE })
}

const PERMUTATION_RULE: &str = "an epoch order must visit every stored example exactly once";
const SUBSET_RULE: &str = "a subset sampler's epoch order visits each stored example at most once";

/// A sampler's loss weights of epoch `epoch` (1-based): one per example of
/// `examples`, each finite and at least 0.
pub fn example_weights(component: &str, epoch: u64, weights: &[f32], examples: u64) -> Result<()> {
    let bad = |detail: String| Err(Violation::Weights { component: component.into(), epoch, detail });
    if weights.len() as u64 != examples {
        return bad(format!("are {} numbers for {examples} examples", weights.len()));
    }
    match weights.iter().position(|w| !w.is_finite() || *w < 0.0) {
        Some(id) => bad(format!("give example {id} the weight {}", weights[id])),
        None => Ok(()),
    }
}

/// A sampler's choice at step `step` among `candidates` candidates: at least
/// one position, each below `candidates` and none twice; no weights or one
/// finite weight of at least 0 per position.
pub fn chosen(component: &str, step: u64, chosen: &tessera_sdk::Chosen, candidates: usize) -> Result<()> {
    let bad = |detail: String| Err(Violation::Choice { component: component.into(), step, detail });
    let positions = chosen.positions.as_slice();
    if positions.is_empty() {
        return bad("is empty".into());
    }
    if let Some(p) = positions.iter().find(|&&p| p as usize >= candidates) {
        return bad(format!("names position {p} of {candidates} candidates"));
    }
    let mut seen = vec![false; candidates];
    if let Some(p) = positions.iter().find(|&&p| std::mem::replace(&mut seen[p as usize], true)) {
        return bad(format!("names position {p} twice"));
    }
    let weights = chosen.weights.as_slice();
    if !weights.is_empty() && weights.len() != positions.len() {
        return bad(format!("has {} weights for {} positions", weights.len(), positions.len()));
    }
    match weights.iter().find(|w| !w.is_finite() || **w < 0.0) {
        Some(w) => bad(format!("gives the weight {w}")),
        None => Ok(()),
    }
}

/// A finetuner's selection, checked against the model's `layers`: positions
/// of layers it has, and no multipliers or one finite, non-negative
/// multiplier per tensor.
pub fn selection(component: &str, selection: &tessera_sdk::Selection, layers: &[tessera_sdk::LayerInfo]) -> Result<()> {
    self::layers(component, &selection.trainable, layers.len())?;
    let multipliers = selection.multipliers.as_slice();
    let tensors: usize = layers.iter().map(|l| l.tensors.len()).sum();
    let bad = |detail: String| Err(Violation::Multipliers { component: component.into(), detail });
    if !multipliers.is_empty() && multipliers.len() != tensors {
        return bad(format!("are {} numbers for {tensors} tensors", multipliers.len()));
    }
    match multipliers.iter().position(|m| !m.is_finite() || *m < 0.0) {
        Some(t) => bad(format!("give tensor {t} the multiplier {}", multipliers[t])),
        None => Ok(()),
    }
}

/// A finetuner's chosen layer positions, checked against the model's `layers`.
pub fn layers(component: &str, chosen: &[u32], layers: usize) -> Result<()> {
    match chosen.iter().find(|&&p| p as usize >= layers) {
        Some(&layer) => Err(Violation::Layer { component: component.into(), layer, layers }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::{Scalar, Series, Table, WeightedSeeds as SeedSet};

    fn set(weight: f64, seeds: &[u32]) -> SeedSet {
        SeedSet { weight, seeds: seeds.to_vec().into() }
    }

    fn choice(sets: Vec<SeedSet>) -> SeedChoice {
        SeedChoice { sets: sets.into(), report: Report::default() }
    }

    #[test]
    fn multipliers_must_be_one_finite_non_negative_number_per_tensor() {
        let tensor = |name: &str| tessera_sdk::TensorInfo { name: name.into(), elements: 4 };
        let mut layer = tessera_sdk::LayerInfo::new("l0", 8, 8, 0);
        layer.tensors = vec![tensor("l0.weight"), tensor("l0.bias")].into();
        let layers = [layer, tessera_sdk::LayerInfo::new("head", 0, 0, 1)];
        let of = |m: Vec<f32>| tessera_sdk::Selection::multipliers(m, Report::new());
        assert!(selection("p.f", &of(vec![0.0, 2.5]), &layers).is_ok());
        assert!(selection("p.f", &of(vec![]), &layers).is_ok(), "none: the layer set rules");
        let error = |m: Vec<f32>| selection("p.f", &of(m), &layers).unwrap_err().to_string();
        assert!(error(vec![1.0])
            .contains("p.f broke the finetuner contract: its learning-rate multipliers are 1 numbers for 2 tensors"));
        assert!(error(vec![1.0, -0.5]).contains("give tensor 1 the multiplier -0.5"));
        assert!(error(vec![f32::INFINITY, 1.0]).contains("multiplier inf"));
        let bad_layer = tessera_sdk::Selection::layers(vec![2], Report::new());
        assert!(selection("p.f", &bad_layer, &layers).unwrap_err().to_string().contains("chose layer 2"));
    }

    #[test]
    fn a_step_s_choice_must_be_distinct_candidates_with_valid_weights() {
        let choice = |p: Vec<u32>, w: Vec<f32>| tessera_sdk::Chosen::positions(p).weighted(w);
        assert!(chosen("p.s", 3, &choice(vec![2, 0], vec![]), 4).is_ok());
        assert!(chosen("p.s", 3, &choice(vec![2, 0], vec![0.0, 1.5]), 4).is_ok());
        let error = |c: tessera_sdk::Chosen| chosen("p.s", 3, &c, 4).unwrap_err().to_string();
        assert!(error(choice(vec![], vec![])).contains("p.s broke the sampler contract: its choice at step 3 is empty"));
        assert!(error(choice(vec![4], vec![])).contains("position 4 of 4 candidates"));
        assert!(error(choice(vec![1, 1], vec![])).contains("position 1 twice"));
        assert!(error(choice(vec![1, 2], vec![1.0])).contains("1 weights for 2 positions"));
        assert!(error(choice(vec![1], vec![f32::NAN])).contains("weight NaN"));
        assert!(error(choice(vec![1], vec![-1.0])).contains("weight -1"));
    }

    #[test]
    fn seed_choices_must_be_distributions_over_valid_sets() {
        assert!(seed_choice("p.o", &choice(vec![set(0.5, &[1]), set(0.5, &[2, 3])]), 2, 5).is_ok());
        let error = |c: SeedChoice| seed_choice("p.o", &c, 2, 5).unwrap_err().to_string();
        assert!(error(choice(vec![])).contains("no seed set"));
        assert!(error(choice(vec![set(0.6, &[1])])).contains("sum to 0.6"));
        assert!(error(choice(vec![set(-0.5, &[1]), set(1.5, &[2])])).contains("weight -0.5"));
        assert!(error(choice(vec![set(f64::NAN, &[1])])).contains("weight NaN"));
        assert!(error(choice(vec![set(1.0, &[1, 2, 3])])).contains("over the budget"));
        assert!(error(choice(vec![set(1.0, &[9])])).contains("not a node"));
        assert!(error(choice(vec![set(1.0, &[1, 1])])).contains("twice"));
        assert!(error(choice(vec![set(0.2, &[1])])).starts_with("p.o broke the graph-objective contract"));
    }

    #[test]
    fn reports_must_be_finite_and_rectangular() {
        let mut r = Report::default();
        r.scalars.push(Scalar { name: "a".into(), value: f64::NAN });
        assert!(plugin_report("m.x", &r).unwrap_err().to_string().contains("scalar `a` is NaN"));
        let mut r = Report::default();
        r.series.push(Series {
            name: "s".into(),
            x_label: "".into(),
            y_label: "".into(),
            x: vec![1.0, 2.0].into(),
            y: vec![1.0].into(),
        });
        assert!(plugin_report("m.x", &r).unwrap_err().to_string().contains("2 x values and 1 y values"));
        let mut r = Report::default();
        r.tables.push(Table {
            name: "t".into(),
            columns: vec!["a".into(), "b".into()].into(),
            rows: vec![vec![tessera_sdk::Cell::Integer(1)].into()].into(),
        });
        assert!(plugin_report("m.x", &r).unwrap_err().to_string().contains("1 cells for 2 columns"));
    }

    #[test]
    fn headlines_are_kept_and_must_name_a_scalar() {
        let mut r = Report::default();
        r.headline("bound", 0.02).scalar("other", 1.0).defined_headline("undefined", f64::NAN);
        assert_eq!(plugin_report("p.m", &r).unwrap().headline, vec!["bound".to_string()], "NaN: left out");
        r.headlines.push("missing".into());
        let err = plugin_report("p.m", &r).unwrap_err().to_string();
        assert!(err.contains("p.m") && err.contains("headline `missing` names no scalar"), "{err}");
    }

    #[test]
    fn an_epoch_visits_every_example_once() {
        assert!(exactly_once("p.s", 1, &[1, 1, 1]).is_ok());
        let err = exactly_once("p.s", 2, &[1, 2, 0]).unwrap_err().to_string();
        assert!(err.contains("epoch 2 visits 1 example(s) more than once (first: 1)"), "{err}");
        let err = exactly_once("p.s", 1, &[1, 0, 0]).unwrap_err().to_string();
        assert!(err.contains("leaves out 2 of 3 examples (first: 1, 2)"), "{err}");
        assert!(matches!(layers("p.f", &[0, 7], 3), Err(Violation::Layer { layer: 7, layers: 3, .. })));
    }

    #[test]
    fn loss_weights_are_one_finite_non_negative_number_per_example() {
        assert!(example_weights("p.s", 1, &[0.0, 2.5, 1.0], 3).is_ok());
        let short = example_weights("p.s", 2, &[1.0], 3).unwrap_err().to_string();
        assert!(
            short.starts_with("p.s broke the sampler contract: the loss weights of epoch 2 are 1 numbers for 3"),
            "{short}"
        );
        let negative = example_weights("p.s", 1, &[1.0, -0.5, 1.0], 3).unwrap_err().to_string();
        assert!(negative.contains("give example 1 the weight -0.5"), "{negative}");
        assert!(example_weights("p.s", 1, &[f32::NAN, 1.0, 1.0], 3).unwrap_err().to_string().contains("NaN"));
        assert!(example_weights("p.s", 1, &[f32::INFINITY, 1.0, 1.0], 3).is_err());
    }
}
