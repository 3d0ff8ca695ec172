//! `tessera table`: a Markdown table of a run folder's figures, one row per
//! variant (seeds merged: mean ± sample sd), one column per scalar, so that
//! the book's tables are rendered from run folders, not copied by hand.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::error::{ReportError, Result};

use crate::report::{RunResults, Status};

/// The most decimals a column may ask for (an f64 holds 17 significant digits).
pub const MAX_DECIMALS: usize = 17;

/// How a column's numbers are written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CellFormat {
    /// × 100, one decimal, with `%`.
    Percent,
    /// This many decimals.
    Decimals(usize),
    /// Rounded, with thousands separators.
    Integer,
}

/// A column: its header and the `role/scalar` it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The header.
    pub label: String,
    /// `role/scalar`, e.g. `baselines.accuracy/test_accuracy`.
    pub key: String,
    /// How its numbers are written.
    pub format: CellFormat,
}

/// A `--column` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadColumn {
    /// Not `LABEL=ROLE/SCALAR[:FORMAT]`.
    #[error("--column {0}: expected LABEL=ROLE/SCALAR[:pct|int|fN]")]
    Usage(String),
    /// A format that is none of `pct`, `int`, `f0`…`f17`.
    #[error("--column {text}: `{format}`: expected pct, int or f0 to f{MAX_DECIMALS} (decimals)")]
    Format {
        /// The whole argument.
        text: String,
        /// Its format part.
        format: String,
    },
}

impl FromStr for Column {
    type Err = BadColumn;

    /// `LABEL=ROLE/SCALAR[:FORMAT]`, FORMAT `pct`, `int` or `fN` (N decimals; default `f3`).
    fn from_str(text: &str) -> std::result::Result<Self, BadColumn> {
        let usage = || BadColumn::Usage(text.to_string());
        let (label, rest) = text.split_once('=').ok_or_else(usage)?;
        let (key, format) = rest.rsplit_once(':').unwrap_or((rest, "f3"));
        let format = match format {
            "pct" => CellFormat::Percent,
            "int" => CellFormat::Integer,
            f => CellFormat::Decimals(
                f.strip_prefix('f')
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n <= MAX_DECIMALS)
                    .ok_or_else(|| BadColumn::Format { text: text.to_string(), format: f.to_string() })?,
            ),
        };
        if !key.contains('/') {
            return Err(usage());
        }
        Ok(Column { label: label.to_string(), key: key.to_string(), format })
    }
}

/// The table of `results`: a row per variant (base name, in run order), a cell
/// per column; `–` where a variant lacks the scalar.
pub fn render(results: &RunResults, columns: &[Column]) -> Result<String> {
    let rows = merged(results);
    if rows.is_empty() {
        return Err(ReportError::NoFinishedVariant);
    }
    let keys: Vec<&str> = columns.iter().map(|c| c.key.as_str()).collect();
    crate::report::check_figures(&[results], &keys)?;
    let mut out =
        format!("| variant | {} |\n", columns.iter().map(|c| c.label.as_str()).collect::<Vec<_>>().join(" | "));
    out += &format!("|---|{}\n", "---|".repeat(columns.len()));
    for (name, values) in &rows {
        let cells: Vec<String> =
            columns.iter().map(|c| values.get(&c.key).map_or("–".into(), |v| cell(v, c.format))).collect();
        out += &format!("| {name} | {} |\n", cells.join(" | "));
    }
    Ok(out)
}

/// Each finished variant's scalars over its seeds, by base name in run order.
fn merged(results: &RunResults) -> Vec<(String, BTreeMap<String, Vec<f64>>)> {
    let mut rows: Vec<(String, BTreeMap<String, Vec<f64>>)> = Vec::new();
    for v in results.variants.iter().filter(|v| v.status == Status::Ok) {
        let base = v.name.rsplit_once('@').map_or(v.name.as_str(), |(b, _)| b).to_string();
        let index = match rows.iter().position(|(n, _)| *n == base) {
            Some(i) => i,
            None => {
                rows.push((base, BTreeMap::new()));
                rows.len() - 1
            }
        };
        for (role, report) in &v.results {
            for (scalar, value) in &report.scalars {
                rows[index].1.entry(format!("{role}/{scalar}")).or_default().push(*value);
            }
        }
    }
    rows
}

/// `mean ± sd` in `format`; the sd only where the runs differ.
fn cell(values: &[f64], format: CellFormat) -> String {
    let (mean, sd) = (crate::report::mean(values), crate::report::sample_sd(values));
    let one = |x: f64| match format {
        CellFormat::Percent => format!("{:.1}", 100.0 * x),
        CellFormat::Decimals(n) => format!("{x:.n$}"),
        CellFormat::Integer => thousands(x.round() as i64),
    };
    let unit = if format == CellFormat::Percent { " %" } else { "" };
    if values.len() > 1 && sd != 0.0 {
        format!("{} ± {}{unit}", one(mean), one(sd))
    } else {
        format!("{}{unit}", one(mean))
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_parse_and_cells_format() {
        let c: Column = "test accuracy=baselines.accuracy/test_accuracy:pct".parse().unwrap();
        assert_eq!(c.format, CellFormat::Percent);
        assert_eq!(c.key, "baselines.accuracy/test_accuracy");
        assert!("no-slash=x:pct".parse::<Column>().is_err());
        assert_eq!(cell(&[0.5, 0.7], CellFormat::Percent), "60.0 ± 14.1 %");
        assert_eq!(cell(&[70000.0], CellFormat::Integer), "70,000");
        assert_eq!(cell(&[274.0, 274.0], CellFormat::Integer), "274");
        assert_eq!(cell(&[1.23456], CellFormat::Decimals(2)), "1.23");
    }
}
