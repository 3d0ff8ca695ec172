//! `s3://bucket/prefix`: where a shard set lives in an object store, parsed
//! here (no client) so that `tessera check` refuses a bad one before a run.

use std::fmt;

/// A location that is not an `s3://bucket/prefix` Tessera can use; the
/// message names the URL and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BadUrl(pub String);

type Result<T> = std::result::Result<T, BadUrl>;

/// A bucket and a key prefix (no leading or trailing `/`; empty for the
/// bucket's top level).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreUrl {
    bucket: String,
    prefix: String,
}

impl StoreUrl {
    /// Whether `text` names an object store rather than a local path.
    pub fn is_url(text: &str) -> bool {
        text.contains("://")
    }

    /// Parses `s3://bucket/prefix`. Refuses other schemes, bucket names S3
    /// would refuse, and prefixes with empty, `.` or `..` segments (a key is
    /// never a path that climbs).
    pub fn parse(text: &str) -> Result<StoreUrl> {
        let Some(rest) = text.strip_prefix("s3://") else {
            let scheme = text.split("://").next().unwrap_or_default();
            return Err(invalid(text, &format!("the scheme `{scheme}://` is not supported; use s3://bucket/prefix")));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(text, bucket)?;
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            for segment in prefix.split('/') {
                check_segment(text, segment)?;
            }
        }
        Ok(StoreUrl { bucket: bucket.to_string(), prefix: prefix.to_string() })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The location of `name` under this prefix (`name` is one or more
    /// plain segments).
    pub fn join(&self, name: &str) -> Result<StoreUrl> {
        for segment in name.split('/') {
            check_segment(&format!("{self}/{name}"), segment)?;
        }
        let prefix = if self.prefix.is_empty() { name.to_string() } else { format!("{}/{name}", self.prefix) };
        Ok(StoreUrl { bucket: self.bucket.clone(), prefix })
    }

    /// The object key this location names.
    pub fn key(&self) -> &str {
        &self.prefix
    }

    /// Whether `other` is this prefix or lies under it (whole segments:
    /// `s3://b/data` holds `s3://b/data/train`, not `s3://b/database`).
    pub fn holds(&self, other: &StoreUrl) -> bool {
        let under = match self.prefix.is_empty() {
            true => true,
            false => other.prefix == self.prefix || other.prefix.starts_with(&format!("{}/", self.prefix)),
        };
        self.bucket == other.bucket && under
    }

    /// Whether one of the two prefixes holds the other: what is written
    /// under one could be read under the other.
    pub fn overlaps(&self, other: &StoreUrl) -> bool {
        self.holds(other) || other.holds(self)
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix.is_empty() {
            true => write!(f, "s3://{}", self.bucket),
            false => write!(f, "s3://{}/{}", self.bucket, self.prefix),
        }
    }
}

fn invalid(url: &str, why: &str) -> BadUrl {
    BadUrl(format!("{url}: {why}"))
}

/// S3's rules for bucket names: 3 to 63 lowercase letters, digits, `-` and
/// `.`, starting and ending with a letter or digit.
fn check_bucket(url: &str, bucket: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&bucket.len()) || !bucket.chars().all(allowed) {
        return Err(invalid(url, &format!("`{bucket}` is not a bucket name (3 to 63 of a-z, 0-9, `-`, `.`)")));
    }
    if !ends(bucket.chars().next()) || !ends(bucket.chars().last()) || bucket.contains("..") {
        return Err(invalid(url, &format!("`{bucket}` is not a bucket name (it must start and end with a-z or 0-9)")));
    }
    Ok(())
}

/// A key segment: not empty, not `.` or `..`, no control characters or `\`.
fn check_segment(url: &str, segment: &str) -> Result<()> {
    if segment.is_empty() || segment == "." || segment == ".." {
        return Err(invalid(url, "a key with an empty, `.` or `..` segment; name the prefix plainly"));
    }
    if segment.chars().any(|c| c.is_control() || c == '\\') {
        return Err(invalid(url, "a key with a control character or `\\`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_prefix_and_joins_names() {
        let url = StoreUrl::parse("s3://my-data/sets/digits/").unwrap();
        assert_eq!((url.bucket(), url.prefix()), ("my-data", "sets/digits"));
        assert_eq!(url.to_string(), "s3://my-data/sets/digits");
        assert_eq!(url.join("train/index.json").unwrap().key(), "sets/digits/train/index.json");
        let top = StoreUrl::parse("s3://bucket").unwrap();
        let joined = top.join("index.json").unwrap();
        assert_eq!((top.to_string(), joined.key()), ("s3://bucket".to_string(), "index.json"));
    }

    #[test]
    fn a_prefix_holds_whole_segments_below_it_in_its_bucket() {
        let url = |t: &str| StoreUrl::parse(t).unwrap();
        assert!(url("s3://b-1/data").holds(&url("s3://b-1/data/train")));
        assert!(url("s3://b-1/data").holds(&url("s3://b-1/data")));
        assert!(url("s3://b-1").holds(&url("s3://b-1/any/thing")));
        assert!(!url("s3://b-1/data").holds(&url("s3://b-1/database")));
        assert!(!url("s3://b-1/data").holds(&url("s3://b-2/data/train")));
        assert!(url("s3://b-1/data/train").overlaps(&url("s3://b-1/data")));
        assert!(!url("s3://b-1/data/train").overlaps(&url("s3://b-1/data/test")));
    }

    #[test]
    fn refuses_other_schemes_bad_buckets_and_climbing_keys() {
        for (text, says) in [
            ("gs://bucket/x", "scheme `gs://` is not supported"),
            ("s3://Bucket/x", "not a bucket name"),
            ("s3://ab/x", "not a bucket name"),
            ("s3://-bucket/x", "must start and end"),
            ("s3://bucket/a/../b", "`..` segment"),
            ("s3://bucket/a//b", "empty"),
            ("s3://bucket/a\nb", "control character"),
        ] {
            let err = StoreUrl::parse(text).unwrap_err().to_string();
            assert!(err.starts_with(text) && err.contains(says), "{text}: {err}");
        }
        let url = StoreUrl::parse("s3://bucket/p").unwrap();
        assert!(url.join("../q").is_err() && url.join("").is_err());
        assert!(StoreUrl::is_url("s3://b/p") && !StoreUrl::is_url("data/shards"));
    }
}
