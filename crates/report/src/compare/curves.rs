//! The curves several runs share, one plot each: a line per run and
//! variant (seeds merged into a mean with a ± sd band), a colour per
//! variant, the first run solid and later runs dashed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::report::{self, base_name, file_stem_safe, human, merge_seeds, PlotLine, RunResults, Status};

/// One run's lines of a curve: (variant run name, points).
type RunLines = Vec<(String, Vec<(f64, f64)>)>;

/// A curve's labels and each run's lines.
type Shared = (String, String, Vec<RunLines>);

/// One SVG per curve that at least two runs report; the files written.
pub fn write(labels: &[&str], runs: &[&RunResults], variants: &[String], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for ((role, name), (x_label, y_label, per_run)) in shared_curves(runs, variants) {
        let lines = lines(labels, variants, per_run);
        let path = dir.join(file_stem_safe(&format!("{role}--{name}.svg")));
        report::plot_lines(&path, &human(&name), &x_label, &y_label, &lines)?;
        written.push(path);
    }
    Ok(written)
}

/// The curves of the `variants` (seeds aside) that two or more runs report.
fn shared_curves(runs: &[&RunResults], variants: &[String]) -> BTreeMap<(String, String), Shared> {
    let mut curves: BTreeMap<(String, String), Shared> = BTreeMap::new();
    for (i, run) in runs.iter().enumerate() {
        let shown =
            run.variants.iter().filter(|v| v.status == Status::Ok && variants.iter().any(|n| n == base_name(&v.name)));
        for v in shown {
            for (role, r) in &v.results {
                for s in r.series.iter().filter(|s| !s.name.contains('/')) {
                    let entry = curves
                        .entry((role.clone(), s.name.clone()))
                        .or_insert_with(|| (s.x_label.clone(), s.y_label.clone(), vec![vec![]; runs.len()]));
                    entry.2[i].push((v.name.clone(), s.x.iter().copied().zip(s.y.iter().copied()).collect()));
                }
            }
        }
    }
    curves.retain(|_, (_, _, per_run)| per_run.iter().filter(|l| !l.is_empty()).count() >= 2);
    curves
}

/// Each run's lines, seeds merged, named `variant · run`, coloured by variant.
fn lines(labels: &[&str], variants: &[String], per_run: Vec<RunLines>) -> Vec<PlotLine> {
    let mut out = Vec::new();
    for (i, run_lines) in per_run.into_iter().enumerate() {
        for mut line in merge_seeds(run_lines) {
            let variant = base_name(line.name.split(" (").next().unwrap_or(&line.name)).to_string();
            line.color = variants.iter().position(|v| *v == variant).unwrap_or(line.color);
            line.dashed = i > 0;
            line.name = format!("{variant} · {}", labels[i]);
            out.push(line);
        }
    }
    out
}
