//! The SVG plots of a run folder: each series of a role with a line per
//! variant (seeds merged into their mean where their x agree), and the
//! scalar plots a manifest asks for (`[[report.plot]]`).

use std::collections::BTreeMap;
use std::path::Path;

use super::{file_stem_safe, mean, sample_sd, write_atomic, RunResults, ScalarPlot, Status, VariantResult};
use crate::confined::Confined;
use crate::error::{ReportError, Result};

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
