//! The training layer's errors. A model, a setting or a run folder that
//! cannot be trained as asked is [`TorchError::Invalid`], its message naming
//! the key and what to do; what the layers below or libtorch report keeps
//! its own type as the source, and [`Context`] adds what was being done.

/// What went wrong building, training or evaluating a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TorchError {
    /// A model, a setting or a run folder that cannot be used as asked; the
    /// message says which and what to do.
    #[error("{0}")]
    Invalid(String),
    /// Training diverged (a loss that is not finite).
    #[error(transparent)]
    Diverged(#[from] crate::train::Diverged),
    /// The fit stopped, its state saved, as asked.
    #[error(transparent)]
    Stopped(#[from] crate::train::Stopped),
    /// libtorch failed.
    #[error(transparent)]
    Tch(#[from] tch::TchError),
    /// The data layer failed.
    #[error(transparent)]
    Data(#[from] tessera_data::DataError),
    /// A plugin component failed or broke its contract.
    #[error(transparent)]
    Component(#[from] tessera_host::plugin::ComponentError),
    /// A sampler broke its contract.
    #[error(transparent)]
    Contract(#[from] tessera_host::contract::Violation),
    /// A component's answer refused: its error or a broken contract.
    #[error(transparent)]
    Checked(#[from] tessera_host::plugin::CheckedError),
    /// A population that cannot be planned.
    #[error(transparent)]
    Plan(#[from] tessera_config::population::PlanError),
    /// A run folder's results did not read or write.
    #[error(transparent)]
    Report(#[from] tessera_report::ReportError),
    /// A manifest (a run folder's) did not parse.
    #[error(transparent)]
    Manifest(#[from] tessera_config::manifest::Diagnostic),
    /// A read or write failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// JSON did not encode or decode.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A path that would leave its run folder.
    #[error(transparent)]
    Escape(#[from] tessera_util::confined::Escape),
    /// What was being done when `source` happened.
    #[error("{context}")]
    Context {
        /// What was being done.
        context: String,
        /// What went wrong.
        #[source]
        source: Box<TorchError>,
    },
}

tessera_util::error_context!(TorchError in crate::error);

impl TorchError {
    /// Where the fit stopped, if this error is a stop asked for (not a failure).
    pub fn stopped(&self) -> Option<crate::train::Stopped> {
        match self {
            TorchError::Stopped(stopped) => Some(*stopped),
            TorchError::Context { source, .. } => source.stopped(),
            _ => None,
        }
    }
}
