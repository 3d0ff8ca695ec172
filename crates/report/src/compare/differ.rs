//! What differs between the runs a comparison reads: their variants, the
//! settings of each shared variant (the data's above all), and the settings
//! that tell the variants of a run apart.

use crate::error::{ReportError, Result};
use crate::settings::{differing, RunSettings};

/// One setting that differs between the runs: its key and each run's value
/// (`–` where a run lacks it), over the shared variants where it differs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Difference {
    /// `section.key`.
    pub key: String,
    /// Each run's value, in the runs' order.
    pub values: Vec<String>,
    /// The variants it differs in (all of them: empty).
    pub variants: Vec<String>,
}

/// What differs between the runs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Differences {
    /// Settings of the shared variants that differ between runs.
    pub settings: Vec<Difference>,
    /// The variants (seeds aside) only some runs have, with the runs that lack them.
    pub unshared: Vec<(String, Vec<String>)>,
    /// The settings that tell the first run's variants apart.
    pub between_variants: Vec<String>,
}

impl Differences {
    /// What differs between `runs` (label, settings) over `shared` variants
    /// (the others are `all` minus `shared`).
    pub fn find(runs: &[(&str, &RunSettings)], shared: &[String], all: &[Vec<String>]) -> Differences {
        let mut settings: Vec<Difference> = Vec::new();
        for variant in shared {
            let each: Vec<_> = runs.iter().filter_map(|(_, s)| s.of(variant)).collect();
            for key in differing(each.iter().copied()) {
                let values: Vec<String> =
                    each.iter().map(|s| s.get(&key).cloned().unwrap_or_else(|| "–".into())).collect();
                match settings.iter_mut().find(|d| d.key == key && d.values == values) {
                    Some(d) => d.variants.push(variant.clone()),
                    None => settings.push(Difference { key, values, variants: vec![variant.clone()] }),
                }
            }
        }
        for d in &mut settings {
            if d.variants.len() == shared.len() {
                d.variants.clear();
            }
        }
        let mut unshared: Vec<(String, Vec<String>)> = Vec::new();
        for names in all {
            for name in names.iter().filter(|n| !shared.contains(n)) {
                if unshared.iter().all(|(n, _)| n != name) {
                    let lacking =
                        runs.iter().zip(all).filter(|(_, a)| !a.contains(name)).map(|((l, _), _)| l.to_string());
                    unshared.push((name.clone(), lacking.collect()));
                }
            }
        }
        let between_variants = runs.first().map(|(_, s)| s.differing()).unwrap_or_default();
        Differences { settings, unshared, between_variants }
    }

    /// The differences that make figures incomparable: other data, or
    /// variants only some runs have. An error unless `force`.
    pub fn check(&self, force: bool) -> Result<()> {
        let data: Vec<&Difference> = self.settings.iter().filter(|d| d.key.starts_with("data.")).collect();
        if force || (data.is_empty() && self.unshared.is_empty()) {
            return Ok(());
        }
        let mut why = Vec::new();
        if !data.is_empty() {
            why.push(format!(
                "they ran on different data ({})",
                data.iter().map(|d| d.key.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        if !self.unshared.is_empty() {
            let names: Vec<&str> = self.unshared.iter().map(|(n, _)| n.as_str()).collect();
            why.push(format!("their variants differ ({} not in every run)", names.join(", ")));
        }
        Err(ReportError::RunsDiffer(why.join("; ")))
    }

    /// The differences as lines for the console, each run's value after its label.
    pub fn describe(&self, labels: &[&str]) -> String {
        let mut out = String::new();
        if self.settings.is_empty() {
            out += "the runs' settings are the same (seeds and executors aside)\n";
        } else {
            out += "settings that differ between the runs:\n";
        }
        for d in &self.settings {
            let values: Vec<String> = labels.iter().zip(&d.values).map(|(l, v)| format!("{l} = {v}")).collect();
            let scope = if d.variants.is_empty() { String::new() } else { format!(" (in {})", d.variants.join(", ")) };
            out += &format!("  {}: {}{scope}\n", d.key, values.join(", "));
        }
        for (name, lacking) in &self.unshared {
            out += &format!("  variant {name}: not in {}\n", lacking.join(", "));
        }
        if !self.between_variants.is_empty() {
            out += &format!("the variants differ in: {}\n", self.between_variants.join(", "));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::FlatSettings;

    fn run(variants: &[(&str, &[(&str, &str)])]) -> RunSettings {
        let flat = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<FlatSettings>()
        };
        RunSettings { variants: variants.iter().map(|(n, pairs)| (n.to_string(), flat(pairs))).collect() }
    }

    #[test]
    fn a_step_size_that_differs_is_named_and_other_data_is_refused() {
        let a = run(&[
            ("seq@1", &[("train.lr", "0.05"), ("data.examples", "3000"), ("sampler.use", "s")]),
            ("shuf@1", &[("train.lr", "0.05"), ("data.examples", "3000"), ("sampler.use", "f")]),
        ]);
        let b = run(&[
            ("seq@1", &[("train.lr", "0.01"), ("data.examples", "3000"), ("sampler.use", "s")]),
            ("shuf@1", &[("train.lr", "0.01"), ("data.examples", "3000"), ("sampler.use", "f")]),
        ]);
        let shared = vec!["seq".to_string(), "shuf".to_string()];
        let all = vec![shared.clone(), shared.clone()];
        let d = Differences::find(&[("one", &a), ("two", &b)], &shared, &all);
        assert_eq!(
            d.settings,
            [Difference { key: "train.lr".into(), values: vec!["0.05".into(), "0.01".into()], variants: vec![] }]
        );
        assert_eq!(d.between_variants, ["sampler.use"]);
        assert!(d.check(false).is_ok());
        assert!(d.describe(&["one", "two"]).contains("train.lr: one = 0.05, two = 0.01"));
        let c = run(&[("seq@1", &[("train.lr", "0.05"), ("data.examples", "600"), ("sampler.use", "s")])]);
        let d = Differences::find(&[("one", &a), ("three", &c)], &shared[..1], &[shared.clone(), shared[..1].to_vec()]);
        let e = d.check(false).unwrap_err().to_string();
        assert!(
            e.contains("different data (data.examples)")
                && e.contains("shuf not in every run")
                && e.contains("--force"),
            "{e}"
        );
        assert!(d.check(true).is_ok());
    }
}
