//! The run folder: `results.json` (written atomically after every variant),
//! CSV tables, SVG plots comparing variants, and the printed summary. Plots
//! and tables are rendered from results.json alone, so `tessera report DIR`
//! can redo them.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{ReportError, Result};
use serde::{Deserialize, Serialize};

use crate::confined::Confined;
pub use tessera_config::manifest::ScalarPlot;
pub use tessera_util::fs::{file_stem_safe, write_atomic};

/// A component's report as stored in results.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ReportJson {
    /// Named numbers (JSON has no NaN: a host figure that is undefined is
    /// written as `null` and read back as NaN).
    #[serde(deserialize_with = "scalars_with_nulls")]
    pub scalars: BTreeMap<String, f64>,
    /// Named curves.
    pub series: Vec<SeriesJson>,
    /// Named tables.
    pub tables: Vec<TableJson>,
    /// The report's arrays: `.npy` paths relative to the run folder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arrays: Vec<String>,
    /// The scalars the component marks as its headline figures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headline: Vec<String>,
}

/// Scalars where `null` (JSON's NaN) reads as NaN, so every results.json
/// Tessera wrote reads back.
fn scalars_with_nulls<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    let raw: BTreeMap<String, Option<f64>> = Deserialize::deserialize(d)?;
    Ok(raw.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect())
}

/// A curve in results.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesJson {
    /// The curve's name.
    pub name: String,
    /// What x is.
    pub x_label: String,
    /// What y is.
    pub y_label: String,
    /// x values.
    pub x: Vec<f64>,
    /// y values.
    pub y: Vec<f64>,
}

/// A table in results.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableJson {
    /// The table's name.
    pub name: String,
    /// Column headers.
    pub columns: Vec<String>,
    /// Rows of numbers or strings.
    pub rows: Vec<Vec<serde_json::Value>>,
}

impl From<&tessera_sdk::Report> for ReportJson {
    fn from(r: &tessera_sdk::Report) -> Self {
        use tessera_sdk::Cell;
        ReportJson {
            scalars: r.scalars.iter().map(|s| (s.name.to_string(), s.value)).collect(),
            series: r
                .series
                .iter()
                .map(|s| SeriesJson {
                    name: s.name.to_string(),
                    x_label: s.x_label.to_string(),
                    y_label: s.y_label.to_string(),
                    x: s.x.to_vec(),
                    y: s.y.to_vec(),
                })
                .collect(),
            tables: r
                .tables
                .iter()
                .map(|t| TableJson {
                    name: t.name.to_string(),
                    columns: t.columns.iter().map(|c| c.to_string()).collect(),
                    rows: t
                        .rows
                        .iter()
                        .map(|row| {
                            row.iter()
                                .map(|c| match c {
                                    Cell::Number(v) => serde_json::json!(v),
                                    Cell::Integer(v) => serde_json::json!(v),
                                    Cell::Text(s) => serde_json::json!(s.as_str()),
                                })
                                .collect()
                        })
                        .collect(),
                })
                .collect(),
            arrays: Vec::new(),
            headline: r.headlines.iter().map(|h| h.to_string()).collect(),
        }
    }
}

/// Whether a variant ran to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It finished.
    Ok,
    /// It stopped with an error.
    Failed,
}

/// One variant's entry in results.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantResult {
    /// The variant's name.
    pub name: String,
    /// `ok` or `failed`.
    pub status: Status,
    /// The error, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall time of the variant, in seconds.
    pub seconds: f64,
    /// The `plugin.component` behind each role (`sampler`, `metric:...`).
    pub components: BTreeMap<String, String>,
    /// Reports by role: `engine` (the host's own curves), `sampler`,
    /// `finetuner`, `objective`, and each metric's `plugin.component`.
    pub results: BTreeMap<String, ReportJson>,
    /// The device it ran on (`cpu`, `cuda:0`): where `device = "auto"`
    /// fell back, this says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// The whole results.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// Schema version of this file.
    pub schema: u32,
    /// The tessera version that wrote it.
    pub tessera_version: String,
    /// The experiment's name.
    pub experiment: String,
    /// The manifest it ran.
    pub manifest: String,
    /// When the run started (local time, RFC 3339).
    pub started: String,
    /// One entry per variant run so far, in manifest order.
    pub variants: Vec<VariantResult>,
    /// The manifest's plots across variants (`[experiment] plots`).
    #[serde(default)]
    pub plots: Vec<ScalarPlot>,
}

/// A point of a [`ScalarPlot`] line: x, the mean of y over seeds, its sample
/// standard deviation.
pub type MeanPoint = (f64, f64, f64);

/// The y values at each x (keyed by the bits of x) of one variant family.
type ValuesAtX = BTreeMap<u64, (f64, Vec<f64>)>;

/// Scalar `key` (`role/name`) of variant `v`.
fn lookup(v: &VariantResult, key: &str) -> Option<f64> {
    let (role, name) = key.rsplit_once('/')?;
    v.results.get(role)?.scalars.get(name).copied()
}

/// The lines of `plot`: per variant family, (x, mean y, sd y) at each x.
pub fn scalar_plot_lines(plot: &ScalarPlot, results: &RunResults) -> Vec<(String, Vec<MeanPoint>)> {
    let mut families: Vec<(String, ValuesAtX)> = Vec::new();
    for v in results.variants.iter().filter(|v| v.status == Status::Ok) {
        let (Some(x), Some(y)) = (lookup(v, &plot.x), lookup(v, &plot.y)) else { continue };
        let unseeded = v.name.rsplit_once('@').map_or(v.name.as_str(), |(b, _)| b);
        let family = unseeded.split_once('[').map_or(unseeded, |(b, _)| b).to_string();
        let at = match families.iter_mut().find(|(f, _)| *f == family) {
            Some(entry) => &mut entry.1,
            None => {
                families.push((family, BTreeMap::new()));
                &mut families.last_mut().expect("pushed").1
            }
        };
        at.entry(x.to_bits()).or_insert((x, vec![])).1.push(y);
    }
    families
        .into_iter()
        .map(|(family, points)| {
            let mut line: Vec<MeanPoint> = points.into_values().map(|(x, ys)| (x, mean(&ys), sample_sd(&ys))).collect();
            line.sort_by(|a, b| a.0.total_cmp(&b.0));
            (family, line)
        })
        .collect()
}

impl RunResults {
    /// Writes results.json into `dir`, atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_string_pretty(self).map_err(ReportError::Serialize)?;
        Confined::new(dir)
            .write_atomic("results.json", bytes.as_bytes())
            .map_err(ReportError::io("writing", dir.join("results.json")))
    }

    /// Reads `dir/results.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("results.json");
        let bytes = Confined::new(dir).read("results.json").map_err(ReportError::io("reading", &path))?;
        serde_json::from_slice(&bytes).map_err(|source| ReportError::Parse { path, source })
    }
}

/// A variant's name without its `@seed`.
pub fn base_name(name: &str) -> &str {
    name.rsplit_once('@').map_or(name, |(base, _)| base)
}

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

const PALETTE: [plotters::style::RGBColor; 10] = [
    plotters::style::RGBColor(31, 119, 180),
    plotters::style::RGBColor(255, 127, 14),
    plotters::style::RGBColor(44, 160, 44),
    plotters::style::RGBColor(214, 39, 40),
    plotters::style::RGBColor(148, 103, 189),
    plotters::style::RGBColor(140, 86, 75),
    plotters::style::RGBColor(227, 119, 194),
    plotters::style::RGBColor(127, 127, 127),
    plotters::style::RGBColor(188, 189, 34),
    plotters::style::RGBColor(23, 190, 207),
];

/// Plots one curve per variant on shared axes, as SVG. An x label ending in
/// `(log scale)` plots log10 x (points with x <= 0 are left out); a y label
/// ending in `(scatter)` draws the points without joining them.
pub fn plot_lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    let logged: Vec<(String, Vec<(f64, f64)>)>;
    let (lines, x_label) = match x_label.strip_suffix("(log scale)") {
        Some(base) => {
            logged = lines
                .iter()
                .map(|(name, pts)| {
                    (name.clone(), pts.iter().filter(|p| p.0 > 0.0).map(|&(x, y)| (x.log10(), y)).collect())
                })
                .collect();
            (logged.as_slice(), format!("log10 {}", base.trim()))
        }
        None => (lines, x_label.to_string()),
    };
    let (y_label, scatter) = match y_label.strip_suffix("(scatter)") {
        Some(base) => (base.trim(), true),
        None => (y_label, false),
    };
    let points = lines.iter().flat_map(|(_, p)| p.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return Ok(());
    }
    if x0 == x1 {
        (x0, x1) = (x0 - 1.0, x1 + 1.0);
    }
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    let (y0, y1) = (y0 - pad, y1 + pad);
    // Drawn in memory and written whole: workers may redraw a plot at once.
    let frame = Frame { title, x_label: &x_label, y_label, scatter, x: x0..x1, y: y0..y1 };
    let svg =
        draw_svg(&frame, lines).map_err(|e| ReportError::Plot { path: path.to_path_buf(), message: e.to_string() })?;
    write_atomic(path, svg.as_bytes()).map_err(ReportError::io("writing", path))
}

/// What a plot's axes show.
struct Frame<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    scatter: bool,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
}

/// `lines` drawn on `frame` as an SVG document.
fn draw_svg(frame: &Frame, lines: &[(String, Vec<(f64, f64)>)]) -> Result<String, Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(frame.title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(frame.x.clone(), frame.y.clone())?;
        chart.configure_mesh().x_desc(frame.x_label).y_desc(frame.y_label).draw()?;
        for (i, (name, pts)) in lines.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            // A scatter keeps an empty line series for its legend entry.
            let joined: &[(f64, f64)] = if frame.scatter { &[] } else { pts };
            chart
                .draw_series(LineSeries::new(joined.iter().copied(), color.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// The points of one line.
type Line = Vec<(f64, f64)>;

/// One plot: axis labels and a line per variant.
type PlotGroup = (String, String, Vec<(String, Vec<(f64, f64)>)>);

/// Writes `plots/<role>--<series>.svg`: each curve with one line per variant
/// (for `variant@seed` runs, the mean over seeds, when they share their x).
/// Series named `plot/curve` share the plot `<role>--plot--<variant>.svg`, a
/// line per curve.
pub fn write_plots(results: &RunResults, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let plots = Confined::new(dir).create_dir_all("plots").map_err(ReportError::io("creating", dir.join("plots")))?;
    let mut groups: BTreeMap<(String, String), PlotGroup> = BTreeMap::new();
    for v in results.variants.iter().filter(|v| v.status == Status::Ok) {
        for (role, report) in &v.results {
            for s in &report.series {
                // `plot/curve` series: one plot per variant (seeds merged), a line per curve.
                let (plot, line) = match s.name.split_once('/') {
                    Some((plot, curve)) => {
                        let base = v.name.rsplit_once('@').map_or(v.name.as_str(), |(b, _)| b);
                        (format!("{plot}--{base}"), format!("{curve}: {}", v.name))
                    }
                    None => (s.name.clone(), v.name.clone()),
                };
                let entry = groups
                    .entry((role.clone(), plot))
                    .or_insert_with(|| (s.x_label.clone(), s.y_label.clone(), vec![]));
                entry.2.push((line, s.x.iter().copied().zip(s.y.iter().copied()).collect()));
            }
        }
    }
    let mut written = Vec::new();
    for plot in &results.plots {
        let lines: Vec<(String, Line)> = scalar_plot_lines(plot, results)
            .into_iter()
            .map(|(family, points)| (family, points.into_iter().map(|(x, y, _)| (x, y)).collect()))
            .collect();
        let path = plots.join(file_stem_safe(&format!("{}--vs--{}.svg", plot.y, plot.x)));
        let x_label = if plot.log_x { format!("{} (log scale)", plot.x) } else { plot.x.clone() };
        plot_lines(&path, &format!("{} vs {} (mean over seeds)", plot.y, plot.x), &x_label, &plot.y, &lines)?;
        written.push(path);
    }
    for ((role, name), (x_label, y_label, lines)) in groups {
        let path = plots.join(file_stem_safe(&format!("{role}--{name}.svg")));
        plot_lines(&path, &format!("{name} ({role})"), &x_label, &y_label, &mean_over_seeds(lines))?;
        written.push(path);
    }
    Ok(written)
}

/// Lines of `variant@seed` runs merged into one line per variant (the mean
/// of y at each x), where all seeds have the same x values; other lines stay.
fn mean_over_seeds(lines: Vec<(String, Line)>) -> Vec<(String, Line)> {
    let mut out: Vec<(String, Vec<Line>)> = Vec::new();
    for (name, points) in lines {
        let base = name.rsplit_once('@').map_or(name.clone(), |(b, _)| b.to_string());
        match out.iter_mut().find(|(b, _)| *b == base) {
            Some((_, runs)) => runs.push(points),
            None => out.push((base, vec![points])),
        }
    }
    let mut merged = Vec::new();
    for (base, runs) in out {
        let same_x = runs.iter().all(|r| r.len() == runs[0].len() && r.iter().zip(&runs[0]).all(|(a, b)| a.0 == b.0));
        if runs.len() > 1 && same_x {
            let k = runs.len() as f64;
            let mean =
                (0..runs[0].len()).map(|i| (runs[0][i].0, runs.iter().map(|r| r[i].1).sum::<f64>() / k)).collect();
            merged.push((format!("{base} (mean of {})", runs.len()), mean));
        } else if runs.len() == 1 {
            merged.push((base, runs.into_iter().next().expect("one run")));
        } else {
            merged.extend(runs.into_iter().enumerate().map(|(i, r)| (format!("{base} #{}", i + 1), r)));
        }
    }
    merged
}

/// Mean, sample standard deviation, min and max of one scalar over the seeds
/// of a variant (`name@seed` runs).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedAggregate {
    /// The variant's name without `@seed`.
    pub variant: String,
    /// The report's role.
    pub role: String,
    /// The scalar.
    pub name: String,
    /// Values over the seeds that finished.
    pub values: Vec<f64>,
}

/// The mean of `values` (0 for none).
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// The sample standard deviation of `values` (0 for fewer than two).
pub fn sample_sd(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return 0.0;
    }
    let m = mean(values);
    (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
}

impl SeedAggregate {
    /// The mean.
    pub fn mean(&self) -> f64 {
        mean(&self.values)
    }

    /// The sample standard deviation (0 for one value).
    pub fn sd(&self) -> f64 {
        sample_sd(&self.values)
    }
}

/// Every scalar of every repeated variant, over its seeds, in manifest order.
pub fn seed_aggregates(results: &RunResults) -> Vec<SeedAggregate> {
    let mut out: Vec<SeedAggregate> = Vec::new();
    for v in results.variants.iter().filter(|v| v.status == Status::Ok) {
        let Some((base, _)) = v.name.rsplit_once('@') else { continue };
        for (role, report) in &v.results {
            for (name, value) in &report.scalars {
                match out.iter_mut().find(|a| a.variant == base && &a.role == role && &a.name == name) {
                    Some(a) => a.values.push(*value),
                    None => out.push(SeedAggregate {
                        variant: base.to_string(),
                        role: role.clone(),
                        name: name.clone(),
                        values: vec![*value],
                    }),
                }
            }
        }
    }
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunResults {
        let mut report = ReportJson::default();
        report.scalars.insert("test_accuracy".into(), 0.9);
        report.series.push(SeriesJson {
            name: "acc".into(),
            x_label: "step".into(),
            y_label: "accuracy".into(),
            x: vec![1.0, 2.0],
            y: vec![0.5, 0.9],
        });
        report.tables.push(TableJson {
            name: "t".into(),
            columns: vec!["a".into(), "b".into()],
            rows: vec![vec![serde_json::json!(1), serde_json::json!("x,y")]],
        });
        RunResults {
            schema: 1,
            tessera_version: "0".into(),
            experiment: "e".into(),
            manifest: "m.toml".into(),
            started: "now".into(),
            variants: vec![
                VariantResult {
                    name: "a".into(),
                    status: Status::Ok,
                    error: None,
                    seconds: 1.0,
                    components: Default::default(),
                    results: [("baselines.accuracy".to_string(), report)].into(),
                    device: None,
                },
                VariantResult {
                    name: "b".into(),
                    status: Status::Failed,
                    error: Some("boom".into()),
                    seconds: 0.5,
                    components: Default::default(),
                    results: Default::default(),
                    device: None,
                },
            ],
            plots: vec![],
        }
    }

    #[test]
    fn headline_figures_lead_the_summary_then_the_hosts_then_the_rest() {
        let mut r = sample();
        let mut plugin = ReportJson::default();
        plugin.scalars.extend([("aaa".to_string(), 1.0), ("bound".to_string(), 0.02)]);
        plugin.headline.push("bound".into());
        let mut engine = ReportJson::default();
        engine.scalars.extend([("epoch_seconds".to_string(), 1.0), ("final_test_accuracy".to_string(), 0.9)]);
        r.variants[0].results.extend([("p.m".to_string(), plugin), ("engine".to_string(), engine)]);
        let names = |timed| -> Vec<String> { summary_columns(&r, 10, timed).into_iter().map(|(_, n)| n).collect() };
        assert_eq!(names(false), ["bound", "final_test_accuracy", "test_accuracy", "aaa"]);
        assert!(names(true).contains(&"epoch_seconds".to_string()), "the console keeps wall times");
        let mut objective = ReportJson::default();
        objective.scalars.extend([("choose_seconds".to_string(), 2.0), ("expected_spread".to_string(), 9.0)]);
        r.variants[0].results.insert("objective".into(), objective);
        let names: Vec<String> = summary_columns(&r, 10, false).into_iter().map(|(_, n)| n).collect();
        assert_eq!(names[..4], ["bound", "final_test_accuracy", "expected_spread", "choose_seconds"], "{names:?}");
        // The host's marks of what a setting is about come after its own headlines.
        r.variants[0].results.get_mut("engine").unwrap().headline.push("epoch_seconds".into());
        let names: Vec<String> = summary_columns(&r, 10, false).into_iter().map(|(_, n)| n).collect();
        let expected = ["bound", "final_test_accuracy", "expected_spread", "epoch_seconds", "choose_seconds"];
        assert_eq!(names[..5], expected, "{names:?}");
        assert!(summary_table(&r, 2).lines().next().unwrap().contains("bound"));
    }

    #[test]
    fn scalar_plots_merge_seeds_and_sweep_values_into_one_line_per_variant() {
        let run = |name: &str, x: f64, y: f64| {
            let mut engine = ReportJson::default();
            engine.scalars.insert("n".into(), x);
            engine.scalars.insert("acc".into(), y);
            VariantResult {
                name: name.into(),
                status: Status::Ok,
                error: None,
                seconds: 0.0,
                components: Default::default(),
                results: [("engine".to_string(), engine)].into(),
                device: None,
            }
        };
        let mut r = sample();
        r.variants = vec![
            run("probe[size=10]@1", 10.0, 0.5),
            run("probe[size=10]@2", 10.0, 0.7),
            run("probe[size=0]@1", 100.0, 0.9),
            run("full[size=10]@1", 10.0, 0.4),
        ];
        r.plots = vec![ScalarPlot { x: "engine/n".into(), y: "engine/acc".into(), log_x: true }];
        let lines = scalar_plot_lines(&r.plots[0], &r);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].0, "probe");
        let (x, mean, sd) = lines[0].1[0];
        assert_eq!(x, 10.0);
        assert!((mean - 0.6).abs() < 1e-12 && (sd - 0.2 / 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(lines[0].1[1], (100.0, 0.9, 0.0));
        assert_eq!(lines[1], ("full".to_string(), vec![(10.0, 0.4, 0.0)]));
        let dir = tempfile::tempdir().unwrap();
        let written = write_plots(&r, dir.path()).unwrap();
        assert!(written.iter().any(|p| p.ends_with("engine_acc--vs--engine_n.svg")), "{written:?}");
    }

    #[test]
    fn an_undefined_host_figure_reads_back_as_nan() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = sample();
        r.variants[0].results.get_mut("baselines.accuracy").unwrap().scalars.insert("undefined".into(), f64::NAN);
        r.save(dir.path()).unwrap();
        let back = RunResults::load(dir.path()).unwrap();
        assert!(back.variants[0].results["baselines.accuracy"].scalars["undefined"].is_nan());
    }

    #[test]
    fn results_round_trip_and_render() {
        let dir = tempfile::tempdir().unwrap();
        let r = sample();
        r.save(dir.path()).unwrap();
        assert_eq!(RunResults::load(dir.path()).unwrap(), r);
        write_tables(&r, dir.path()).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("tables/a--baselines.accuracy--t.csv")).unwrap();
        assert_eq!(csv, "a,b\n1,\"x,y\"\n");
        let plots = write_plots(&r, dir.path()).unwrap();
        assert_eq!(plots.len(), 1);
        assert!(std::fs::read_to_string(&plots[0]).unwrap().contains("<svg"));
        let table = summary_table(&r, 8);
        assert!(table.contains("test_accuracy"), "{table}");
        assert!(table.contains("b failed: boom"), "{table}");
        assert_eq!(
            (format_number(396.0), format_number(0.95671), format_number(125472.25)),
            ("396".into(), "0.9567".into(), "125472".into())
        );
    }

    #[test]
    fn grouped_series_make_one_plot_per_variant_with_a_line_per_curve() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = sample();
        let ok = r.variants[0].clone();
        r.variants = ["digits@1", "digits@2", "blobs@1"]
            .iter()
            .map(|name| {
                let mut v = ok.clone();
                v.name = name.to_string();
                let report = v.results.get_mut("baselines.accuracy").unwrap();
                for curve in ["I(F;Y)", "mu"] {
                    report.series.push(SeriesJson {
                        name: format!("information/{curve}"),
                        x_label: "step (log scale)".into(),
                        y_label: "bits".into(),
                        x: vec![0.0, 1.0, 10.0],
                        y: vec![0.0, 0.1, 0.5],
                    });
                }
                v
            })
            .collect();
        let plots = write_plots(&r, dir.path()).unwrap();
        let names: Vec<String> = plots.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(
            names,
            [
                "baselines.accuracy--acc.svg",
                "baselines.accuracy--information--blobs.svg",
                "baselines.accuracy--information--digits.svg"
            ]
        );
        let svg =
            std::fs::read_to_string(dir.path().join("plots/baselines.accuracy--information--digits.svg")).unwrap();
        assert!(svg.contains("I(F;Y): digits (mean of 2)") && svg.contains("mu: digits (mean of 2)"), "{svg}");
        assert!(svg.contains("log10 step"));
    }
}
