//! The CSV files under `tables/`: every component table of every variant,
//! as written in results.json.

use std::path::Path;

use super::{file_stem_safe, seed_aggregates, RunResults};
use crate::confined::Confined;
use crate::error::{ReportError, Result};

/// A table cell as CSV text: strings as they are, numbers as JSON writes them.
fn cell_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A CSV file (quoted where needed) of `header` and `rows`.
fn csv_bytes(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> Result<Vec<u8>> {
    let csv_error = |e: csv::Error| ReportError::Csv(e.to_string());
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(header).map_err(csv_error)?;
    for row in rows {
        writer.write_record(&row).map_err(csv_error)?;
    }
    writer.into_inner().map_err(|e| ReportError::Csv(e.to_string()))
}

/// Writes `tables/*.csv` (one per component table) and `series.csv` (every
/// curve in long form) into `dir`.
pub fn write_tables(results: &RunResults, dir: &Path) -> Result<()> {
    let run = Confined::new(dir);
    let tables = run.create_dir_all("tables").map_err(ReportError::io("creating", dir.join("tables")))?;
    let mut long = Vec::new();
    for v in &results.variants {
        for (role, report) in &v.results {
            for t in &report.tables {
                let header: Vec<&str> = t.columns.iter().map(String::as_str).collect();
                let rows = t.rows.iter().map(|row| row.iter().map(cell_text).collect());
                let name = file_stem_safe(&format!("{}--{role}--{}.csv", v.name, t.name));
                let path = tables.join(name);
                run.write_atomic(&path, &csv_bytes(&header, rows)?).map_err(ReportError::io("writing", &path))?;
            }
            for s in &report.series {
                let fields = [&v.name, role, &s.name, &s.x_label, &s.y_label].map(|f| f.to_string());
                long.extend(s.x.iter().zip(&s.y).map(|(x, y)| [&fields[..], &[x.to_string(), y.to_string()]].concat()));
            }
        }
        let scalars = v.results.iter().flat_map(|(role, report)| {
            report.scalars.iter().map(move |(name, value)| vec![role.clone(), name.clone(), value.to_string()])
        });
        let path = tables.join(file_stem_safe(&format!("{}--scalars.csv", v.name)));
        run.write_atomic(&path, &csv_bytes(&["role", "name", "value"], scalars)?)
            .map_err(ReportError::io("writing", &path))?;
    }
    let aggregates = seed_aggregates(results);
    if !aggregates.is_empty() {
        let rows = aggregates.iter().map(|a| {
            let (min, max) = a.values.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let numbers = [a.values.len() as f64, a.mean(), a.sd(), min, max].map(|x| x.to_string());
            [&[a.variant.clone(), a.role.clone(), a.name.clone()][..], &numbers[..]].concat()
        });
        let header = ["variant", "role", "name", "runs", "mean", "sd", "min", "max"];
        let path = tables.join("seeds.csv");
        run.write_atomic(&path, &csv_bytes(&header, rows)?).map_err(ReportError::io("writing", &path))?;
    }
    let header = ["variant", "role", "series", "x_label", "y_label", "x", "y"];
    run.write_atomic("series.csv", &csv_bytes(&header, long)?)
        .map_err(ReportError::io("writing", dir.join("series.csv")))?;
    Ok(())
}
