//! A component's state between calls, saved with a unit's checkpoint so
//! that a stopped run continues where it stopped (SDK 0.4).

use abi_stable::{std_types::RVec, StableAbi};

/// What a component says about its state, as it crosses the boundary.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// It keeps nothing between calls: a new instance continues as well.
    Stateless,
    /// Its state is the bytes beside it.
    Saved,
    /// It keeps state but cannot save it (the default): a stopped unit
    /// that uses it starts over from step 0.
    Unsupported,
}

/// A component's saved state across the boundary: its kind and, when
/// [`StateKind::Saved`], the bytes [`crate::Component::load_state`] reads back.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct SavedState {
    /// What the component says.
    pub kind: StateKind,
    /// The state, when saved.
    pub bytes: RVec<u8>,
}
