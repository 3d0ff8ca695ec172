//! Shard folders Tessera writes under an object-store prefix: `tessera
//! shard --out s3://…`, and a run's own shards with `storage.dir =
//! "s3://…"` (the stored training split, Corgi²'s rewritten copy).
//!
//! The prefix is claimed only while it holds no objects, so nothing Tessera
//! writes can land over a user's data (a source prefix included). Each
//! folder is written locally first, then uploaded: its shards, then its
//! `index.json` last, so that no reader finds an index whose shards are
//! missing. Every object written is remembered, and removal deletes those
//! objects and no other; an output dropped before it is kept (a failed
//! upload or run) removes them too.

use std::path::Path;
use std::sync::Arc;

use tessera_store::{Store, StoreCounts, StoreOptions, StoreUrl};

use super::backing::{store_client, store_error, Location};
use crate::confined::Confined;
use crate::error::{bail, invalid, Result};

/// A prefix this process claimed empty, and the objects it wrote there.
pub struct StoreOutput {
    store: Arc<Store>,
    url: StoreUrl,
    written: Vec<StoreUrl>,
}

impl StoreOutput {
    /// Claims `url`, which must hold no objects (its bucket must exist).
    pub fn claim(url: &StoreUrl, options: StoreOptions) -> Result<StoreOutput> {
        let store = store_client(url, options)?;
        match store.names(url, 1) {
            Ok(names) if names.is_empty() => {}
            Ok(_) => bail!(
                "{url} already holds objects; Tessera writes shards only under a new or empty prefix, never over objects it did not write"
            ),
            Err(tessera_store::StoreError::NotFound { .. }) => {
                bail!("{url}: the bucket `{}` does not exist at this endpoint", url.bucket())
            }
            Err(e) => return Err(store_error(e)),
        }
        Ok(StoreOutput { store, url: url.clone(), written: Vec::new() })
    }

    /// Uploads the shard folder `folder` (written by a [`super::ShardWriter`])
    /// as `name` under the prefix: its `.bin` shards in name order, then its
    /// `index.json`. Its location in the store.
    pub fn upload(&mut self, folder: &Path, name: &str) -> Result<Location> {
        let target = self.url.join(name).map_err(|e| invalid!("{e}"))?;
        let local = Confined::new(folder);
        let mut names: Vec<String> = local.names(".")?.into_iter().filter_map(|n| n.into_string().ok()).collect();
        names.retain(|n| n.ends_with(".bin"));
        names.sort();
        names.push("index.json".into());
        for file in names {
            let object = target.join(&file).map_err(|e| invalid!("{e}"))?;
            self.store.put_file(&object, &local.path(&file)?).map_err(store_error)?;
            self.written.push(object);
        }
        Ok(Location::Store(target))
    }

    /// What the client did: the objects written and their bytes.
    pub fn counts(&self) -> StoreCounts {
        self.store.counts()
    }

    /// Deletes every object this output wrote, and only those.
    pub fn remove(mut self) -> Result<()> {
        for object in std::mem::take(&mut self.written) {
            self.store.delete(&object).map_err(store_error)?;
        }
        Ok(())
    }

    /// Leaves what was written in the store (for good).
    pub fn keep(mut self) {
        self.written.clear();
    }
}

/// An output dropped neither kept nor removed (its run or upload failed)
/// takes back what it wrote, so that the prefix is empty for the next try.
impl Drop for StoreOutput {
    fn drop(&mut self) {
        for object in &self.written {
            if let Err(e) = self.store.delete(object) {
                log::warn!("{e}: left in the store");
            }
        }
    }
}
