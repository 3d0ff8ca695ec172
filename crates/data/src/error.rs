//! The data layer's errors. A source, a shard folder or a graph that Tessera
//! cannot use is [`DataError::Invalid`], its message naming the file (and
//! line or byte), the key and what to do; failures of the system below keep
//! their own type as the source. [`Context`] adds what was being done, as
//! `anyhow` would, so that a binary printing the chain reads
//! `reading x.csv: x.csv:3: not valid CSV`.

/// What went wrong reading, splitting, storing or loading data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The data, a setting or a request that Tessera cannot use; the message
    /// says which file, key or example, and what to do.
    #[error("{0}")]
    Invalid(String),
    /// A read or write failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A JSON file (a shard index, a cache head) did not parse.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A path that would leave its run or shard folder.
    #[error(transparent)]
    Escape(#[from] tessera_util::confined::Escape),
    /// An image that did not decode.
    #[error(transparent)]
    Image(#[from] image::ImageError),
    /// A CSV file that did not parse.
    #[error(transparent)]
    Csv(#[from] csv::Error),
    /// Bytes that should be UTF-8 text are not.
    #[error(transparent)]
    Text(#[from] std::str::Utf8Error),
    /// A number that did not parse.
    #[error(transparent)]
    Float(#[from] std::num::ParseFloatError),
    /// A whole number that did not parse.
    #[error(transparent)]
    Integer(#[from] std::num::ParseIntError),
    /// What the loader was handed failed: a sampler's order stream, say
    /// (the error of the layer above).
    #[error(transparent)]
    Upstream(Box<dyn std::error::Error + Send + Sync>),
    /// What was being done when `source` happened.
    #[error("{context}")]
    Context {
        /// What was being done.
        context: String,
        /// What went wrong.
        #[source]
        source: Box<DataError>,
    },
}

tessera_util::error_context!(DataError in crate::error);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_chains_like_anyhow() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = Err::<(), _>(io).context("reading x.csv").unwrap_err();
        assert_eq!(e.to_string(), "reading x.csv");
        assert_eq!(tessera_util::error::chain(&e), "reading x.csv: No such file or directory");
    }

    #[test]
    fn a_missing_value_is_invalid() {
        let e = None::<u8>.context("data.path is not set").unwrap_err();
        assert!(matches!(e, DataError::Invalid(m) if m == "data.path is not set"));
    }
}
