//! What a call into a plugin can fail with, naming the component; an id the
//! registry does not resolve.

use abi_stable::std_types::{RErr, ROk, RResult};
use tessera_sdk::{ErrorKind, PluginError};

/// An error from a component call, naming the component (`plugin.component`).
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentError {
    /// `plugin.component`.
    pub component: String,
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
    /// The parameter key at fault, if any.
    pub key: Option<String>,
    /// What to do, where the host knows: the closest known name.
    pub hint: Option<String>,
}

impl ComponentError {
    /// `component` names nothing usable.
    pub(super) fn unresolved(component: &str, unresolved: Unresolved) -> Self {
        ComponentError {
            component: component.to_string(),
            kind: ErrorKind::UnknownComponent,
            message: format!("{}{}", unresolved.message, unresolved.context),
            key: None,
            hint: unresolved.suggestion.map(|s| format!("did you mean `{s}`?")),
        }
    }
}

/// Why a plugin or `plugin.component` names nothing usable.
#[derive(Debug, Clone, PartialEq)]
pub struct Unresolved {
    /// What is wrong.
    pub message: String,
    /// The closest known name, if one is close enough to suggest.
    pub suggestion: Option<String>,
    /// What else the user may need: the plugins loaded, the libraries that
    /// did not load.
    pub context: String,
}

impl Unresolved {
    pub(super) fn new(message: String, suggestion: Option<String>) -> Self {
        Unresolved { message, suggestion, context: String::new() }
    }
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(best) = &self.suggestion {
            write!(f, " (did you mean `{best}`?)")?;
        }
        f.write_str(&self.context)
    }
}

impl std::error::Error for Unresolved {}

impl std::fmt::Display for ComponentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.kind, &self.key) {
            (ErrorKind::InvalidParams, Some(key)) => {
                write!(f, "{}: parameter `{key}`: {}", self.component, self.message)
            }
            (ErrorKind::Panicked, _) => write!(f, "plugin component {} panicked: {}", self.component, self.message),
            _ => {
                write!(f, "{}: {}", self.component, self.message)?;
                self.hint.as_ref().map_or(Ok(()), |hint| write!(f, " ({hint})"))
            }
        }
    }
}

impl std::error::Error for ComponentError {}

pub(super) fn into_result<T>(component: &str, r: RResult<T, PluginError>) -> Result<T, ComponentError> {
    match r {
        ROk(v) => Ok(v),
        RErr(e) => {
            let message = e.message.to_string();
            // The SDK's guard prefixes "<what> panicked: "; keep only the panic text.
            let message = match e.kind {
                ErrorKind::Panicked => message.split_once("panicked: ").map_or(message.clone(), |(_, m)| m.to_string()),
                _ => message,
            };
            Err(ComponentError {
                component: component.to_string(),
                kind: e.kind,
                message,
                key: (!e.key.is_empty()).then(|| e.key.to_string()),
                hint: None,
            })
        }
    }
}
