//! `tessera compare RUN_A RUN_B ...`: the same variants of several runs
//! side by side. First what differs between the runs (their settings, and
//! the settings that tell their variants apart); runs on other data or
//! with other variants are refused unless forced. Then each figure (the
//! headline figures first, or those asked for) per run as mean ± sd over
//! seeds, with each later run's difference from the first: paired where
//! both have the same seeds. Each curve several runs share is one plot.
//! The comparison goes to a new folder as `compare.html` (self-contained,
//! like `report.html`) and is printed.

use std::path::{Path, PathBuf};

use crate::error::{ReportError, Result};

use crate::pages::{self, Figure};
use crate::report::{self, base_name, RunResults, Status};
use crate::settings::RunSettings;

mod curves;
mod differ;
mod figures;

pub use differ::{Difference, Differences};
pub use figures::difference;

/// Figures compared when none are asked for, at most.
const COLUMNS: usize = 8;

/// What to compare and how.
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// The figures (`role/scalar`) to show; empty: the first run's headline figures.
    pub figures: Vec<String>,
    /// Compare runs on other data or with other variants too.
    pub force: bool,
}

/// One run: its label (the folder's name), results and settings.
struct Run {
    label: String,
    results: RunResults,
    settings: RunSettings,
}

/// Compares the runs in `dirs` into the new folder `out`; what is printed:
/// the differences, then the figures' table.
pub fn compare(dirs: &[PathBuf], out: &Path, options: &CompareOptions) -> Result<String> {
    if dirs.len() < 2 {
        return Err(ReportError::TooFewRuns);
    }
    let runs = dirs.iter().map(|d| load(d)).collect::<Result<Vec<_>>>()?;
    let labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
    let results: Vec<&RunResults> = runs.iter().map(|r| &r.results).collect();
    let all: Vec<Vec<String>> = runs.iter().map(|r| variant_names(&r.results)).collect();
    let variants: Vec<String> = all[0].iter().filter(|n| all[1..].iter().all(|a| a.contains(n))).cloned().collect();
    let settings: Vec<(&str, &RunSettings)> = runs.iter().map(|r| (r.label.as_str(), &r.settings)).collect();
    let differences = Differences::find(&settings, &variants, &all);
    differences.check(options.force)?;
    if variants.is_empty() {
        return Err(ReportError::NothingShared);
    }
    let figures = chosen_figures(&results, &options.figures)?;
    let folder = new_folder(out)?;
    let plots_dir = folder.create_dir_all("plots").map_err(ReportError::io("creating", out))?;
    let cells = figures::gather(&results, &variants, &figures);
    let rows = figures::rows(&labels, &variants, &figures, &cells);
    let plots = curves::write(&labels, &results, &variants, &plots_dir)?;
    let page = page(&runs, &differences, &rows, &plots)?;
    folder
        .write_atomic("compare.html", page.as_bytes())
        .map_err(ReportError::io("writing", out.join("compare.html")))?;
    let table = console_table(&rows, labels.len());
    let note = if table.contains(figures::PAIRED) { format!("{}\n", figures::PAIRED_NOTE) } else { String::new() };
    Ok(format!("{}{}\n{table}{note}", differences.describe(&labels), builds(&runs)))
}

/// `built at different commits: a = X, b = Y` where the runs' builds differ.
fn builds(runs: &[Run]) -> String {
    let commit = |r: &Run| r.results.system.as_ref().map_or("unknown".to_string(), |s| s.commit.clone());
    if runs.iter().all(|r| commit(r) == commit(&runs[0])) {
        return String::new();
    }
    let each: Vec<String> = runs.iter().map(|r| format!("{} = {}", r.label, commit(r))).collect();
    format!("built at different commits: {}\n", each.join(", "))
}

/// The figures' table for the console: as on the page where it fits
/// [`report::CONSOLE_WIDTH`], else a row per variant, figure and later run
/// (its value and its difference from the first run's).
fn console_table(rows: &[Vec<String>], runs: usize) -> String {
    let wide = report::render_table(rows);
    if wide.lines().all(|l| l.chars().count() <= report::CONSOLE_WIDTH) {
        return wide;
    }
    let header = ["variant", "figure", "run", "value", &format!("− {}", rows[0][2])].map(String::from).to_vec();
    let mut long = vec![header];
    for row in &rows[1..] {
        long.push(vec![row[0].clone(), row[1].clone(), rows[0][2].clone(), row[2].clone(), String::new()]);
        for later in 1..runs {
            let (value, difference) = (row[2 + later].clone(), row[1 + runs + later].clone());
            long.push(vec![row[0].clone(), row[1].clone(), rows[0][2 + later].clone(), value, difference]);
        }
    }
    report::render_table(&long)
}

fn load(dir: &Path) -> Result<Run> {
    let in_folder = |source| ReportError::RunFolder { path: dir.to_path_buf(), source: Box::new(source) };
    let results = RunResults::load(dir).map_err(in_folder)?;
    let settings = RunSettings::load(dir).map_err(in_folder)?;
    let label = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    Ok(Run { label, results, settings })
}

/// `out`, which must be new or an empty folder.
fn new_folder(out: &Path) -> Result<crate::confined::Confined> {
    if out.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
        return Err(ReportError::OutNotFolder(out.to_path_buf()));
    }
    if out.exists() && std::fs::read_dir(out).map_err(ReportError::io("reading", out))?.next().is_some() {
        return Err(ReportError::OutNotEmpty(out.to_path_buf()));
    }
    Ok(crate::confined::Confined::new(out))
}

/// The names (seeds aside) of a run's finished variants, in its order.
fn variant_names(results: &RunResults) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for v in results.variants.iter().filter(|v| v.status == Status::Ok) {
        let base = base_name(&v.name).to_string();
        if !names.contains(&base) {
            names.push(base);
        }
    }
    names
}

/// The figures asked for (each checked: a did-you-mean for a typo), or the
/// first run's leading ones.
fn chosen_figures(runs: &[&RunResults], asked: &[String]) -> Result<Vec<(String, String)>> {
    if asked.is_empty() {
        return Ok(report::summary_columns(runs[0], COLUMNS, false));
    }
    report::check_figures(runs, &asked.iter().map(String::as_str).collect::<Vec<_>>())?;
    let split = |key: &String| key.rsplit_once('/').map(|(r, n)| (r.to_string(), n.to_string()));
    Ok(asked.iter().filter_map(split).collect())
}

/// `compare.html` (`templates/compare.html`): the runs, what differs, the
/// figures' table and the shared curves.
fn page(runs: &[Run], differences: &Differences, rows: &[Vec<String>], plots: &[PathBuf]) -> Result<String> {
    #[derive(serde::Serialize)]
    struct RunLine<'r> {
        label: &'r str,
        experiment: &'r str,
        manifest: &'r str,
        started: &'r str,
        commit: &'r str,
    }
    let lines: Vec<RunLine> = runs
        .iter()
        .map(|r| RunLine {
            label: &r.label,
            experiment: &r.results.experiment,
            manifest: &r.results.manifest,
            started: &r.results.started,
            commit: r.results.system.as_ref().map_or("unknown", |s| s.commit.as_str()),
        })
        .collect();
    let figures: Vec<Figure> = plots
        .iter()
        .map(|path| {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            Figure::read(path, stem.replace("--", " · "))
        })
        .collect();
    let context = serde_json::json!({
        "runs": lines,
        "differences": differences,
        "header": rows[0],
        "rows": rows[1..],
        "figures": figures,
    });
    pages::render("compare.html", context)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_table_too_wide_for_the_console_is_printed_a_row_per_run() {
        let labels = ["a-rather-long-run-name", "another-long-run-name", "a-third-long-run-name"];
        let mut header = vec!["variant".to_string(), "figure".to_string()];
        header.extend(labels.iter().map(|l| l.to_string()));
        header.extend(labels[1..].iter().map(|l| format!("{l} − {}", labels[0])));
        let row: Vec<String> =
            ["v", "final_test_accuracy", "0.5 ± 0.1", "0.6 ± 0.1", "0.7 ± 0.1", "+0.1 (p)", "+0.2 (p)"]
                .map(String::from)
                .to_vec();
        let table = super::console_table(&[header, row], 3);
        assert!(table.lines().all(|l| l.chars().count() <= crate::report::CONSOLE_WIDTH), "{table}");
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[3].contains("another-long-run-name")
                && lines[3].contains("0.6 ± 0.1")
                && lines[3].ends_with("+0.1 (p)"),
            "{table}"
        );
        assert!(lines[4].contains("a-third-long-run-name") && lines[4].ends_with("+0.2 (p)"), "{table}");
    }
}
