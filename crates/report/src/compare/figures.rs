//! The figures of a comparison: each variant's value of each figure per
//! run (over its seeds), and each later run's difference from the first.
//! Where both runs have the same seeds the difference is paired: the mean
//! of the per-seed differences and its standard error. One seed gives a
//! value and a difference, never `± 0`.

use crate::html::mean_sd;
use crate::report::{self, base_name, RunResults, Status};

/// One figure of one variant in one run: (seed, value) per finished run.
pub type Cell = Vec<(Option<u64>, f64)>;

/// The seed of a `name@seed` run.
fn seed_of(name: &str) -> Option<u64> {
    name.rsplit_once('@').and_then(|(_, s)| s.parse().ok())
}

/// cells[variant][figure][run]: the figure's values over that run's seeds.
pub fn gather(runs: &[&RunResults], variants: &[String], figures: &[(String, String)]) -> Vec<Vec<Vec<Cell>>> {
    let cell = |run: &RunResults, variant: &str, role: &str, name: &str| -> Cell {
        let ok = run.variants.iter().filter(|v| v.status == Status::Ok && base_name(&v.name) == variant);
        ok.filter_map(|v| v.results.get(role).and_then(|r| r.scalars.get(name)).map(|&x| (seed_of(&v.name), x)))
            .collect()
    };
    let per_figure = |variant: &String| -> Vec<Vec<Cell>> {
        figures.iter().map(|(role, name)| runs.iter().map(|r| cell(r, variant, role, name)).collect()).collect()
    };
    variants.iter().map(per_figure).collect()
}

/// The mark of a paired difference; [`PAIRED_NOTE`] says what it means.
pub const PAIRED: &str = "(p)";
/// What [`PAIRED`] means, printed under the table.
pub const PAIRED_NOTE: &str =
    "(p): paired over the same seeds: the mean and standard error of the per-seed differences";

/// The values of a cell.
fn values(cell: &Cell) -> Vec<f64> {
    cell.iter().map(|(_, v)| *v).collect()
}

/// `later − first`: paired over the seeds both have (all of them, two or
/// more), else Welch's standard error where both have several seeds, else
/// the difference of the values alone.
pub fn difference(first: &Cell, later: &Cell) -> String {
    if first.is_empty() || later.is_empty() {
        return "–".into();
    }
    let d = report::mean(&values(later)) - report::mean(&values(first));
    if let Some(pairs) = paired(first, later) {
        let se = report::sample_sd(&pairs) / (pairs.len() as f64).sqrt();
        return format!("{d:+.4} ± {se:.4} {PAIRED}");
    }
    if first.len() < 2 || later.len() < 2 {
        return format!("{d:+.4}");
    }
    let var = |c: &Cell| report::sample_sd(&values(c)).powi(2) / c.len() as f64;
    format!("{d:+.4} ± {:.4}", (var(first) + var(later)).sqrt())
}

/// The per-seed differences when both cells have the same two or more seeds.
fn paired(first: &Cell, later: &Cell) -> Option<Vec<f64>> {
    let seeds = |c: &Cell| -> Option<Vec<u64>> {
        let mut s: Vec<u64> = c.iter().map(|(seed, _)| *seed).collect::<Option<_>>()?;
        s.sort_unstable();
        Some(s)
    };
    let (a, b) = (seeds(first)?, seeds(later)?);
    if a != b || a.len() < 2 || a.windows(2).any(|w| w[0] == w[1]) {
        return None;
    }
    let value = |c: &Cell, seed: u64| c.iter().find(|(s, _)| *s == Some(seed)).map(|(_, v)| *v);
    a.iter().map(|&s| Some(value(later, s)? - value(first, s)?)).collect()
}

/// The header and rows: per variant and figure, each run's value (mean ±
/// sd over seeds), then each later run's difference from the first.
pub fn rows(
    labels: &[&str],
    variants: &[String],
    figures: &[(String, String)],
    cells: &[Vec<Vec<Cell>>],
) -> Vec<Vec<String>> {
    let mut header = vec!["variant".to_string(), "figure".to_string()];
    header.extend(labels.iter().map(|l| l.to_string()));
    header.extend(labels[1..].iter().map(|l| format!("{l} − {}", labels[0])));
    let mut rows = vec![header];
    for (variant, per_figure) in variants.iter().zip(cells) {
        for ((role, name), per_run) in figures.iter().zip(per_figure) {
            let mut row = vec![variant.clone(), figure_label(figures, role, name)];
            row.extend(per_run.iter().map(|c| mean_sd(&values(c))));
            row.extend(per_run[1..].iter().map(|c| difference(&per_run[0], c)));
            rows.push(row);
        }
    }
    rows
}

/// A figure's scalar name, with its role where another role has the same name.
fn figure_label(figures: &[(String, String)], role: &str, name: &str) -> String {
    match figures.iter().filter(|(_, n)| n == name).count() {
        1 => name.to_string(),
        _ => format!("{role}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(pairs: &[(u64, f64)]) -> Cell {
        pairs.iter().map(|&(s, v)| (Some(s), v)).collect()
    }

    #[test]
    fn same_seeds_pair_and_one_seed_has_no_spread() {
        let a = cell(&[(7, 0.5), (8, 0.9), (9, 0.2)]);
        assert_eq!(difference(&a, &a), "+0.0000 ± 0.0000 (p)", "identical runs differ by nothing");
        let b = cell(&[(7, 0.6), (8, 1.0), (9, 0.4)]);
        assert_eq!(difference(&a, &b), "+0.1333 ± 0.0333 (p)");
        let other_seeds = cell(&[(1, 0.6), (2, 1.0), (3, 0.4)]);
        assert_eq!(difference(&a, &other_seeds), "+0.1333 ± 0.2687", "Welch's standard error");
        assert_eq!(difference(&cell(&[(7, 1.0)]), &cell(&[(7, 1.5)])), "+0.5000");
        assert_eq!(difference(&vec![], &cell(&[(7, 1.0)])), "–");
        assert_eq!(mean_sd(&[0.5]), "0.5000", "one seed: its value, no ± 0");
    }
}
