//! A size-bounded cache of blocks read from an object store, on local disk
//! (`data.store_cache`), as MosaicML Streaming keeps remote shards: a second
//! epoch reads what the first fetched from the disk instead of the store.
//!
//! A block is a file named by a hash of its object, byte range and CRC-32;
//! what is read back is checked against the CRC, so a stale or damaged
//! entry is a miss, never wrong data. The least recently used blocks leave
//! first once the cache passes its size. The folder is Tessera's: created
//! with a marker, or refused if it exists without one; everything in it is
//! done through the confined layer, so nothing outside it is read, written
//! or removed. Several processes may share one: each keeps its own count
//! of the bytes there, so the bound holds per process.

use std::path::Path;
use std::sync::Mutex;

use tessera_util::confined::Confined;

use crate::error::{bail, Context, Result};

/// The file that marks a folder as a block cache Tessera made.
pub const CACHE_MARKER: &str = ".tessera-block-cache";

/// What a cache has done.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CacheCounts {
    /// Blocks read from the cache.
    pub hits: u64,
    /// Blocks not there (fetched from the store, then kept).
    pub misses: u64,
    /// Blocks removed to stay under the size.
    pub evictions: u64,
}

struct State {
    /// Block file name → bytes, least recently used first.
    entries: lru::LruCache<String, u64>,
    used: u64,
    counts: CacheCounts,
}

/// Blocks on local disk, at most `capacity` bytes of them.
pub struct BlockCache {
    folder: Confined,
    capacity: u64,
    state: Mutex<State>,
}

impl BlockCache {
    /// The cache in `dir` (created and marked if missing; an existing folder
    /// must carry the marker), holding at most `capacity` bytes; the blocks
    /// already there count, oldest first out.
    pub fn open(dir: &Path, capacity: u64) -> Result<BlockCache> {
        claim(dir)?;
        let folder = Confined::new(dir);
        let mut found = Vec::new();
        for name in folder.names(".").with_context(|| format!("listing the block cache {}", dir.display()))? {
            let Some(name) = name.to_str().filter(|n| n.ends_with(".block")).map(str::to_string) else { continue };
            let meta = folder.path(&name)?.symlink_metadata().ok();
            if let Some(meta) = meta.filter(|m| m.is_file()) {
                found.push((meta.modified().ok(), name, meta.len()));
            }
        }
        found.sort();
        let mut state = State { entries: lru::LruCache::unbounded(), used: 0, counts: CacheCounts::default() };
        for (_, name, bytes) in found {
            state.used += bytes;
            state.entries.put(name, bytes);
        }
        let cache = BlockCache { folder, capacity, state: Mutex::new(state) };
        cache.evict(&mut cache.state.lock().expect("cache state"))?;
        Ok(cache)
    }

    /// The block `key` if the cache holds it with `length` bytes and CRC-32
    /// `crc`; counts a hit or a miss.
    pub fn get(&self, key: &str, length: u64, crc: u32) -> Option<Vec<u8>> {
        let name = file_name(key, crc);
        let mut state = self.state.lock().expect("cache state");
        let bytes = state.entries.get(&name).and_then(|_| self.folder.read(&name).ok());
        match bytes.filter(|b| b.len() as u64 == length && crc32fast::hash(b) == crc) {
            Some(bytes) => {
                state.counts.hits += 1;
                Some(bytes)
            }
            None => {
                state.counts.misses += 1;
                None
            }
        }
    }

    /// Keeps `bytes` as the block `key` (CRC-32 `crc`), evicting the least
    /// recently used blocks past the size. A block larger than the whole
    /// cache is not kept.
    pub fn put(&self, key: &str, crc: u32, bytes: &[u8]) -> Result<()> {
        if bytes.len() as u64 > self.capacity {
            return Ok(());
        }
        let name = file_name(key, crc);
        self.folder
            .write_atomic(&name, bytes)
            .with_context(|| format!("{}: writing {name}", self.folder.root().display()))?;
        let mut state = self.state.lock().expect("cache state");
        if let Some(old) = state.entries.put(name, bytes.len() as u64) {
            state.used -= old;
        }
        state.used += bytes.len() as u64;
        self.evict(&mut state)
    }

    /// Removes least recently used blocks until the cache fits.
    fn evict(&self, state: &mut State) -> Result<()> {
        while state.used > self.capacity {
            let Some((name, bytes)) = state.entries.pop_lru() else { break };
            state.used -= bytes;
            state.counts.evictions += 1;
            match self.folder.remove_file(&name) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // another process took it
                Err(e) => return Err(e).with_context(|| format!("{}: removing {name}", self.folder.root().display())),
            }
        }
        Ok(())
    }

    /// What the cache has done so far.
    pub fn counts(&self) -> CacheCounts {
        self.state.lock().expect("cache state").counts
    }
}

/// Makes `dir` a cache folder (created with the marker), or checks that it
/// is one; an empty existing folder is claimed too.
fn claim(dir: &Path) -> Result<()> {
    let marker = dir.join(CACHE_MARKER);
    if marker.symlink_metadata().is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    let meta = dir.symlink_metadata();
    let empty = || std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
    match meta {
        Err(_) => std::fs::create_dir_all(dir).with_context(|| format!("creating the block cache {}", dir.display()))?,
        Ok(m) if m.is_dir() && empty() => {}
        Ok(_) => bail!(
            "data.store_cache: {} exists and is not a block cache Tessera made (no {CACHE_MARKER}); name a new or empty folder",
            dir.display()
        ),
    }
    let text = format!("a block cache of tessera {}: blocks read from object stores\n", env!("CARGO_PKG_VERSION"));
    Confined::new(dir)
        .write_atomic(CACHE_MARKER, text.as_bytes())
        .with_context(|| format!("marking {}", dir.display()))?;
    Ok(())
}

/// The file of block `key` with CRC-32 `crc`: a 64-bit FNV-1a hash of the
/// key, and the CRC.
fn file_name(key: &str, crc: u32) -> String {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016x}-{crc:08x}.block")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_comes_back_until_it_is_evicted_and_a_damaged_one_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlockCache::open(&dir.path().join("cache"), 25).unwrap();
        let (a, b, c) = (vec![1u8; 10], vec![2u8; 10], vec![3u8; 10]);
        let crc = |x: &[u8]| crc32fast::hash(x);
        assert_eq!(cache.get("s3://b/p/shard-0@0", 10, crc(&a)), None);
        cache.put("s3://b/p/shard-0@0", crc(&a), &a).unwrap();
        cache.put("s3://b/p/shard-0@10", crc(&b), &b).unwrap();
        assert_eq!(cache.get("s3://b/p/shard-0@0", 10, crc(&a)), Some(a.clone()), "a is now the most recent");
        cache.put("s3://b/p/shard-0@20", crc(&c), &c).unwrap();
        assert_eq!(cache.get("s3://b/p/shard-0@10", 10, crc(&b)), None, "b was the least recently used");
        assert_eq!(cache.get("s3://b/p/shard-0@20", 10, crc(&c)), Some(c.clone()));
        assert_eq!(cache.counts(), CacheCounts { hits: 2, misses: 2, evictions: 1 });
        // A damaged file is a miss, and a reopened cache finds what is there.
        let name = file_name("s3://b/p/shard-0@20", crc(&c));
        std::fs::write(dir.path().join("cache").join(name), [9u8; 10]).unwrap();
        let reopened = BlockCache::open(&dir.path().join("cache"), 25).unwrap();
        assert_eq!(reopened.get("s3://b/p/shard-0@20", 10, crc(&c)), None);
        assert_eq!(reopened.get("s3://b/p/shard-0@0", 10, crc(&a)), Some(a));
    }

    #[test]
    fn a_folder_that_is_not_a_cache_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let err = BlockCache::open(dir.path(), 100).err().unwrap().to_string();
        assert!(err.contains("is not a block cache Tessera made"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(), "mine");
    }
}
