//! What a component keeps between calls, for a unit's checkpoint: see
//! [`crate::Component::save_state`].

use serde::{de::DeserializeOwned, Serialize};

use super::{Error, Result};
use crate::types::{SavedState, StateKind};

/// A component's state at a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// It keeps nothing between calls that a new instance would not have
    /// (everything it draws comes from the seed of each call's [`crate::Host`]):
    /// a stopped unit continues with a new instance.
    Stateless,
    /// Its state, as bytes it reads back in [`crate::Component::load_state`].
    Saved(Vec<u8>),
    /// It keeps state it cannot save (the default): a stopped unit that uses
    /// it starts over from step 0, with a warning naming it.
    Unsupported,
}

impl State {
    /// `value` encoded (CBOR: exact floats, NaN included), for
    /// [`State::decode`] to read back.
    pub fn encode<T: Serialize>(value: &T) -> Result<State> {
        let mut bytes = Vec::new();
        ciborium::into_writer(value, &mut bytes).map_err(|e| Error::msg(format!("saving the state: {e}")))?;
        Ok(State::Saved(bytes))
    }

    /// The value [`State::encode`] encoded in `bytes`.
    pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        ciborium::from_reader(bytes).map_err(|e| Error::msg(format!("loading the saved state: {e}")))
    }

    /// As it crosses the boundary.
    pub fn into_ffi(self) -> SavedState {
        match self {
            State::Stateless => SavedState { kind: StateKind::Stateless, bytes: Default::default() },
            State::Saved(bytes) => SavedState { kind: StateKind::Saved, bytes: bytes.into() },
            State::Unsupported => SavedState { kind: StateKind::Unsupported, bytes: Default::default() },
        }
    }
}
