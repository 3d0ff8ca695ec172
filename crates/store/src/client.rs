//! The client: whole objects and byte ranges of one bucket, each range one
//! GET, up to `in_flight` at once, every failure that may pass retried with
//! backoff, and every request counted.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use crate::credentials::Credentials;
use crate::error::{Result, StoreError};
use tessera_util::store_url::StoreUrl;

/// How the client talks to the store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoreOptions {
    /// Ranged GETs in flight at once.
    pub in_flight: usize,
    /// The most bytes those requests may ask for together: fewer are in
    /// flight when ranges are large (at least one always is).
    pub in_flight_bytes: u64,
    /// Attempts after the first for a request that timed out or failed in
    /// a way that may pass (a refused connection, a 5xx).
    pub retries: u32,
    /// Seconds a request may take before it counts as failed.
    pub timeout_seconds: f64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { in_flight: 16, in_flight_bytes: 256 << 20, retries: 3, timeout_seconds: 30.0 }
    }
}

/// What a client has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoreCounts {
    /// Requests that succeeded, of every kind.
    pub requests: u64,
    /// Of which ranged GETs (block or record reads).
    pub range_requests: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Requests repeated after a failure.
    pub retries: u64,
    /// Objects written.
    pub puts: u64,
    /// Bytes written.
    pub bytes_written: u64,
}

impl std::ops::Add for StoreCounts {
    type Output = StoreCounts;

    fn add(self, o: StoreCounts) -> StoreCounts {
        StoreCounts {
            requests: self.requests + o.requests,
            range_requests: self.range_requests + o.range_requests,
            bytes: self.bytes + o.bytes,
            retries: self.retries + o.retries,
            puts: self.puts + o.puts,
            bytes_written: self.bytes_written + o.bytes_written,
        }
    }
}

impl std::iter::Sum for StoreCounts {
    fn sum<I: Iterator<Item = StoreCounts>>(counts: I) -> StoreCounts {
        counts.fold(StoreCounts::default(), |total, c| total + c)
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    range_requests: AtomicU64,
    bytes: AtomicU64,
    retries: AtomicU64,
    puts: AtomicU64,
    bytes_written: AtomicU64,
}

/// One ranged read: the object and the bytes `range` of it.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeRead {
    /// The object.
    pub url: StoreUrl,
    /// Its bytes to read.
    pub range: Range<u64>,
}

/// A client of one bucket.
pub struct Store {
    client: Arc<dyn ObjectStore>,
    bucket: String,
    options: StoreOptions,
    counters: Counters,
}

/// The runtime every client's requests run on (two worker threads: the
/// work is waiting, not computing).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tessera-store")
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// A failure: final, or one a retry may get past.
enum Failure {
    Final(StoreError),
    Passing(String),
}

impl Store {
    /// A client of `url`'s bucket at the service `credentials` name. Makes
    /// no request.
    pub fn connect(url: &StoreUrl, credentials: &Credentials, options: StoreOptions) -> Result<Store> {
        if options.in_flight == 0 || options.timeout_seconds.is_nan() || options.timeout_seconds <= 0.0 {
            return Err(StoreError::Invalid("the store's in_flight and timeout must be positive".into()));
        }
        let timeout = Duration::from_secs_f64(options.timeout_seconds.min(3600.0));
        let mut client_options =
            ClientOptions::new().with_timeout(timeout).with_connect_timeout(timeout.min(Duration::from_secs(10)));
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(url.bucket())
            .with_region(&credentials.region)
            .with_retry(RetryConfig { max_retries: 0, ..Default::default() });
        if let Some(endpoint) = &credentials.endpoint {
            client_options = client_options.with_allow_http(endpoint.starts_with("http://"));
            builder = builder.with_endpoint(endpoint);
        }
        if let Some((id, secret)) = &credentials.keys {
            builder = builder.with_access_key_id(id).with_secret_access_key(secret);
        }
        if let Some(token) = &credentials.token {
            builder = builder.with_token(token);
        }
        let client = builder
            .with_client_options(client_options)
            .build()
            .map_err(|e| StoreError::Invalid(format!("{url}: cannot reach the store: {}", reason(&e))))?;
        Ok(Store { client: Arc::new(client), bucket: url.bucket().to_string(), options, counters: Counters::default() })
    }

    /// What this client has done so far.
    pub fn counts(&self) -> StoreCounts {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreCounts {
            requests: get(&c.requests),
            range_requests: get(&c.range_requests),
            bytes: get(&c.bytes),
            retries: get(&c.retries),
            puts: get(&c.puts),
            bytes_written: get(&c.bytes_written),
        }
    }

    /// The whole object at `url`.
    pub fn get(&self, url: &StoreUrl) -> Result<Vec<u8>> {
        let key = self.key(url)?;
        let bytes = runtime().block_on(self.attempt(url, || async {
            let result = self.client.get(&key).await?;
            result.bytes().await
        }))?;
        self.counters.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(Vec::from(bytes))
    }

    /// Writes the object at `url` to the file `path` (created, or emptied on
    /// a retry), a piece at a time as it arrives: never whole in memory.
    /// Its size.
    pub fn download(&self, url: &StoreUrl, path: &std::path::Path) -> Result<u64> {
        let key = self.key(url)?;
        let local = |e: std::io::Error| object_store::Error::Generic {
            store: "local disk",
            source: format!("writing {}: {e}", path.display()).into(),
        };
        let written = runtime().block_on(self.attempt(url, || async {
            let mut pieces = self.client.get(&key).await?.into_stream();
            let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(local)?);
            let mut written = 0u64;
            while let Some(piece) = pieces.try_next().await? {
                std::io::Write::write_all(&mut file, &piece).map_err(local)?;
                written += piece.len() as u64;
            }
            std::io::Write::flush(&mut file).map_err(local)?;
            Ok(written)
        }))?;
        self.counters.bytes.fetch_add(written, Ordering::Relaxed);
        Ok(written)
    }

    /// The size of the object at `url` (a HEAD request).
    pub fn size(&self, url: &StoreUrl) -> Result<u64> {
        let key = self.key(url)?;
        Ok(runtime().block_on(self.attempt(url, || self.client.head(&key)))?.size)
    }

    /// Whether an object exists at `url`.
    pub fn exists(&self, url: &StoreUrl) -> Result<bool> {
        match self.size(url) {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The names one level below the prefix `url` (objects and common
    /// prefixes, at most `max`): what is there when `index.json` is not. A
    /// bucket that does not exist is [`StoreError::NotFound`].
    pub fn names(&self, url: &StoreUrl, max: usize) -> Result<Vec<String>> {
        let prefix = self.key(url)?;
        let listed = runtime().block_on(self.attempt(url, || self.client.list_with_delimiter(Some(&prefix))))?;
        let objects = listed.objects.iter().map(|o| o.location.filename().unwrap_or_default().to_string());
        let folders = listed.common_prefixes.iter().map(|p| format!("{}/", p.filename().unwrap_or_default()));
        Ok(objects.chain(folders).take(max).collect())
    }

    /// The bytes of every read, in the order given: one GET each, up to
    /// `in_flight` at once, and no more than `in_flight_bytes` of them
    /// together. A short answer is an error naming the object.
    pub fn get_ranges(&self, reads: &[RangeRead]) -> Result<Vec<Bytes>> {
        let requests = reads.iter().map(|read| self.get_range(read));
        let concurrent = self.concurrency(reads);
        runtime().block_on(futures::stream::iter(requests).buffered(concurrent).try_collect())
    }

    /// Requests in flight at once for `reads`: `in_flight`, fewer if the
    /// largest range times that passes `in_flight_bytes`, at least one.
    fn concurrency(&self, reads: &[RangeRead]) -> usize {
        let largest = reads.iter().map(|r| r.range.end.saturating_sub(r.range.start)).max().unwrap_or(1).max(1);
        let by_bytes = usize::try_from(self.options.in_flight_bytes / largest).unwrap_or(usize::MAX);
        self.options.in_flight.min(by_bytes).max(1)
    }

    async fn get_range(&self, read: &RangeRead) -> Result<Bytes> {
        let key = self.key(&read.url)?;
        let bytes = self.attempt(&read.url, || self.client.get_range(&key, read.range.clone())).await?;
        let wanted = read.range.end.saturating_sub(read.range.start);
        if bytes.len() as u64 != wanted {
            return Err(StoreError::Invalid(format!(
                "{}: bytes {}..{} came back as {} bytes, not {wanted} (truncated?); rewrite the shards",
                read.url,
                read.range.start,
                read.range.end,
                bytes.len()
            )));
        }
        self.counters.range_requests.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }

    /// Writes `bytes` as the object at `url` (one PUT).
    pub fn put(&self, url: &StoreUrl, bytes: Vec<u8>) -> Result<()> {
        let key = self.key(url)?;
        let length = bytes.len() as u64;
        let payload = PutPayload::from(Bytes::from(bytes));
        runtime().block_on(self.attempt(url, || self.client.put(&key, payload.clone())))?;
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_written.fetch_add(length, Ordering::Relaxed);
        Ok(())
    }

    /// Uploads the file `path` as the object at `url`: one PUT, or for a
    /// file over 16 MB a multipart upload of 16 MB parts (read a part at a
    /// time; abandoned on a failure, so no partial object appears).
    pub fn put_file(&self, url: &StoreUrl, path: &std::path::Path) -> Result<()> {
        const PART: u64 = 16 << 20;
        let io = |e: std::io::Error| StoreError::Invalid(format!("{}: {e}", path.display()));
        let length = std::fs::metadata(path).map_err(io)?.len();
        if length <= PART {
            return self.put(url, std::fs::read(path).map_err(io)?);
        }
        let key = self.key(url)?;
        let failed =
            |e: object_store::Error| StoreError::Failed { url: url.to_string(), attempts: 1, reason: reason(&e) };
        runtime().block_on(async {
            let mut upload = self.client.put_multipart(&key).await.map_err(failed)?;
            let mut file = std::fs::File::open(path).map_err(io)?;
            let mut sent = 0;
            while sent < length {
                let mut part = vec![0u8; PART.min(length - sent) as usize];
                std::io::Read::read_exact(&mut file, &mut part).map_err(io)?;
                if let Err(e) = upload.put_part(PutPayload::from(Bytes::from(part))).await {
                    let _ = upload.abort().await;
                    return Err(failed(e));
                }
                sent += PART.min(length - sent);
            }
            upload.complete().await.map_err(failed)?;
            Ok(())
        })?;
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_written.fetch_add(length, Ordering::Relaxed);
        Ok(())
    }

    /// Removes the object at `url` (one this process wrote: a partial
    /// upload it abandons).
    pub fn delete(&self, url: &StoreUrl) -> Result<()> {
        let key = self.key(url)?;
        runtime().block_on(self.attempt(url, || self.client.delete(&key)))
    }

    /// The key of `url`, which must be in this client's bucket.
    fn key(&self, url: &StoreUrl) -> Result<Key> {
        if url.bucket() != self.bucket {
            return Err(StoreError::Invalid(format!("{url}: not in the bucket {} this client reads", self.bucket)));
        }
        Key::parse(url.key()).map_err(|e| StoreError::Invalid(format!("{url}: not an object key: {e}")))
    }

    /// Runs `request` until it succeeds, fails for good, or has failed
    /// `1 + retries` times; waits 100 ms, 200 ms, 400 ms, … between tries.
    async fn attempt<T, F, Fut>(&self, url: &StoreUrl, request: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = object_store::Result<T>>,
    {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let started = Instant::now();
            let outcome = tokio::time::timeout(Duration::from_secs_f64(self.options.timeout_seconds), request()).await;
            let failure = match outcome {
                Ok(Ok(value)) => {
                    self.counters.requests.fetch_add(1, Ordering::Relaxed);
                    return Ok(value);
                }
                Ok(Err(e)) => classify(url, e),
                Err(_) => Failure::Passing(format!("no answer in {:.1} s", started.elapsed().as_secs_f64())),
            };
            match failure {
                Failure::Final(e) => return Err(e),
                Failure::Passing(reason) if attempts > self.options.retries => {
                    return Err(StoreError::Failed { url: url.to_string(), attempts, reason })
                }
                Failure::Passing(reason) => {
                    log::debug!("{url}: attempt {attempts} failed ({reason}); retrying");
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100u64 << (attempts - 1).min(6))).await;
                }
            }
        }
    }
}

/// Which failures are final: a missing object or bucket, refused
/// credentials, a bad key, any other 4xx answer. The rest (no connection, a
/// timeout, a 5xx, 408 or 429) may pass on a retry. Errors the client does
/// not sort itself carry the HTTP status only in their text.
fn classify(url: &StoreUrl, error: object_store::Error) -> Failure {
    use object_store::Error as E;
    let (url, why) = (url.to_string(), reason(&error));
    let status = match &error {
        E::NotFound { .. } => Some(404),
        E::PermissionDenied { .. } => Some(403),
        E::Unauthenticated { .. } => Some(401),
        E::InvalidPath { .. } | E::NotSupported { .. } | E::NotImplemented { .. } => {
            return Failure::Final(StoreError::Invalid(format!("{url}: {why}")))
        }
        _ => http_status(&why),
    };
    match status {
        Some(404) => Failure::Final(StoreError::NotFound { url, reason: why }),
        Some(401 | 403) => Failure::Final(StoreError::Denied { url, reason: why }),
        Some(408 | 429) | None => Failure::Passing(why),
        Some(code) if code >= 500 => Failure::Passing(why),
        Some(_) => Failure::Final(StoreError::Invalid(format!("{url}: {why}"))),
    }
}

/// The HTTP status an error's text names ("status code: 404 Not Found").
fn http_status(text: &str) -> Option<u16> {
    let (_, after) = text.split_once("status code: ")?;
    after.get(..3)?.parse().ok()
}

/// The error's chain on one line, cut to 300 characters (a store's XML
/// answer can be long).
fn reason(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let line = e.to_string();
        if !text.contains(&line) {
            text = format!("{text}: {line}");
        }
        source = e.source();
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_s_status_decides_whether_to_retry() {
        let url = StoreUrl::parse("s3://bucket/set").unwrap();
        let generic = |text: &str| object_store::Error::Generic { store: "S3", source: text.to_string().into() };
        let sorted = |text: &str| match classify(&url, generic(text)) {
            Failure::Final(StoreError::NotFound { .. }) => "not found",
            Failure::Final(StoreError::Denied { .. }) => "denied",
            Failure::Final(_) => "final",
            Failure::Passing(_) => "retry",
        };
        assert_eq!(
            sorted("Server returned non-2xx status code: 404 Not Found: <Code>NoSuchBucket</Code>"),
            "not found"
        );
        assert_eq!(sorted("Server returned non-2xx status code: 403 Forbidden"), "denied");
        assert_eq!(sorted("Server returned non-2xx status code: 400 Bad Request"), "final");
        assert_eq!(sorted("Server returned non-2xx status code: 503 Slow Down"), "retry");
        assert_eq!(sorted("Server returned non-2xx status code: 429 Too Many Requests"), "retry");
        assert_eq!(sorted("error sending request: connection refused"), "retry");
    }

    #[test]
    fn a_long_answer_is_cut_to_one_line() {
        let text = format!("first\nline {}", "x".repeat(400));
        let e = object_store::Error::Generic { store: "S3", source: text.into() };
        let why = reason(&e);
        assert!(!why.contains('\n') && why.ends_with('…') && why.chars().count() == 301, "{why}");
    }

    #[test]
    fn large_ranges_are_fewer_at_once_but_never_none() {
        let url = StoreUrl::parse("s3://bucket/set").unwrap();
        let options = StoreOptions { in_flight: 16, in_flight_bytes: 1 << 20, ..Default::default() };
        let store = Store::connect(&url, &Credentials::default(), options).unwrap();
        let reads = |length: u64| vec![RangeRead { url: url.clone(), range: 0..length }; 3];
        assert_eq!(store.concurrency(&reads(1 << 10)), 16);
        assert_eq!(store.concurrency(&reads(256 << 10)), 4);
        assert_eq!(store.concurrency(&reads(4 << 20)), 1);
    }
}
