//! A component's error, with the parameter key at fault where one is, and
//! `bail!`.

use crate::abi::{ErrorKind, PluginError};

/// An error from a component, with the parameter key at fault where one is.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub(super) kind: ErrorKind,
    pub(super) message: String,
    pub(super) key: Option<String>,
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A failure while working.
    pub fn msg(message: impl std::fmt::Display) -> Self {
        Error { kind: ErrorKind::Failed, message: message.to_string(), key: None }
    }

    /// A bad value of parameter `key`.
    pub fn invalid_param(key: &str, message: impl std::fmt::Display) -> Self {
        Error { kind: ErrorKind::InvalidParams, message: message.to_string(), key: Some(key.to_string()) }
    }

    /// A population metric (one that observes a population experiment's
    /// matrices once) finished without them; `needs` says what its
    /// `[population]` should hold, e.g. "every_checkpoint = true".
    pub fn no_population(component: &str, needs: &str) -> Self {
        let needs = if needs.is_empty() { String::new() } else { format!(", with {needs}") };
        Error::msg(format!(
            "{component} received no population: it runs in population experiments (`[experiment] kind = \"population\"`{needs})"
        ))
    }

    /// The run was cancelled.
    pub fn cancelled() -> Self {
        Error { kind: ErrorKind::Cancelled, message: "cancelled".into(), key: None }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The parameter key at fault, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    pub(super) fn into_ffi(self) -> PluginError {
        PluginError { kind: self.kind, message: self.message.into(), key: self.key.unwrap_or_default().into() }
    }

    /// The error a call across the boundary returned, as the author's.
    pub(crate) fn from_ffi(e: PluginError) -> Self {
        let key = (!e.key.is_empty()).then(|| e.key.to_string());
        Error { kind: e.kind, message: e.message.to_string(), key }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(key) => write!(f, "parameter `{key}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::msg(e)
    }
}

impl From<String> for Error {
    fn from(e: String) -> Self {
        Error::msg(e)
    }
}

impl From<&str> for Error {
    fn from(e: &str) -> Self {
        Error::msg(e)
    }
}

/// Returns early with an [`Error`] built from a format string.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::Error::msg(format!($($arg)*))) };
}
