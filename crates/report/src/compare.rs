//! `tessera compare RUN_A RUN_B ...`: the same variants of several runs
//! side by side. Each figure (headline figures first) is shown per run as
//! mean ± sd over seeds, with each later run's difference from the first
//! and its standard error. Each curve that several runs share is drawn with
//! all of their lines. The comparison goes to a new folder as `compare.html`
//! (self-contained, like `report.html`) and is printed as a table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{ReportError, Result};

use crate::html::mean_sd;
use crate::pages::{self, Figure};
use crate::report::{self, base_name, file_stem_safe, RunResults, Status};

/// Figures compared, at most.
const COLUMNS: usize = 8;

/// One run: its label (the folder's name) and results.
struct Run {
    label: String,
    results: RunResults,
}

/// Values of one figure over a variant's seeds, per run.
type Cell = Vec<Vec<f64>>;

/// Compares the runs in `dirs` into the new folder `out`; the printed table.
pub fn compare(dirs: &[PathBuf], out: &Path) -> Result<String> {
    if dirs.len() < 2 {
        return Err(ReportError::TooFewRuns);
    }
    let runs = dirs.iter().map(|d| load(d)).collect::<Result<Vec<_>>>()?;
    if out.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
        return Err(ReportError::OutNotFolder(out.to_path_buf()));
    }
    if out.exists() && std::fs::read_dir(out).map_err(ReportError::io("reading", out))?.next().is_some() {
        return Err(ReportError::OutNotEmpty(out.to_path_buf()));
    }
    let folder = crate::confined::Confined::new(out);
    let plots_dir = folder.create_dir_all("plots").map_err(ReportError::io("creating", out))?;
    let columns = report::summary_columns(&runs[0].results, COLUMNS, false);
    let variants = shared_variants(&runs);
    if variants.is_empty() {
        return Err(ReportError::NothingShared);
    }
    let cells = gather(&runs, &variants, &columns);
    let plots = write_curves(&runs, &plots_dir)?;
    let page = page(&runs, &variants, &columns, &cells, &plots)?;
    folder
        .write_atomic("compare.html", page.as_bytes())
        .map_err(ReportError::io("writing", out.join("compare.html")))?;
    Ok(text_table(&runs, &variants, &columns, &cells))
}

fn load(dir: &Path) -> Result<Run> {
    let results = RunResults::load(dir)
        .map_err(|source| ReportError::RunFolder { path: dir.to_path_buf(), source: Box::new(source) })?;
    let label = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    Ok(Run { label, results })
}

/// Variant names (seeds aside) every run has, in the first run's order.
fn shared_variants(runs: &[Run]) -> Vec<String> {
    let names = |run: &Run| -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for v in run.results.variants.iter().filter(|v| v.status == Status::Ok) {
            let base = base_name(&v.name).to_string();
            if !names.contains(&base) {
                names.push(base);
            }
        }
        names
    };
    let first = names(&runs[0]);
    first.into_iter().filter(|n| runs[1..].iter().all(|r| names(r).contains(n))).collect()
}

/// cells[variant][column][run]: the figure's values over that run's seeds.
fn gather(runs: &[Run], variants: &[String], columns: &[(String, String)]) -> Vec<Vec<Cell>> {
    variants
        .iter()
        .map(|variant| {
            columns
                .iter()
                .map(|(role, name)| {
                    runs.iter()
                        .map(|run| {
                            let ok = run.results.variants.iter().filter(|v| v.status == Status::Ok);
                            ok.filter(|v| base_name(&v.name) == variant)
                                .filter_map(|v| v.results.get(role).and_then(|r| r.scalars.get(name)).copied())
                                .collect()
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// Later run minus the first, ± the standard error of that difference
/// (where both have several seeds).
fn difference(first: &[f64], later: &[f64]) -> String {
    if first.is_empty() || later.is_empty() {
        return "–".into();
    }
    let d = report::mean(later) - report::mean(first);
    if first.len() < 2 || later.len() < 2 {
        return format!("{d:+.4}");
    }
    let se = (report::sample_sd(first).powi(2) / first.len() as f64
        + report::sample_sd(later).powi(2) / later.len() as f64)
        .sqrt();
    format!("{d:+.4} ± {se:.4}")
}

/// The header and rows: per figure, each run's value, then each later run's difference.
fn rows(runs: &[Run], variants: &[String], columns: &[(String, String)], cells: &[Vec<Cell>]) -> Vec<Vec<String>> {
    let mut header = vec!["variant".to_string(), "figure".to_string()];
    header.extend(runs.iter().map(|r| r.label.clone()));
    header.extend(runs[1..].iter().map(|r| format!("{} − {}", r.label, runs[0].label)));
    let mut rows = vec![header];
    for (variant, per_column) in variants.iter().zip(cells) {
        for ((role, name), per_run) in columns.iter().zip(per_column) {
            let mut row = vec![variant.clone(), format!("{role}/{name}")];
            row.extend(per_run.iter().map(|v| mean_sd(v)));
            row.extend(per_run[1..].iter().map(|v| difference(&per_run[0], v)));
            rows.push(row);
        }
    }
    rows
}

fn text_table(runs: &[Run], variants: &[String], columns: &[(String, String)], cells: &[Vec<Cell>]) -> String {
    report::render_table(&rows(runs, variants, columns, cells))
}

/// A curve's x and y labels and its lines (name, points).
type Curve = (String, String, Vec<(String, Vec<(f64, f64)>)>);

/// One SVG per curve that at least two runs report, a line per run and variant.
fn write_curves(runs: &[Run], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut curves: BTreeMap<(String, String), Curve> = BTreeMap::new();
    let mut seen_in: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, run) in runs.iter().enumerate() {
        for v in run.results.variants.iter().filter(|v| v.status == Status::Ok) {
            for (role, r) in &v.results {
                for s in &r.series {
                    let key = (role.clone(), s.name.clone());
                    let entry =
                        curves.entry(key.clone()).or_insert_with(|| (s.x_label.clone(), s.y_label.clone(), vec![]));
                    let line = format!("{}: {}", run.label, v.name);
                    entry.2.push((line, s.x.iter().copied().zip(s.y.iter().copied()).collect()));
                    let runs_seen = seen_in.entry(key).or_default();
                    if !runs_seen.contains(&i) {
                        runs_seen.push(i);
                    }
                }
            }
        }
    }
    let mut written = Vec::new();
    for ((role, name), (x_label, y_label, lines)) in curves {
        if seen_in[&(role.clone(), name.clone())].len() < 2 {
            continue;
        }
        let path = dir.join(file_stem_safe(&format!("{role}--{name}.svg")));
        report::plot_lines(&path, &format!("{name} ({role})"), &x_label, &y_label, &lines)?;
        written.push(path);
    }
    Ok(written)
}

/// `compare.html` (`templates/compare.html`): the runs, the figures' table
/// and the shared curves.
fn page(
    runs: &[Run],
    variants: &[String],
    columns: &[(String, String)],
    cells: &[Vec<Cell>],
    plots: &[PathBuf],
) -> Result<String> {
    #[derive(serde::Serialize)]
    struct RunLine<'r> {
        label: &'r str,
        experiment: &'r str,
        manifest: &'r str,
        started: &'r str,
    }
    let lines: Vec<RunLine> = runs
        .iter()
        .map(|r| RunLine {
            label: &r.label,
            experiment: &r.results.experiment,
            manifest: &r.results.manifest,
            started: &r.results.started,
        })
        .collect();
    let mut rows = rows(runs, variants, columns, cells);
    let header = rows.remove(0);
    let figures: Vec<Figure> = plots
        .iter()
        .map(|path| Figure::read(path, path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()))
        .collect();
    let context = serde_json::json!({ "runs": lines, "header": header, "rows": rows, "figures": figures });
    pages::render("compare.html", context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_carry_their_standard_error_where_seeds_allow() {
        assert_eq!(difference(&[1.0], &[1.5]), "+0.5000");
        assert_eq!(difference(&[1.0, 3.0], &[2.0, 4.0]), "+1.0000 ± 1.4142");
        assert_eq!(difference(&[], &[1.0]), "–");
    }
}
