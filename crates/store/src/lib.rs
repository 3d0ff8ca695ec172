//! Object storage for Tessera's shard sets (issue 40): a location
//! `s3://bucket/prefix` ([`StoreUrl`]), an S3 or S3-compatible service
//! reached with the usual settings ([`Credentials`]: `AWS_ENDPOINT_URL`,
//! `AWS_REGION`, keys from the environment or `~/.aws/credentials`), and a
//! client ([`Store`]) that reads whole objects and byte ranges — one GET per
//! range, many in flight at once — retries what failed with backoff, and
//! counts every request, byte, retry and second spent waiting.
//!
//! Credentials never appear in an error or a log line: messages name the
//! URL and the reason.

mod client;
mod credentials;
mod error;

pub use client::{RangeRead, Store, StoreCounts, StoreOptions};
pub use credentials::Credentials;
pub use error::{Result, StoreError};
pub use tessera_util::store_url::StoreUrl;
