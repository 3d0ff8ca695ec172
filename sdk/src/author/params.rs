//! A component's parameters: parsed from the manifest's TOML, the key at
//! fault named; and its description for `tessera plugins`.

use crate::abi::{ComponentInfo, ComponentKind, ErrorKind};

use super::*;

/// The descriptor of component `C` of kind `kind`.
pub fn component_info<C: Component>(kind: ComponentKind) -> ComponentInfo {
    ComponentInfo { kind, name: C::NAME.into(), summary: C::SUMMARY.into(), params: C::Params::specs().into() }
}

/// Parses parameters from TOML text, naming the key at fault on error.
pub fn parse_params<P: Params>(text: &str) -> Result<P> {
    toml::from_str::<P>(text).map_err(|e| {
        let key = e.span().and_then(|span| key_at(text, span.start));
        let message = e.message().trim().to_string();
        match key {
            Some(key) => Error::invalid_param(&key, message),
            None => Error { kind: ErrorKind::InvalidParams, message, key: None },
        }
    })
}

/// The key of the `key = value` line holding byte `offset` of `text`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let key = line.split('=').next()?.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_string())
}
