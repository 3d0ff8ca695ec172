//! What can go wrong reading and writing what a run folder shows. Each
//! error names the file; its cause, if any, is its `source`, so a caller
//! that prints the chain (`{:#}` through anyhow) reads `parsing X: cause`.

use std::path::PathBuf;

/// An error of the results layer.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or folder could not be read, written or made.
    #[error("{action} {}", path.display())]
    Io {
        /// `reading`, `writing`, `creating`.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file that does not parse as what it should hold.
    #[error("parsing {}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A results.json of a schema this build does not know.
    #[error("{}: schema version {found}, but this tessera reads {supported} (major versions 1 and 2): read it with the tessera that wrote it, or rerun the manifest", path.display())]
    UnknownSchema {
        /// The file.
        path: PathBuf,
        /// Its `schema_version`.
        found: String,
        /// The version this build writes.
        supported: &'static str,
    },
    /// A `role/scalar` no finished variant reports.
    #[error("{key}: no finished variant reports this figure{}", figure_hint(suggestion, known))]
    UnknownFigure {
        /// The `role/scalar` asked for.
        key: String,
        /// The closest figure the runs report.
        suggestion: Option<String>,
        /// A few figures the runs report (their headline ones first).
        known: Vec<String>,
    },
    /// A `manifest.resolved.toml` that does not read as Tessera wrote it.
    #[error("{}: {message}", path.display())]
    Settings {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A run folder whose results cannot be read.
    #[error("reading the run folder {}", path.display())]
    RunFolder {
        /// The run folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<ReportError>,
    },
    /// Results that JSON cannot hold.
    #[error("serializing results")]
    Serialize(#[source] serde_json::Error),
    /// A page whose template did not render (a bug of Tessera's: the
    /// templates are its own).
    #[error("rendering {name}")]
    Page {
        /// The template.
        name: &'static str,
        /// The template engine's error.
        #[source]
        source: minijinja::Error,
    },
    /// A CSV table that could not be written.
    #[error("writing CSV: {0}")]
    Csv(String),
    /// A plot that could not be drawn.
    #[error("drawing {}: {message}", path.display())]
    Plot {
        /// The plot's file.
        path: PathBuf,
        /// What the plotting library said.
        message: String,
    },
    /// `compare` of runs whose figures do not compare (other data, other variants).
    #[error("the runs do not compare: {0}; compare them anyway with --force")]
    RunsDiffer(String),
    /// `compare` with fewer than two runs.
    #[error("compare needs at least two run folders")]
    TooFewRuns,
    /// `compare --out` names something that is not a folder.
    #[error("--out {}: it exists and is not a folder; name a new folder (nothing is overwritten)", .0.display())]
    OutNotFolder(PathBuf),
    /// `compare --out` names a folder with files in it.
    #[error("{} is not empty: name a new folder with --out (nothing is overwritten)", .0.display())]
    OutNotEmpty(PathBuf),
    /// Runs with no variant in common.
    #[error("the runs share no variant name (seeds aside): nothing to compare")]
    NothingShared,
    /// `tessera table` of a run none of whose variants finished.
    #[error("the run has no finished variant")]
    NoFinishedVariant,
}

/// A result of the results layer.
pub type Result<T, E = ReportError> = std::result::Result<T, E>;

impl ReportError {
    /// An I/O error while `action` (`reading`, …) `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ReportError {
        let path = path.into();
        move |source| ReportError::Io { action, path, source }
    }
}

/// `; did you mean `x`?` or `; the runs report a, b, …`.
fn figure_hint(suggestion: &Option<String>, known: &[String]) -> String {
    match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None if known.is_empty() => String::new(),
        None => format!("; the runs report {} (results.json lists them all)", known.join(", ")),
    }
}
