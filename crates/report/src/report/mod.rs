//! The run folder's schema: `results.json` (written atomically after every
//! variant) and what each component reported. Rendered from it alone, so
//! `tessera report DIR` can redo them: [`tables`] (CSV), [`plots`] (SVG),
//! [`seeds`] (seeds merged) and [`summary`] (the printed table).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{ReportError, Result};
use serde::{Deserialize, Serialize};

use crate::confined::Confined;
pub use tessera_config::manifest::ScalarPlot;
pub use tessera_util::fs::{file_stem_safe, write_atomic};

mod draw;
mod plots;
mod seeds;
mod summary;
mod tables;

pub use draw::{color, human, plot_lines, PlotLine, PLOT_SIZE, TICK_FONT};
pub use plots::*;
pub use seeds::*;
pub use summary::*;
pub use tables::*;

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
    /// A signal stopped it with its state saved (`stopped_at`); its
    /// results are those so far, and `tessera resume` continues it (schema 2.2).
    Stopped,
}

/// One variant's entry in results.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantResult {
    /// The variant's name.
    pub name: String,
    /// `ok`, `failed` or `stopped`.
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
    /// For a `<variant>+seeds` entry (metrics with `pool = "seeds"`): the
    /// runs whose final models it pooled, in seed order (schema 2.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pooled_from: Vec<String>,
    /// For a stopped variant: the step of its saved state, where `tessera
    /// resume` continues (schema 2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<u64>,
}

/// The schema version results.json is written with: `MAJOR.MINOR`. A
/// reader refuses another major version; a minor one only adds fields.
pub const SCHEMA_VERSION: &str = "2.2";

/// The whole results.json (its JSON Schema: the book's "The run folder").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// Schema version of this file, `MAJOR.MINOR` ([`SCHEMA_VERSION`]);
    /// files of schema 1 had the number `schema` instead.
    #[serde(default = "schema_one")]
    pub schema_version: String,
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
    /// The machine and build the run was collected on (absent in schema 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<crate::system::SystemInfo>,
}

/// Files of schema 1 had no `schema_version`.
fn schema_one() -> String {
    "1.0".into()
}

/// The major version of a `MAJOR.MINOR` schema version.
fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
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
        let results: RunResults =
            serde_json::from_slice(&bytes).map_err(|source| ReportError::Parse { path: path.clone(), source })?;
        match major(&results.schema_version) {
            "1" | "2" => Ok(results),
            _ => Err(ReportError::UnknownSchema { path, found: results.schema_version, supported: SCHEMA_VERSION }),
        }
    }
}

/// A variant's name without its `@seed`.
pub fn base_name(name: &str) -> &str {
    name.rsplit_once('@').map_or(name, |(base, _)| base)
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
            schema_version: SCHEMA_VERSION.into(),
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
                    pooled_from: vec![],
                    stopped_at: None,
                },
                VariantResult {
                    name: "b".into(),
                    status: Status::Failed,
                    error: Some("boom".into()),
                    seconds: 0.5,
                    components: Default::default(),
                    results: Default::default(),
                    device: None,
                    pooled_from: vec![],
                    stopped_at: None,
                },
            ],
            plots: vec![],
            system: None,
        }
    }

    #[test]
    fn a_newer_major_schema_is_refused_naming_the_file_and_the_versions() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = sample();
        r.schema_version = "3.1".into();
        r.save(dir.path()).unwrap();
        let e = RunResults::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("results.json") && e.contains("3.1") && e.contains(SCHEMA_VERSION), "{e}");
        let legacy = serde_json::to_string(&r).unwrap().replace(r#""schema_version":"3.1""#, r#""schema":1"#);
        std::fs::write(dir.path().join("results.json"), legacy).unwrap();
        assert_eq!(RunResults::load(dir.path()).unwrap().schema_version, "1.0", "schema 1 still reads");
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
                pooled_from: vec![],
                stopped_at: None,
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
    fn the_printed_summary_fits_a_hundred_columns_and_says_where_the_rest_are() {
        let mut r = sample();
        let report = r.variants[0].results.get_mut("baselines.accuracy").unwrap();
        for i in 0..12 {
            report.scalars.insert(format!("a_rather_long_figure_name_{i:02}"), 0.123456);
        }
        r.variants.push(VariantResult { name: "a@2".into(), ..r.variants[0].clone() });
        r.variants[0].name = "a@1".into();
        let table = summary_table(&r, usize::MAX);
        assert!(table.lines().all(|l| l.chars().count() <= CONSOLE_WIDTH), "{table}");
        assert!(table.contains("more figures in report.html"), "{table}");
        let row: Vec<&str> = table.lines().nth(2).unwrap().split_whitespace().collect();
        assert_eq!(row[..2], ["a", "2/2"], "seeds merged: {table}");
        assert!(table.contains("0.1235 ± 0"), "{table}");
    }

    #[test]
    fn two_copies_of_a_metric_have_their_own_console_columns() {
        let mut r = sample();
        let copy = r.variants[0].results["baselines.accuracy"].clone();
        r.variants[0].results.insert("baselines.accuracy#2".into(), copy);
        let header = summary_table(&r, 8).lines().next().unwrap().to_string();
        assert!(header.contains(" test_accuracy ") && header.contains("test_accuracy#2"), "{header}");
        let mut engine = ReportJson::default();
        engine.scalars.insert("test_accuracy".into(), 0.5);
        r.variants[0].results.insert("engine".into(), engine);
        let header = summary_table(&r, 8).lines().next().unwrap().to_string();
        assert!(
            header.contains("engine/test_accuracy") && header.contains("baselines.accuracy/test_accuracy"),
            "{header}"
        );
    }

    #[test]
    fn an_unknown_figure_is_refused_with_the_closest_one() {
        let r = sample();
        assert!(check_figure(&[&r], "baselines.accuracy/test_accuracy").is_ok());
        let typo = check_figure(&[&r], "baselines.accuracy/test_acuracy").unwrap_err().to_string();
        assert!(typo.contains("did you mean `baselines.accuracy/test_accuracy`"), "{typo}");
        let role = check_figure(&[&r], "engine/test_accuracy").unwrap_err().to_string();
        assert!(role.contains("did you mean `baselines.accuracy/test_accuracy`"), "{role}");
        let far = check_figure(&[&r], "objective/spread").unwrap_err().to_string();
        assert!(far.contains("the runs report baselines.accuracy/test_accuracy"), "{far}");
        let table = crate::table::render(&r, &["x=baselines.accuracy/tset_accuracy".parse().unwrap()]);
        assert!(table.unwrap_err().to_string().contains("did you mean"), "tessera table refuses it too");
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
        assert!(
            svg.contains("I(F;Y) (±sd, n=2)") && svg.contains("mu (±sd, n=2)") && svg.contains("Information · digits"),
            "{svg}"
        );
        assert!(svg.contains("log10 step"));
    }
}
