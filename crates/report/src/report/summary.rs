//! The printed summary: which scalars lead (headline figures first, then
//! the host's, then the rest), numbers as a person reads them, and the
//! plain-text table.

use super::{seed_aggregates, RunResults, Status};

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

/// The side-by-side summary: one row per variant, a column per scalar.
pub fn summary_table(results: &RunResults, max_columns: usize) -> String {
    let columns = summary_columns(results, max_columns, true);
    let mut header = vec!["variant".to_string(), "status".to_string(), "seconds".to_string()];
    header.extend(columns.iter().map(|(_, name)| name.clone()));
    let mut rows = vec![header];
    for v in &results.variants {
        let mut row = vec![v.name.clone(), format!("{:?}", v.status).to_lowercase(), format!("{:.1}", v.seconds)];
        for (role, name) in &columns {
            row.push(v.results.get(role).and_then(|r| r.scalars.get(name)).map_or("-".into(), |&x| format_number(x)));
        }
        rows.push(row);
    }
    let mut out = render_table(&rows);
    for v in results.variants.iter().filter(|v| v.status == Status::Failed) {
        out.push_str(&format!("{} failed: {}\n", v.name, v.error.as_deref().unwrap_or("unknown error")));
    }
    let aggregates = seed_aggregates(results);
    if !aggregates.is_empty() {
        let mut variants: Vec<&str> = Vec::new();
        for a in &aggregates {
            if !variants.contains(&a.variant.as_str()) {
                variants.push(&a.variant);
            }
        }
        let mut rows = vec![std::iter::once("variant (over seeds)".to_string())
            .chain(std::iter::once("runs".to_string()))
            .chain(columns.iter().map(|(_, n)| format!("{n} (mean ± sd)")))
            .collect::<Vec<_>>()];
        for variant in variants {
            let runs = aggregates.iter().filter(|a| a.variant == variant).map(|a| a.values.len()).max().unwrap_or(0);
            let mut row = vec![variant.to_string(), runs.to_string()];
            for (role, name) in &columns {
                row.push(
                    aggregates
                        .iter()
                        .find(|a| a.variant == variant && &a.role == role && &a.name == name)
                        .map_or("-".into(), |a| format!("{} ± {}", format_number(a.mean()), format_number(a.sd()))),
                );
            }
            rows.push(row);
        }
        out.push('\n');
        out.push_str(&render_table(&rows));
    }
    out
}
