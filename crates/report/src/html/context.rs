//! What the top of `report.html` says before the tables: the headline
//! figure per variant, the settings that tell the variants apart, and the
//! machine and build the figures come from.

use serde::Serialize;

use super::mean_sd;
use crate::report::{self, base_name, human, RunResults, Status};
use crate::settings::RunSettings;

/// The headline figure (the summary's first column) of each variant.
#[derive(Serialize)]
pub(super) struct Headline {
    /// `Test accuracy`.
    title: String,
    /// `role/scalar`.
    key: String,
    /// (variant, mean ± sd, runs).
    rows: Vec<(String, String, usize)>,
}

impl Headline {
    /// The first summary column's values per variant, seeds merged.
    pub(super) fn new(results: &RunResults) -> Option<Headline> {
        let (role, name) = report::summary_columns(results, 1, false).into_iter().next()?;
        let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
        for v in results.variants.iter().filter(|v| v.status == Status::Ok) {
            let value = v.results.get(&role).and_then(|r| r.scalars.get(&name)).copied();
            let base = base_name(&v.name);
            let index = rows.iter().position(|(b, _)| b == base).unwrap_or_else(|| {
                rows.push((base.to_string(), vec![]));
                rows.len() - 1
            });
            rows[index].1.extend(value);
        }
        let rows = rows.into_iter().map(|(b, values)| (b, mean_sd(&values), values.len())).collect();
        Some(Headline { title: human(&name), key: format!("{role}/{name}"), rows })
    }
}

/// The settings that differ between the variants: a column per key.
#[derive(Serialize)]
pub(super) struct SettingsTable {
    keys: Vec<String>,
    /// (variant, its value of each key).
    rows: Vec<(String, Vec<String>)>,
}

impl SettingsTable {
    /// From the run folder's settings (its `manifest.resolved.toml`).
    pub(super) fn new(settings: &RunSettings) -> SettingsTable {
        let keys = settings.differing();
        let mut rows: Vec<(String, Vec<String>)> = Vec::new();
        for (name, flat) in &settings.variants {
            let base = base_name(name);
            if rows.iter().all(|(b, _)| b != base) {
                let values = keys.iter().map(|k| flat.get(k).cloned().unwrap_or_else(|| "–".into())).collect();
                rows.push((base.to_string(), values));
            }
        }
        SettingsTable { keys, rows }
    }
}

/// The machine and build, as one line per fact.
pub(super) fn system_facts(results: &RunResults) -> Vec<(&'static str, String)> {
    let Some(s) = &results.system else { return vec![("system", "not recorded (results.json of schema 1)".into())] };
    let threads = if s.threads == 0 { "libtorch's default".to_string() } else { s.threads.to_string() };
    let devices: Vec<&str> = {
        let mut d: Vec<&str> = results.variants.iter().filter_map(|v| v.device.as_deref()).collect();
        d.sort_unstable();
        d.dedup();
        d
    };
    vec![
        ("CPU", s.cpu.clone()),
        ("cores", s.cores.to_string()),
        ("libtorch threads per unit", threads),
        ("device", if devices.is_empty() { "–".into() } else { devices.join(", ") }),
        ("host", format!("{} ({})", s.host, s.os)),
        ("tessera", format!("{} (commit {})", s.tessera_version, s.commit)),
        ("libtorch", s.libtorch.clone()),
    ]
}

/// The manifest's `experiment.description` (the first variant's), if any.
pub(super) fn description(settings: &RunSettings) -> Option<String> {
    let text = settings.variants.first()?.1.get("experiment.description")?.trim().to_string();
    (!text.is_empty()).then_some(text)
}
