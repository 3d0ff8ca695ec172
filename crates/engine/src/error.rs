//! The engine's errors: what the layers below report, under what the engine
//! was doing (`Context`), and [`EngineError::Invalid`] for what the engine
//! itself refuses (a run folder it did not make, a plan that does not match
//! its manifest, a Slurm setting it cannot pass on), naming the folder, the
//! key or the unit. The binary prints the chain.

/// What went wrong planning, running or collecting a run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// What the engine refuses; the message says which folder, key or unit,
    /// and what to do.
    #[error("{0}")]
    Invalid(String),
    /// The manifest's problems, each located.
    #[error(transparent)]
    Manifest(#[from] tessera_config::manifest::Diagnostics),
    /// One located problem of the manifest.
    #[error(transparent)]
    Diagnostic(#[from] tessera_config::manifest::Diagnostic),
    /// A `--set` that does not parse.
    #[error(transparent)]
    Override(#[from] tessera_config::manifest::BadOverride),
    /// A population that cannot be planned.
    #[error(transparent)]
    Plan(#[from] tessera_config::population::PlanError),
    /// The data layer failed.
    #[error(transparent)]
    Data(#[from] tessera_data::DataError),
    /// Training failed.
    #[cfg(feature = "torch")]
    #[error(transparent)]
    Torch(#[from] tessera_torch::TorchError),
    /// A run folder's results did not read or write.
    #[error(transparent)]
    Report(#[from] tessera_report::ReportError),
    /// A plugin component failed or broke its contract.
    #[error(transparent)]
    Component(#[from] tessera_host::plugin::ComponentError),
    /// A plugin library that did not load.
    #[error(transparent)]
    Load(#[from] tessera_host::plugin::LoadError),
    /// A component broke its contract.
    #[error(transparent)]
    Contract(#[from] tessera_host::contract::Violation),
    /// A component's answer refused: its error or a broken contract.
    #[error(transparent)]
    Checked(#[from] tessera_host::plugin::CheckedError),
    /// A value that cannot be quoted for a shell.
    #[error(transparent)]
    Quote(#[from] shlex::QuoteError),
    /// Bytes that should be UTF-8 text are not.
    #[error(transparent)]
    Text(#[from] std::string::FromUtf8Error),
    /// A component the registry does not have.
    #[error(transparent)]
    Unresolved(#[from] tessera_host::plugin::Unresolved),
    /// A path that would leave its run folder.
    #[error(transparent)]
    Escape(#[from] tessera_util::confined::Escape),
    /// A read, a write or a process failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// JSON did not encode or decode.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// TOML did not encode.
    #[error(transparent)]
    TomlWrite(#[from] toml::ser::Error),
    /// TOML did not parse.
    #[error(transparent)]
    TomlRead(#[from] toml::de::Error),
    /// What was being done when `source` happened.
    #[error("{context}")]
    Context {
        /// What was being done.
        context: String,
        /// What went wrong.
        #[source]
        source: Box<EngineError>,
    },
}

impl EngineError {
    /// The message and its causes, joined by ": ", as a variant's error is
    /// recorded in `results.json`.
    pub fn chain(&self) -> String {
        tessera_util::error::chain(self)
    }
}

tessera_util::error_context!(EngineError in crate::error);

impl EngineError {
    /// The step training stopped at, if this error is a stop asked for (its state
    /// saved) rather than a failure.
    pub fn stopped(&self) -> Option<u64> {
        match self {
            #[cfg(feature = "torch")]
            EngineError::Torch(e) => e.stopped().map(|s| s.step),
            EngineError::Context { source, .. } => source.stopped(),
            _ => None,
        }
    }
}
