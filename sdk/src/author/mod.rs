//! What a plugin author implements: plain Rust traits with std types. The
//! adapters here turn them into the `#[sabi_trait]` objects of [`crate::ffi`],
//! running every call under `catch_unwind` so that a panic becomes an error
//! naming the component instead of an abort of the host.

mod adapters;
mod error;
mod params;
mod services;
mod state;
mod traits;

pub use adapters::*;
pub use error::*;
pub use params::*;
pub use services::*;
pub use state::*;
pub use traits::*;
