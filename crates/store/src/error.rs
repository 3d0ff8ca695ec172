//! The store's errors: each names the URL and the reason, never a secret.

/// What went wrong reaching an object store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A location or setting Tessera cannot use; the message says which and
    /// what to do.
    #[error("{0}")]
    Invalid(String),
    /// The object (or its bucket) does not exist.
    #[error("{url}: not found ({reason})")]
    NotFound {
        /// The object's URL.
        url: String,
        /// What the store answered.
        reason: String,
    },
    /// The credentials were refused.
    #[error("{url}: access denied ({reason}); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile in ~/.aws/credentials")]
    Denied {
        /// The object's URL.
        url: String,
        /// What the store answered.
        reason: String,
    },
    /// A request failed every attempt (the endpoint did not answer, or
    /// answered with an error).
    #[error("{url}: failed after {attempts} attempts: {reason}")]
    Failed {
        /// The object's URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        reason: String,
    },
}

impl From<tessera_util::store_url::BadUrl> for StoreError {
    fn from(e: tessera_util::store_url::BadUrl) -> Self {
        StoreError::Invalid(e.0)
    }
}

/// This crate's result.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
