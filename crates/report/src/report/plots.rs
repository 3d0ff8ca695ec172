//! What a run folder plots: each series of a role with a line per variant
//! (seeds merged into their mean with a band where their x agree), and the
//! scalar plots a manifest asks for (`[[report.plot]]`). [`super::draw`]
//! draws them.

use std::collections::BTreeMap;
use std::path::Path;

use super::draw::{human, plot_lines, PlotLine};
use super::{base_name, file_stem_safe, mean, sample_sd, RunResults, ScalarPlot, Status, VariantResult};
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

/// The points of one line.
type Line = Vec<(f64, f64)>;

/// One plot: axis labels and a line per variant.
type PlotGroup = (String, String, Vec<(String, Vec<(f64, f64)>)>);

/// Writes `plots/<role>--<series>.svg`: each curve with one line per variant
/// (for `variant@seed` runs, the mean over seeds with a band of ± one sample
/// standard deviation, when they share their x). Series named `plot/curve`
/// share the plot `<role>--plot--<variant>.svg`, a line per curve.
pub fn write_plots(results: &RunResults, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let plots = Confined::new(dir).create_dir_all("plots").map_err(ReportError::io("creating", dir.join("plots")))?;
    let mut written = Vec::new();
    for plot in &results.plots {
        let lines: Vec<PlotLine> = scalar_plot_lines(plot, results)
            .into_iter()
            .enumerate()
            .map(|(i, (family, points))| mean_line(family, &points, i))
            .collect();
        let path = plots.join(file_stem_safe(&format!("{}--vs--{}.svg", plot.y, plot.x)));
        let x_label = if plot.log_x { format!("{} (log scale)", plot.x) } else { plot.x.clone() };
        let title = format!("{} vs {}", human(scalar_of(&plot.y)), human(scalar_of(&plot.x)).to_lowercase());
        plot_lines(&path, &title, &x_label, &plot.y, &lines)?;
        written.push(path);
    }
    for ((role, name), (x_label, y_label, lines)) in series_groups(results) {
        let path = plots.join(file_stem_safe(&format!("{role}--{name}.svg")));
        // A `plot/curve` group's plot is one variant's: its title says which.
        let title = match name.split_once("--") {
            Some((plot, variant)) => format!("{} · {variant}", human(plot)),
            None => human(&name),
        };
        plot_lines(&path, &title, &x_label, &y_label, &merge_seeds(lines))?;
        written.push(path);
    }
    Ok(written)
}

/// The scalar of a `role/scalar` key.
fn scalar_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// A scalar plot's line: the mean over seeds with its ± sd band where it has several.
fn mean_line(family: String, points: &[MeanPoint], color: usize) -> PlotLine {
    let band = match points.iter().any(|p| p.2 > 0.0) {
        true => points.iter().map(|&(x, m, sd)| (x, m - sd, m + sd)).collect(),
        false => vec![],
    };
    PlotLine { name: family, points: points.iter().map(|&(x, m, _)| (x, m)).collect(), band, color, dashed: false }
}

/// Every series of the finished variants, and the curves so far of the
/// stopped ones (their line says where they stopped), by (role, plot): axis
/// labels and a line per variant run (a line per curve for `plot/curve` series).
fn series_groups(results: &RunResults) -> BTreeMap<(String, String), PlotGroup> {
    let mut groups: BTreeMap<(String, String), PlotGroup> = BTreeMap::new();
    for v in results.variants.iter().filter(|v| matches!(v.status, Status::Ok | Status::Stopped)) {
        let stopped = v.stopped_at.map(|step| format!(" (stopped at step {step})")).unwrap_or_default();
        for (role, report) in &v.results {
            for s in &report.series {
                // `plot/curve` series: one plot per variant (seeds merged), a line per curve.
                let (plot, line) = match s.name.split_once('/') {
                    Some((plot, curve)) => {
                        let seed = v.name.rsplit_once('@').map_or(String::new(), |(_, s)| format!("@{s}"));
                        (format!("{plot}--{}", base_name(&v.name)), format!("{curve}{seed}"))
                    }
                    None => (s.name.clone(), format!("{}{stopped}", v.name)),
                };
                let entry = groups
                    .entry((role.clone(), plot))
                    .or_insert_with(|| (s.x_label.clone(), s.y_label.clone(), vec![]));
                entry.2.push((line, s.x.iter().copied().zip(s.y.iter().copied()).collect()));
            }
        }
    }
    groups
}

/// Lines of `variant@seed` runs merged into one line per variant: the mean
/// of y at each x with a band of ± one sample sd, where all seeds have the
/// same x values; otherwise a line per seed in the variant's colour.
pub fn merge_seeds(lines: Vec<(String, Line)>) -> Vec<PlotLine> {
    let mut families: Vec<(String, Vec<(String, Line)>)> = Vec::new();
    for (name, points) in lines {
        let base = base_name(&name).to_string();
        match families.iter_mut().find(|(b, _)| *b == base) {
            Some((_, runs)) => runs.push((name, points)),
            None => families.push((base, vec![(name, points)])),
        }
    }
    let mut merged = Vec::new();
    for (color, (base, runs)) in families.into_iter().enumerate() {
        let first = &runs[0].1;
        let same_x = runs.iter().all(|(_, r)| r.len() == first.len() && r.iter().zip(first).all(|(a, b)| a.0 == b.0));
        if runs.len() > 1 && same_x {
            let at = |i: usize| runs.iter().map(|(_, r)| r[i].1).collect::<Vec<f64>>();
            let points: Vec<MeanPoint> =
                (0..first.len()).map(|i| (first[i].0, mean(&at(i)), sample_sd(&at(i)))).collect();
            merged.push(mean_line(format!("{base} (±sd, n={})", runs.len()), &points, color));
        } else {
            let one = runs.len() == 1;
            merged.extend(runs.into_iter().map(|(name, points)| PlotLine {
                name: if one { base.clone() } else { name },
                points,
                color,
                ..Default::default()
            }));
        }
    }
    merged
}
