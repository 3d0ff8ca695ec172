//! Data files in an object store: `data.path`, `data.labels_path` or an
//! entry of `data.files` given as `s3://bucket/key` (and, for `webdataset`,
//! `data.path` as a prefix holding `.tar` objects). Each file is fetched
//! whole, streamed to a temporary folder on local disk (under `TMPDIR`),
//! and read from there as a local file is; the folder goes when the source
//! does. Messages name the URL, never the local copy.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tessera_store::{Store, StoreUrl};

use super::examples::{Described, ExampleSource};
use super::stored::store_options;
use crate::choice::DataSource;
use crate::error::{invalid, Context, DataError, Result};
use crate::manifest::DataConfig;
use crate::storage::{store_client, store_error};

/// A source read from fetched copies of files in a store.
pub struct FetchedSource {
    inner: Box<dyn ExampleSource>,
    copies: Copies,
    /// The first file's URL, for messages.
    name: String,
}

/// The temporary folder of fetched files, which URL each copy is, and the
/// client of each bucket they came from (one for all its files).
pub struct Copies {
    dir: tempfile::TempDir,
    urls: Vec<(PathBuf, StoreUrl)>,
    clients: BTreeMap<String, Arc<Store>>,
}

impl Copies {
    /// The client of `url`'s bucket, made on its first file.
    fn client(&mut self, url: &StoreUrl, config: &DataConfig) -> Result<Arc<Store>> {
        if let Some(store) = self.clients.get(url.bucket()) {
            return Ok(store.clone());
        }
        let store = store_client(url, store_options(config))?;
        self.clients.insert(url.bucket().to_string(), store.clone());
        Ok(store)
    }

    /// `error`, its local paths named by their URLs.
    pub fn in_store_terms(&self, error: DataError) -> DataError {
        let mut text = error.to_string();
        for (local, url) in &self.urls {
            text = text.replace(&local.display().to_string(), &url.to_string());
        }
        invalid!("{text}")
    }
}

impl FetchedSource {
    /// `inner`, read from `copies` (kept while it lives).
    pub fn new(inner: Box<dyn ExampleSource>, copies: Copies) -> FetchedSource {
        let name = copies.urls.first().map_or_else(|| inner.name().to_string(), |(_, url)| url.to_string());
        FetchedSource { inner, copies, name }
    }
}

impl ExampleSource for FetchedSource {
    fn described(&self) -> &Described {
        self.inner.described()
    }
    fn read(&self, i: usize, out: &mut Vec<f32>) -> Result<()> {
        self.inner.read(i, out).map_err(|e| self.copies.in_store_terms(e))
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// Whether `config` names a data file in an object store.
pub fn names_a_store(config: &DataConfig) -> bool {
    let url = |v: &Option<String>| v.as_deref().is_some_and(StoreUrl::is_url);
    config.source != DataSource::Shards
        && (url(&config.path) || url(&config.labels_path) || config.files.iter().any(|f| StoreUrl::is_url(f)))
}

/// `config` with each file in a store fetched, and named by its local copy
/// (absolute paths); the copies.
pub fn fetch_files(config: &DataConfig) -> Result<(DataConfig, Copies)> {
    let dir =
        tempfile::Builder::new().prefix("tessera-fetched-").tempdir().context("a folder for fetched data files")?;
    let mut copies = Copies { dir, urls: Vec::new(), clients: BTreeMap::new() };
    let mut local = config.clone();
    if config.source == DataSource::Webdataset {
        if let Some(prefix) = config.path.as_deref().filter(|p| StoreUrl::is_url(p) && !p.ends_with(".tar")) {
            local.files = tar_objects(config, prefix, &mut copies)?;
            local.path = None;
        }
    }
    local.path = fetch_one(config, "data.path", local.path.as_deref(), &mut copies)?;
    local.labels_path = fetch_one(config, "data.labels_path", local.labels_path.as_deref(), &mut copies)?;
    let files = std::mem::take(&mut local.files);
    for (i, file) in files.iter().enumerate() {
        local.files.push(fetch_one(config, &format!("data.files[{i}]"), Some(file), &mut copies)?.expect("given"));
    }
    Ok((local, copies))
}

/// The `.tar` objects one level under `prefix`, in name order, as URLs.
fn tar_objects(config: &DataConfig, prefix: &str, copies: &mut Copies) -> Result<Vec<String>> {
    let url = parse("data.path", prefix)?;
    let names = copies.client(&url, config)?.names(&url, 1_000_000).map_err(store_error)?;
    let mut tars: Vec<String> =
        names.into_iter().filter(|n| n.ends_with(".tar")).map(|n| format!("{url}/{n}")).collect();
    tars.sort();
    if tars.is_empty() {
        return Err(invalid!("data.path: {url} holds no .tar objects"));
    }
    Ok(tars)
}

/// `value` as it is when local; fetched (and its copy's path) when a URL.
fn fetch_one(config: &DataConfig, key: &str, value: Option<&str>, copies: &mut Copies) -> Result<Option<String>> {
    let Some(text) = value.filter(|v| StoreUrl::is_url(v)) else { return Ok(value.map(str::to_string)) };
    let url = parse(key, text)?;
    let name = url.key().rsplit('/').next().unwrap_or("object");
    let copy = copies.dir.path().join(format!("{}-{name}", copies.urls.len()));
    let store = copies.client(&url, config)?;
    let bytes = store.download(&url, &copy).map_err(|e| invalid!("{key}: {}", store_error(e)))?;
    log::info!("{key}: fetched {url} ({:.1} MB)", bytes as f64 / 1e6);
    copies.urls.push((copy.clone(), url));
    Ok(Some(copy.display().to_string()))
}

fn parse(key: &str, text: &str) -> Result<StoreUrl> {
    StoreUrl::parse(text).map_err(|e| invalid!("{key}: {e}"))
}
