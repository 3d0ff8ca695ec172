//! The printed summary: which scalars lead (headline figures first, then
//! the host's, then the rest), numbers as a person reads them, and the
//! plain-text table.

use super::{base_name, mean, sample_sd, RunResults, Status, VariantResult};

/// A number as a person reads it: integers plainly, others to 4 significant places.
pub fn format_number(x: f64) -> String {
    if x.fract() == 0.0 || x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.4}")
    }
}

/// Rows as left-aligned columns, the first row underlined as a header.
pub(crate) fn render_table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
            out.push('\n');
        }
    }
    out
}

/// The host's own headline figures (role, scalar), where a run has them.
const HOST_HEADLINES: [(&str, &str); 4] = [
    ("engine", "final_test_accuracy"),
    ("objective", "worst_case_spread"),
    ("objective", "worst_case_ratio"),
    ("objective", "expected_spread"),
];

/// What a graph objective cost, which im-scale-like runs are about: shown
/// after the headline figures, even in summaries without wall times.
const HOST_COSTS: [(&str, &str); 2] = [("objective", "choose_seconds"), ("objective", "peak_memory_mb")];

/// The (role, scalar) columns of a summary: the headline figures first (the
/// plugins' marks in their order, the host's own, the host's marks of what
/// a setting is about, then a graph objective's cost), then plugins' other
/// figures, then the engine's, then the rest; other wall times only with
/// `timed`.
pub fn summary_columns(results: &RunResults, max_columns: usize, timed: bool) -> Vec<(String, String)> {
    // Each marked (role, scalar) once, where it was first marked.
    let mut marked: Vec<(&str, &str)> = Vec::new();
    for v in &results.variants {
        for mark in v.results.iter().flat_map(|(role, r)| r.headline.iter().map(|h| (role.as_str(), h.as_str()))) {
            if !marked.contains(&mark) {
                marked.push(mark);
            }
        }
    }
    let rank = |role: &str, name: &str| {
        let host = |list: &[(&str, &str)]| list.iter().position(|&h| h == (role, name));
        let mark = marked.iter().position(|&m| m == (role, name));
        let plugin = role.contains('.');
        match (mark, host(&HOST_HEADLINES), host(&HOST_COSTS)) {
            (Some(i), _, _) if plugin => (0, i),
            (_, Some(i), _) => (1, i),
            (Some(i), _, _) => (2, i),
            (_, _, Some(i)) => (3, i),
            _ if plugin => (4, 0),
            _ if role == "engine" => (5, 0),
            _ => (6, 0),
        }
    };
    let mut columns: Vec<(String, String)> = Vec::new();
    for v in &results.variants {
        for (role, report) in &v.results {
            for name in report.scalars.keys() {
                let shown = timed || !crate::figures::varies(name) || rank(role, name).0 < 4;
                let col = (role.clone(), name.clone());
                if shown && !columns.contains(&col) {
                    columns.push(col);
                }
            }
        }
    }
    columns.sort_by_key(|(role, name)| rank(role, name));
    columns.truncate(max_columns);
    columns
}

/// The printed summary fits this many columns of a terminal.
pub const CONSOLE_WIDTH: usize = 100;

/// The side-by-side summary, at most [`CONSOLE_WIDTH`] wide: a row per
/// variant (seeds merged: mean ± sd, and how many runs finished), the
/// headline figures first and as many more as fit (at most `max_columns`);
/// then each failed run's error, and where the figures left out are.
pub fn summary_table(results: &RunResults, max_columns: usize) -> String {
    let columns = summary_columns(results, max_columns, true);
    let mut header = vec!["variant".to_string(), "ok".to_string(), "seconds".to_string()];
    header.extend(columns.iter().map(|(role, name)| column_label(&columns, role, name)));
    let mut rows = vec![header];
    for family in families(results) {
        rows.push(summary_row(&family, &columns));
    }
    let shown = fit_width(&mut rows, 3, CONSOLE_WIDTH);
    let mut out = render_table(&rows);
    for v in results.variants.iter().filter(|v| v.status != Status::Ok) {
        let error = v.error.as_deref().unwrap_or("unknown error");
        let line = error.lines().next().unwrap_or_default();
        match v.status {
            Status::Stopped => out.push_str(&format!("{}: {line}\n", v.name)),
            _ => out.push_str(&format!("{} failed: {line}\n", v.name)),
        }
    }
    let left_out = summary_columns(results, usize::MAX, true).len() - shown;
    if left_out > 0 {
        out.push_str(&format!("{left_out} more figures in report.html and tables/<variant>--scalars.csv\n"));
    }
    out
}

/// A column's header: its scalar's name; a second copy of a component
/// (role `plugin.component#2`) adds `#2`, and another role with the same
/// scalar name is told apart by its role (`engine/test_accuracy`).
fn column_label(columns: &[(String, String)], role: &str, name: &str) -> String {
    if let Some((_, copy)) = role.rsplit_once('#') {
        return format!("{name}#{copy}");
    }
    let other_role = columns.iter().any(|(r, n)| n == name && r != role && !r.starts_with(&format!("{role}#")));
    if other_role {
        format!("{role}/{name}")
    } else {
        name.to_string()
    }
}

/// The runs of each variant (seeds merged), in manifest order.
fn families(results: &RunResults) -> Vec<Vec<&VariantResult>> {
    let mut out: Vec<Vec<&VariantResult>> = Vec::new();
    for v in &results.variants {
        match out.iter_mut().find(|f| base_name(&f[0].name) == base_name(&v.name)) {
            Some(family) => family.push(v),
            None => out.push(vec![v]),
        }
    }
    out
}

/// One variant's row: its name, runs ok of runs, seconds, each figure.
fn summary_row(family: &[&VariantResult], columns: &[(String, String)]) -> Vec<String> {
    let ok: Vec<&&VariantResult> = family.iter().filter(|v| v.status == Status::Ok).collect();
    let seconds: f64 = family.iter().map(|v| v.seconds).sum();
    let mut row =
        vec![base_name(&family[0].name).to_string(), format!("{}/{}", ok.len(), family.len()), format!("{seconds:.1}")];
    for (role, name) in columns {
        let values: Vec<f64> =
            ok.iter().filter_map(|v| v.results.get(role).and_then(|r| r.scalars.get(name))).copied().collect();
        row.push(match values.len() {
            0 => "-".into(),
            1 => format_number(values[0]),
            _ => format!("{} ± {}", format_number(mean(&values)), format_number(sample_sd(&values))),
        });
    }
    row
}

/// Drops the columns after `fixed` that make a rendered table wider than
/// `width` (the first of them stays whatever its width); the columns kept
/// after the fixed ones.
pub(crate) fn fit_width(rows: &mut [Vec<String>], fixed: usize, width: usize) -> usize {
    let column_width = |c: usize| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0);
    let mut used = (0..fixed.min(rows[0].len())).map(|c| column_width(c) + 2).sum::<usize>();
    let mut keep = fixed.min(rows[0].len());
    while keep < rows[0].len() && (keep == fixed || used + column_width(keep) <= width) {
        used += column_width(keep) + 2;
        keep += 1;
    }
    for row in rows.iter_mut() {
        row.truncate(keep);
    }
    keep - fixed.min(keep)
}

/// Every `role/scalar` the finished variants of `runs` report.
pub fn figure_keys(runs: &[&RunResults]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for r in runs {
        for (role, name) in summary_columns(r, usize::MAX, true) {
            let key = format!("{role}/{name}");
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

/// An error for `key` unless some finished variant of `runs` reports it:
/// with the closest figure they do report, or a few of them.
pub fn check_figure(runs: &[&RunResults], key: &str) -> crate::error::Result<()> {
    check_figures(runs, &[key])
}

/// [`check_figure`] for each of `keys`, the runs' figures gathered once.
pub fn check_figures(runs: &[&RunResults], keys: &[&str]) -> crate::error::Result<()> {
    let known = figure_keys(runs);
    match keys.iter().find(|key| !known.iter().any(|k| k == *key)) {
        Some(key) => Err(unknown_figure(&known, key)),
        None => Ok(()),
    }
}

/// The error for `key`, which none of `known` is.
fn unknown_figure(known: &[String], key: &str) -> crate::error::ReportError {
    // A figure cut short (`final_test_acc`), then a near miss, then the right
    // scalar under another role.
    let prefixed = known.iter().map(String::as_str).find(|k| k.starts_with(key));
    let suggestion = prefixed
        .or_else(|| tessera_util::suggest::closest(key, known.iter().map(String::as_str)))
        .or_else(|| {
            let scalar = key.rsplit('/').next().unwrap_or(key);
            known.iter().map(String::as_str).find(|k| k.rsplit('/').next() == Some(scalar))
        })
        .map(str::to_string);
    let known = known.iter().take(6).cloned().collect();
    crate::error::ReportError::UnknownFigure { key: key.to_string(), suggestion, known }
}
