//! Each variant's settings as a run folder's `manifest.resolved.toml` has
//! them (every default filled in), flattened to `section.key` columns, and
//! which of them differ: between the variants of a run (the report page's
//! settings table) and between runs (`tessera compare`).

use std::collections::BTreeMap;
use std::path::Path;

use crate::confined::Confined;
use crate::error::{ReportError, Result};
use crate::report::base_name;

/// One variant's settings: `section.key` (`metric[0].use` in arrays of
/// tables) to the value as TOML writes it.
pub type FlatSettings = BTreeMap<String, String>;

/// Settings that do not change what a variant computes: where it runs.
const WHERE_IT_RUNS: [&str; 4] = ["executor.", "experiment.executor", "experiment.jobs", "experiment.plugin_paths"];

/// Whether `key` names a setting that can change a variant's figures
/// (not its name, its seed, nor where it runs).
pub fn changes_figures(key: &str) -> bool {
    key != "name" && key != "experiment.seed" && !WHERE_IT_RUNS.iter().any(|w| key.starts_with(w))
}

/// The variants of one run folder with their settings, in manifest order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSettings {
    /// (full variant name, its settings).
    pub variants: Vec<(String, FlatSettings)>,
}

impl RunSettings {
    /// Reads `dir/manifest.resolved.toml`.
    pub fn load(dir: &Path) -> Result<RunSettings> {
        let path = dir.join("manifest.resolved.toml");
        let bytes = Confined::new(dir).read("manifest.resolved.toml").map_err(ReportError::io("reading", &path))?;
        let text = String::from_utf8_lossy(&bytes);
        let bad = |message: String| ReportError::Settings { path: path.clone(), message };
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| bad(e.to_string()))?;
        let variants = match table.get("variant") {
            Some(toml::Value::Array(list)) => list,
            _ => return Err(bad("no [[variant]] tables".into())),
        };
        let flat = variants.iter().map(|v| {
            let name = v.get("name").and_then(toml::Value::as_str).unwrap_or_default().to_string();
            let mut settings = FlatSettings::new();
            flatten(v, "", &mut settings);
            (name, settings)
        });
        Ok(RunSettings { variants: flat.collect() })
    }

    /// The settings of the first run of variant `base` (seeds aside).
    pub fn of(&self, base: &str) -> Option<&FlatSettings> {
        self.variants.iter().find(|(name, _)| base_name(name) == base).map(|(_, s)| s)
    }

    /// The keys that change figures and differ between the variants, in
    /// key order.
    pub fn differing(&self) -> Vec<String> {
        differing(self.variants.iter().map(|(_, s)| s))
    }
}

/// The keys (that change figures) whose values are not the same in all of
/// `settings` (a key one lacks differs).
pub fn differing<'a>(settings: impl Iterator<Item = &'a FlatSettings> + Clone) -> Vec<String> {
    let mut keys: Vec<&String> = settings.clone().flat_map(|s| s.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| changes_figures(k))
        .filter(|k| {
            let mut values = settings.clone().map(|s| s.get(*k));
            let first = values.next().flatten();
            values.any(|v| v != first)
        })
        .cloned()
        .collect()
}

/// `value` flattened into `out` under `prefix`.
fn flatten(value: &toml::Value, prefix: &str, out: &mut FlatSettings) {
    let join = |key: &str| if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") };
    match value {
        toml::Value::Table(table) => table.iter().for_each(|(k, v)| flatten(v, &join(k), out)),
        toml::Value::Array(items) if !items.is_empty() && items.iter().all(toml::Value::is_table) => {
            for (i, item) in items.iter().enumerate() {
                flatten(item, &format!("{prefix}[{i}]"), out);
            }
        }
        toml::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESOLVED: &str = r#"
[experiment]
name = "e"
[[variant]]
name = "a@1"
sampler = { use = "baselines.sequential" }
experiment = { seed = 1, executor = "inline" }
train = { lr = 0.05, epochs = 6 }
metric = [{ use = "baselines.accuracy" }]
[[variant]]
name = "a@2"
sampler = { use = "baselines.sequential" }
experiment = { seed = 2, executor = "inline" }
train = { lr = 0.05, epochs = 6 }
metric = [{ use = "baselines.accuracy" }]
[[variant]]
name = "b@1"
sampler = { use = "baselines.full-shuffle" }
experiment = { seed = 1, executor = "processes" }
train = { lr = 0.01, epochs = 6 }
metric = [{ use = "baselines.accuracy" }]
"#;

    #[test]
    fn the_settings_that_differ_are_found_seeds_and_executors_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("manifest.resolved.toml"), RESOLVED).unwrap();
        let run = RunSettings::load(dir.path()).unwrap();
        assert_eq!(run.variants.len(), 3);
        assert_eq!(run.of("b").unwrap()["train.lr"], "0.01");
        assert_eq!(run.of("a").unwrap()["metric[0].use"], "baselines.accuracy");
        assert_eq!(run.differing(), ["sampler.use", "train.lr"]);
    }

    #[test]
    fn a_folder_without_variants_says_so() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("manifest.resolved.toml"), "[experiment]\nname = \"e\"\n").unwrap();
        let e = RunSettings::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("manifest.resolved.toml") && e.contains("[[variant]]"), "{e}");
    }
}
