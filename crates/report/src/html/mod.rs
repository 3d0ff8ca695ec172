//! `report.html`: the run folder as one page a browser opens from disk. No
//! network and no server: the CSS, the plots (SVG) and a small sorting
//! script are inline. It shows the experiment, the headline figure of each
//! variant, the settings that tell the variants apart, a summary of every
//! variant's figures (mean ± sd over seeds), each variant's status and
//! error, every plot grouped by role (seeds as a band), each table
//! (sortable, with its CSV), the machine and build, and the manifest. It
//! is rendered from results.json and the run folder alone, so `tessera
//! report DIR` redoes it. The page is `templates/report.html`;
//! this file gathers what it shows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{ReportError, Result};
use crate::pages::{self, Figure};
use crate::report::{self, base_name, file_stem_safe, format_number, RunResults, Status};

mod context;

/// Scalars in the summary table, at most.
const SUMMARY_COLUMNS: usize = 12;
/// Rows shown of one table (the CSV has them all).
const TABLE_ROWS: usize = 200;

/// Writes `report.html` into `dir`, inlining the SVGs at `plots`; its path.
pub fn write_report_page(results: &RunResults, dir: &Path, plots: &[PathBuf]) -> Result<PathBuf> {
    write_progress_page(results, dir, plots, &[])
}

/// [`write_report_page`] of a run still going, `pending` naming the
/// variants not finished yet.
pub fn write_progress_page(results: &RunResults, dir: &Path, plots: &[PathBuf], pending: &[String]) -> Result<PathBuf> {
    let page = pages::render("report.html", ReportPage::new(results, dir, plots, pending))?;
    crate::confined::Confined::new(dir)
        .write_atomic("report.html", page.as_bytes())
        .map_err(ReportError::io("writing", dir.join("report.html")))?;
    Ok(dir.join("report.html"))
}

/// What `templates/report.html` shows.
#[derive(Serialize)]
struct ReportPage<'r> {
    experiment: &'r str,
    manifest: &'r str,
    tessera_version: &'r str,
    started: &'r str,
    variant_count: usize,
    failed: usize,
    /// Variants stopped with their state saved.
    stopped: usize,
    /// Variant time, one decimal.
    seconds: String,
    pending: &'r [String],
    description: Option<String>,
    headline: Option<context::Headline>,
    settings: Option<context::SettingsTable>,
    system: Vec<(&'static str, String)>,
    summary: Summary,
    variants: Vec<VariantRow<'r>>,
    plots: Vec<PlotGroup>,
    tables: Vec<TableView<'r>>,
    manifests: Vec<ManifestFile>,
}

impl<'r> ReportPage<'r> {
    fn new(results: &'r RunResults, dir: &Path, plots: &[PathBuf], pending: &'r [String]) -> Self {
        let seconds: f64 = results.variants.iter().map(|v| v.seconds).sum();
        let settings = crate::settings::RunSettings::load(dir).ok();
        ReportPage {
            experiment: &results.experiment,
            manifest: &results.manifest,
            tessera_version: &results.tessera_version,
            started: &results.started,
            variant_count: results.variants.len(),
            failed: results.variants.iter().filter(|v| v.status == Status::Failed).count(),
            stopped: results.variants.iter().filter(|v| v.status == Status::Stopped).count(),
            seconds: format!("{seconds:.1}"),
            pending,
            description: settings.as_ref().and_then(context::description),
            headline: context::Headline::new(results),
            settings: settings.as_ref().map(context::SettingsTable::new),
            system: context::system_facts(results),
            summary: Summary::new(results),
            variants: results.variants.iter().map(VariantRow::new).collect(),
            plots: plot_groups(plots),
            tables: table_views(results),
            manifests: manifest_files(dir),
        }
    }
}

/// One row per variant (seeds merged): each figure's mean ± sd and runs.
#[derive(Serialize)]
struct Summary {
    columns: Vec<Column>,
    rows: Vec<SummaryRow>,
}

/// A summary column: a component's scalar.
#[derive(Serialize)]
struct Column {
    role: String,
    name: String,
}

#[derive(Serialize)]
struct SummaryRow {
    name: String,
    runs: usize,
    cells: Vec<Cell>,
}

/// A cell: its text and, for sorting, its number.
#[derive(Serialize)]
struct Cell {
    value: Option<String>,
    text: String,
}

impl Summary {
    fn new(results: &RunResults) -> Summary {
        let columns = report::summary_columns(results, SUMMARY_COLUMNS, false);
        let mut rows: BTreeMap<&str, Vec<Vec<f64>>> = BTreeMap::new();
        let mut order: Vec<&str> = Vec::new();
        for v in results.variants.iter().filter(|v| v.status == Status::Ok) {
            let base = base_name(&v.name);
            if !order.contains(&base) {
                order.push(base);
            }
            let cells = rows.entry(base).or_insert_with(|| vec![vec![]; columns.len()]);
            for (i, (role, name)) in columns.iter().enumerate() {
                if let Some(&x) = v.results.get(role).and_then(|r| r.scalars.get(name)) {
                    cells[i].push(x);
                }
            }
        }
        let rows = order.into_iter().map(|base| SummaryRow::new(base, &rows[base])).collect();
        let columns = columns.into_iter().map(|(role, name)| Column { role, name }).collect();
        Summary { columns, rows }
    }
}

impl SummaryRow {
    fn new(base: &str, cells: &[Vec<f64>]) -> SummaryRow {
        SummaryRow {
            name: base.to_string(),
            runs: cells.iter().map(Vec::len).max().unwrap_or(0),
            cells: cells
                .iter()
                .map(|values| Cell { value: Some(report::mean(values).to_string()), text: mean_sd(values) })
                .collect(),
        }
    }
}

/// `mean ± sd` (or the one value, or `–`).
pub(crate) fn mean_sd(values: &[f64]) -> String {
    match values.len() {
        0 => "–".into(),
        1 => format_number(values[0]),
        _ => format!("{} ± {}", format_number(report::mean(values)), format_number(report::sample_sd(values))),
    }
}

/// A variant: status, time, device, components, error.
#[derive(Serialize)]
struct VariantRow<'r> {
    name: &'r str,
    /// `ok`, `failed` or `stopped`: the row's class.
    kind: String,
    /// The status as shown: `stopped at step N` for a stopped one.
    status: String,
    seconds: f64,
    seconds_text: String,
    device: &'r str,
    components: Vec<String>,
    error: Option<&'r str>,
}

impl<'r> VariantRow<'r> {
    fn new(v: &'r report::VariantResult) -> Self {
        VariantRow {
            name: &v.name,
            kind: format!("{:?}", v.status).to_lowercase(),
            status: match v.stopped_at {
                Some(step) => format!("stopped at step {step}"),
                None => format!("{:?}", v.status).to_lowercase(),
            },
            seconds: v.seconds,
            seconds_text: format!("{:.1}", v.seconds),
            device: v.device.as_deref().unwrap_or(""),
            components: v.components.iter().map(|(role, c)| format!("{role}: {c}")).collect(),
            error: v.error.as_deref(),
        }
    }
}

/// The plots of one role.
#[derive(Serialize)]
struct PlotGroup {
    role: String,
    figures: Vec<Figure>,
}

/// The plots, under a heading per role (`plots/<role>--<name>.svg`).
fn plot_groups(plots: &[PathBuf]) -> Vec<PlotGroup> {
    let mut by_role: BTreeMap<String, Vec<Figure>> = BTreeMap::new();
    for path in plots {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let (role, name) = match stem.split_once("--") {
            Some((r, n)) if !n.starts_with("vs--") => (r.to_string(), n.to_string()),
            _ => ("across variants".to_string(), stem.clone()),
        };
        by_role.entry(role).or_default().push(Figure::read(path, name));
    }
    by_role.into_iter().map(|(role, figures)| PlotGroup { role, figures }).collect()
}

/// A component table, collapsed, sortable, with its CSV.
#[derive(Serialize)]
struct TableView<'r> {
    variant: &'r str,
    role: &'r str,
    name: &'r str,
    /// Its rows in all (the page shows the first [`TABLE_ROWS`]).
    total: usize,
    csv: String,
    columns: &'r [String],
    rows: Vec<Vec<Cell>>,
}

fn table_views(results: &RunResults) -> Vec<TableView<'_>> {
    let mut views = Vec::new();
    for v in &results.variants {
        for (role, r) in &v.results {
            for t in &r.tables {
                views.push(TableView {
                    variant: &v.name,
                    role,
                    name: &t.name,
                    total: t.rows.len(),
                    csv: file_stem_safe(&format!("{}--{role}--{}.csv", v.name, t.name)),
                    columns: &t.columns,
                    rows: t.rows.iter().take(TABLE_ROWS).map(|row| row.iter().map(table_cell).collect()).collect(),
                });
            }
        }
    }
    views
}

/// A table cell: numbers formatted and sortable by value.
fn table_cell(cell: &serde_json::Value) -> Cell {
    match cell {
        serde_json::Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            Cell { value: Some(x.to_string()), text: format_number(x) }
        }
        serde_json::Value::String(s) => Cell { value: None, text: s.clone() },
        other => Cell { value: None, text: other.to_string() },
    }
}

/// The manifest as written (open) and as resolved.
#[derive(Serialize)]
struct ManifestFile {
    file: &'static str,
    open: bool,
    text: String,
}

fn manifest_files(dir: &Path) -> Vec<ManifestFile> {
    let folder = crate::confined::Confined::new(dir);
    [("manifest.toml", true), ("manifest.resolved.toml", false)]
        .into_iter()
        .filter_map(|(file, open)| {
            let text = String::from_utf8_lossy(&folder.read(file).ok()?).into_owned();
            Some(ManifestFile { file, open, text })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_still_going_names_what_is_to_come_and_a_finished_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let results: RunResults = serde_json::from_value(serde_json::json!({
            "schema": 1, "tessera_version": "0", "experiment": "e", "manifest": "m.toml",
            "started": "now", "variants": []
        }))
        .unwrap();
        let page = write_progress_page(&results, dir.path(), &[], &["b<2>".into(), "c".into()]).unwrap();
        let text = std::fs::read_to_string(&page).unwrap();
        assert!(text.contains("Still running</b> (2 to come): b&lt;2&gt;, c."), "{text}");
        write_report_page(&results, dir.path(), &[]).unwrap();
        assert!(!std::fs::read_to_string(&page).unwrap().contains("Still running"));
    }

    #[test]
    fn seeds_merge_into_mean_and_sd() {
        assert_eq!(base_name("corgi2@3"), "corgi2");
        assert_eq!(mean_sd(&[1.0, 3.0]), "2 ± 1.4142");
        assert_eq!(mean_sd(&[]), "–");
        assert_eq!(crate::pages::strip_xml_declaration("<?xml version=\"1.0\"?>\n<svg/>"), "<svg/>");
    }
}
