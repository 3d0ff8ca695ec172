//! The plugin contracts the host checks at the boundary. A plugin's output
//! that breaks one fails its variant with an error naming the component;
//! nothing it returned is written out. (The sampler's exactly-once contract
//! is checked as batches are drawn, in [`crate::train::fit`].)

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use tessera_sdk::{Report, SeedChoice};

use crate::report::ReportJson;

/// How far the weights of a seed-set distribution may sum from 1.
pub const WEIGHT_TOLERANCE: f64 = 1e-6;

/// A plugin's report, checked: names non-empty and unique per kind, scalars
/// finite, every table row as long as its header, every series' x and y of
/// one length and finite.
pub fn plugin_report(component: &str, report: &Report) -> Result<ReportJson> {
    let broken = |what: String| anyhow::anyhow!("{component} broke the report contract: {what}");
    let mut names = BTreeSet::new();
    for s in report.scalars.iter() {
        if s.name.is_empty() || !names.insert(s.name.as_str()) {
            return Err(broken(format!("scalar name `{}` is empty or repeated", s.name)));
        }
        if !s.value.is_finite() {
            return Err(broken(format!("scalar `{}` is {}; report only finite numbers", s.name, s.value)));
        }
    }
    let mut names = BTreeSet::new();
    for s in report.series.iter() {
        if s.name.is_empty() || !names.insert(s.name.as_str()) {
            return Err(broken(format!("series name `{}` is empty or repeated", s.name)));
        }
        if s.x.len() != s.y.len() {
            return Err(broken(format!("series `{}` has {} x values and {} y values", s.name, s.x.len(), s.y.len())));
        }
        if s.x.iter().chain(s.y.iter()).any(|v| !v.is_finite()) {
            return Err(broken(format!("series `{}` holds a value that is not finite", s.name)));
        }
    }
    let mut names = BTreeSet::new();
    for t in report.tables.iter() {
        if t.name.is_empty() || !names.insert(t.name.as_str()) {
            return Err(broken(format!("table name `{}` is empty or repeated", t.name)));
        }
        if let Some((i, row)) = t.rows.iter().enumerate().find(|(_, r)| r.len() != t.columns.len()) {
            return Err(broken(format!(
                "row {i} of table `{}` has {} cells for {} columns",
                t.name,
                row.len(),
                t.columns.len()
            )));
        }
    }
    Ok(ReportJson::from(report))
}

/// Adds the host's figures to a plugin's report in one role; a name the
/// plugin used already is a contract violation, never overwritten.
pub fn merge_host(component: &str, plugin: &mut ReportJson, host: ReportJson) -> Result<()> {
    let taken = |name: &str| format!("{component} reports `{name}`, a name the host reports in this role; rename it");
    for (name, value) in host.scalars {
        if plugin.scalars.insert(name.clone(), value).is_some() {
            bail!(taken(&name));
        }
    }
    for series in host.series {
        if plugin.series.iter().any(|s| s.name == series.name) {
            bail!(taken(&series.name));
        }
        plugin.series.push(series);
    }
    for table in host.tables {
        if plugin.tables.iter().any(|t| t.name == table.name) {
            bail!(taken(&table.name));
        }
        plugin.tables.push(table);
    }
    Ok(())
}

/// A graph objective's answer for budget `k` on `nodes` nodes, checked: at
/// least one seed set, each of at most `k` distinct nodes of the graph, and
/// weights that are a probability distribution.
pub fn seed_choice(component: &str, choice: &SeedChoice, k: u32, nodes: u32) -> Result<()> {
    let broken = |what: String| anyhow::anyhow!("{component} broke the graph-objective contract: {what}");
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
    fn the_host_never_overwrites_a_plugin_figure() {
        let mut plugin = ReportJson::default();
        plugin.scalars.insert("expected_spread".into(), 3.0);
        let mut host = ReportJson::default();
        host.scalars.insert("expected_spread".into(), 4.0);
        let err = merge_host("p.o", &mut plugin, host).unwrap_err().to_string();
        assert!(err.contains("`expected_spread`, a name the host reports"), "{err}");
    }
}
