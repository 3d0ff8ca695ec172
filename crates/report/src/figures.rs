//! Expected figures: the scalars of a run folder per variant (seeds merged
//! into a mean and a sample standard deviation), written by the run that
//! made the book's figures and compared exactly by `tessera figures`
//! (`make figures`). Wall times, throughputs and memory peaks are left out:
//! they are the only figures a rerun on the CPU may change.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{ReportError, Result};
use serde::{Deserialize, Serialize};

use crate::report::{base_name, RunResults, Status};

/// Whether a scalar's name says it measures time, speed or memory.
pub fn varies(name: &str) -> bool {
    ["seconds", "per_second", "peak_memory", "started", "speedup"].iter().any(|w| name.contains(w))
}

/// One figure over a variant's seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Runs (seeds) it is over.
    pub runs: usize,
    /// Their mean.
    pub mean: f64,
    /// Their sample standard deviation (0 for one run).
    pub sd: f64,
}

/// A variant's figures by `role/scalar`.
pub type VariantFigures = BTreeMap<String, Figure>;

/// An expected-figures file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    /// The experiment's name.
    pub experiment: String,
    /// The commit of the code that made them.
    pub commit: String,
    /// The tessera version that made them.
    pub tessera_version: String,
    /// The CPU they were made on (model and vector extensions): libtorch
    /// picks its floating-point kernels by CPU, so training runs are
    /// bit-identical on one kind of CPU, not across kinds.
    #[serde(default)]
    pub cpu: String,
    /// `portable` when made with `experiment.reproducible = "portable"`:
    /// then the figures are the same on any x86-64 CPU with AVX2.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kernels: String,
    /// By variant (without `@seed`).
    pub variants: BTreeMap<String, VariantFigures>,
}

/// Every figure of a run's finished variants.
pub fn of_run(results: &RunResults) -> BTreeMap<String, VariantFigures> {
    let mut values: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for v in results.variants.iter().filter(|v| v.status == Status::Ok) {
        let figures = values.entry(base_name(&v.name).to_string()).or_default();
        for (role, report) in &v.results {
            for (name, value) in report.scalars.iter().filter(|(name, _)| !varies(name)) {
                figures.entry(format!("{role}/{name}")).or_default().push(*value);
            }
        }
    }
    let figure = |v: &Vec<f64>| Figure { runs: v.len(), mean: crate::report::mean(v), sd: crate::report::sample_sd(v) };
    values.into_iter().map(|(variant, f)| (variant, f.iter().map(|(k, v)| (k.clone(), figure(v))).collect())).collect()
}

/// A figure that differs from the expected one.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    /// The variant.
    pub variant: String,
    /// `role/scalar`.
    pub name: String,
    /// Expected, if it was.
    pub expected: Option<Figure>,
    /// Found, if it was.
    pub found: Option<Figure>,
}

impl std::fmt::Display for Moved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |x: &Option<Figure>| match x {
            Some(x) if x.runs > 1 => format!("{} ± {} ({} runs)", x.mean, x.sd, x.runs),
            Some(x) => x.mean.to_string(),
            None => "missing".into(),
        };
        write!(f, "{} {}: expected {}, found {}", self.variant, self.name, show(&self.expected), show(&self.found))
    }
}

/// Every figure that moved, was lost or is new, exactly compared.
pub fn compare(expected: &BTreeMap<String, VariantFigures>, found: &BTreeMap<String, VariantFigures>) -> Vec<Moved> {
    let mut keys: Vec<(&String, &String)> =
        expected.iter().chain(found.iter()).flat_map(|(v, f)| f.keys().map(move |k| (v, k))).collect();
    keys.sort();
    keys.dedup();
    let get = |side: &BTreeMap<String, VariantFigures>, v: &str, k: &str| side.get(v).and_then(|f| f.get(k)).copied();
    keys.into_iter()
        .map(|(v, k)| Moved {
            variant: v.clone(),
            name: k.clone(),
            expected: get(expected, v, k),
            found: get(found, v, k),
        })
        .filter(|m| m.expected != m.found)
        .collect()
}

/// The current commit of the checkout holding `dir`, if git can tell.
pub fn commit_of(dir: &Path) -> String {
    let out = std::process::Command::new("git").args(["rev-parse", "--short", "HEAD"]).current_dir(dir).output();
    out.ok()
        .filter(|o| o.status.success())
        .map_or_else(|| "unknown".to_string(), |o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// This machine's CPU: its model name and the vector extensions that decide
/// libtorch's kernels (Linux; `unknown` elsewhere).
pub fn cpu() -> String {
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else { return "unknown".into() };
    let field = |name: &str| {
        info.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string())
    };
    let flags = field("flags").unwrap_or_default();
    let isa: Vec<&str> = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .collect();
    format!("{} [{}]", field("model name").unwrap_or_else(|| "unknown".into()), isa.join(" "))
}

/// The expected-figures file of the run in `run_dir`.
pub fn expected_of(run_dir: &Path) -> Result<Expected> {
    let results = RunResults::load(run_dir)?;
    Ok(Expected {
        experiment: results.experiment.clone(),
        commit: commit_of(Path::new(".")),
        tessera_version: results.tessera_version.clone(),
        cpu: cpu(),
        kernels: results.system.as_ref().map(|s| s.kernels.clone()).filter(|k| k == "portable").unwrap_or_default(),
        variants: of_run(&results),
    })
}

/// Reads an expected-figures file.
pub fn load(path: &Path) -> Result<Expected> {
    let text = std::fs::read_to_string(path).map_err(ReportError::io("reading", path))?;
    serde_json::from_str(&text).map_err(|source| ReportError::Parse { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ReportJson, VariantResult};

    fn run(values: &[(&str, f64)]) -> RunResults {
        let variant = |name: &str, value: f64| {
            let mut engine = ReportJson::default();
            engine.scalars.insert("final_test_accuracy".into(), value);
            engine.scalars.insert("epoch_seconds".into(), value * 7.0);
            VariantResult {
                name: name.into(),
                status: Status::Ok,
                error: None,
                seconds: 1.0,
                components: Default::default(),
                results: [("engine".to_string(), engine)].into(),
                device: None,
                pooled_from: vec![],
                stopped_at: None,
            }
        };
        RunResults {
            schema_version: crate::report::SCHEMA_VERSION.into(),
            tessera_version: "0".into(),
            experiment: "e".into(),
            manifest: "m.toml".into(),
            started: "now".into(),
            variants: values.iter().map(|(n, v)| variant(n, *v)).collect(),
            plots: vec![],
            system: None,
        }
    }

    #[test]
    fn seeds_merge_and_wall_times_are_left_out() {
        let figures = of_run(&run(&[("a@1", 0.5), ("a@2", 0.7), ("b", 0.9)]));
        let a = figures["a"]["engine/final_test_accuracy"];
        assert_eq!((a.runs, a.mean), (2, 0.6));
        assert!((a.sd - 0.141_421_356_237_309_5).abs() < 1e-12);
        assert_eq!(figures["b"]["engine/final_test_accuracy"].sd, 0.0);
        assert!(!figures["a"].contains_key("engine/epoch_seconds"));
    }

    #[test]
    fn a_moved_lost_or_new_figure_is_reported() {
        let before = of_run(&run(&[("a", 0.5), ("b", 0.9)]));
        assert!(compare(&before, &before).is_empty());
        let after = of_run(&run(&[("a", 0.5000001), ("c", 0.9)]));
        let moved: Vec<String> = compare(&before, &after).iter().map(|m| m.to_string()).collect();
        assert_eq!(
            moved,
            [
                "a engine/final_test_accuracy: expected 0.5, found 0.5000001",
                "b engine/final_test_accuracy: expected 0.9, found missing",
                "c engine/final_test_accuracy: expected missing, found 0.9",
            ]
        );
    }
}
