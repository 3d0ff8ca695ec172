//! Where a shard set's bytes are: its files in a local folder (opened
//! through the confined layer, never links), or its objects under a prefix
//! of an object store (`s3://bucket/prefix`). Either way a block or a
//! record is one request: a `pread`, or one ranged GET.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tessera_store::{RangeRead, Store, StoreCounts, StoreOptions, StoreUrl};

use crate::error::{invalid, Context, DataError, Result};

/// A shard folder: a local path or an object-store prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A folder on this machine.
    Folder(PathBuf),
    /// A prefix in an object store.
    Store(StoreUrl),
}

impl Location {
    /// `text` as a location: an `s3://` URL as it is, anything else a path
    /// relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Location> {
        match StoreUrl::is_url(text) {
            true => Ok(Location::Store(StoreUrl::parse(text).map_err(|e| invalid!("{e}"))?)),
            false => Ok(Location::Folder(base.join(text))),
        }
    }

    /// The location of `name` (plain segments) inside this one.
    pub fn join(&self, name: &str) -> Result<Location> {
        Ok(match self {
            Location::Folder(dir) => Location::Folder(dir.join(name)),
            Location::Store(url) => Location::Store(url.join(name).map_err(|e| invalid!("{e}"))?),
        })
    }

    /// The folder, for a local location.
    pub fn folder(&self) -> Option<&Path> {
        match self {
            Location::Folder(dir) => Some(dir),
            Location::Store(_) => None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Folder(dir) => write!(f, "{}", dir.display()),
            Location::Store(url) => write!(f, "{url}"),
        }
    }
}

/// A store's error as the data layer's: the URL and the reason.
pub fn store_error(e: tessera_store::StoreError) -> DataError {
    invalid!("{e}")
}

/// A client of `url`'s store, reached as the environment and the AWS
/// files say ([`tessera_store::Credentials`]).
pub fn store_client(url: &StoreUrl, options: StoreOptions) -> Result<Arc<Store>> {
    let credentials = tessera_store::Credentials::from_environment().map_err(store_error)?;
    Ok(Arc::new(Store::connect(url, &credentials, options).map_err(store_error)?))
}

/// One read: shard `shard`, `length` bytes from `offset`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    /// The shard's index in the set.
    pub shard: u32,
    /// The first byte.
    pub offset: u64,
    /// Bytes to read.
    pub length: u64,
}

/// The open shards of a set.
pub enum Backing {
    /// Local files, one per shard, with their paths (for messages).
    Files(Vec<(PathBuf, File)>),
    /// Objects, one per shard, read through one client.
    Store {
        /// The client (its counts are the set's real requests).
        store: Arc<Store>,
        /// Each shard's object.
        shards: Vec<StoreUrl>,
    },
}

/// Reads in flight at once on local disk, for many blocks at a time:
/// random block orders (CorgiPile) need some queue depth to read as fast as
/// a scan.
const READ_THREADS: usize = 8;

impl Backing {
    /// Each shard's size in bytes (a HEAD request per object).
    pub fn sizes(&self) -> Result<Vec<u64>> {
        match self {
            Backing::Files(files) => files.iter().map(|(_, f)| Ok(f.metadata()?.len())).collect(),
            Backing::Store { store, shards } => shards.iter().map(|url| store.size(url).map_err(store_error)).collect(),
        }
    }

    /// The bytes of every span, in order: local reads on up to 8 threads
    /// (each run of spans stays sequential, for the kernel's readahead),
    /// store reads up to the client's `in_flight` at once.
    pub fn read_many(&self, spans: &[Span]) -> Result<Vec<Vec<u8>>> {
        match self {
            Backing::Files(files) => read_files(files, spans),
            Backing::Store { store, shards } => {
                let reads: Vec<RangeRead> = spans
                    .iter()
                    .map(|s| RangeRead { url: shards[s.shard as usize].clone(), range: s.offset..s.offset + s.length })
                    .collect();
                let got = store.get_ranges(&reads).map_err(store_error)?;
                Ok(got.into_iter().map(Vec::from).collect())
            }
        }
    }

    /// Asks the kernel to start reading `spans` now (`WILLNEED`): a hint
    /// for local files; nothing for a store, whose reads are concurrent.
    pub fn advise(&self, spans: &[Span]) {
        use std::os::fd::AsRawFd;
        let Backing::Files(files) = self else { return };
        for span in spans {
            let fd = files[span.shard as usize].1.as_raw_fd();
            // SAFETY: a hint on an open descriptor; no memory is passed.
            unsafe {
                libc::posix_fadvise(fd, span.offset as i64, span.length as i64, libc::POSIX_FADV_WILLNEED);
            }
        }
    }

    /// The store's counts, for a set in a store.
    pub fn store_counts(&self) -> Option<StoreCounts> {
        match self {
            Backing::Files(_) => None,
            Backing::Store { store, .. } => Some(store.counts()),
        }
    }
}

fn read_file((path, file): &(PathBuf, File), span: Span) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; span.length as usize];
    file.read_exact_at(&mut bytes, span.offset)
        .with_context(|| format!("{}: reading at byte offset {}", path.display(), span.offset))?;
    Ok(bytes)
}

/// Local reads: a call of at least 2 × 8 spans is split into 8 contiguous
/// runs read at once; smaller ones are read in turn, where starting threads
/// would cost more than it saves.
fn read_files(files: &[(PathBuf, File)], spans: &[Span]) -> Result<Vec<Vec<u8>>> {
    let one = |span: &Span| read_file(&files[span.shard as usize], *span);
    if spans.len() < 2 * READ_THREADS {
        return spans.iter().map(one).collect();
    }
    let run = spans.len().div_ceil(READ_THREADS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = spans
            .chunks(run)
            .map(|part| scope.spawn(move || part.iter().map(one).collect::<Result<Vec<_>>>()))
            .collect();
        let mut out = Vec::with_capacity(spans.len());
        for handle in handles {
            out.extend(handle.join().map_err(|_| invalid!("a block-reading thread panicked"))??);
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_is_a_url_or_a_path_relative_to_the_manifest() {
        let base = Path::new("/m");
        assert_eq!(Location::parse("data/s", base).unwrap(), Location::Folder("/m/data/s".into()));
        let url = Location::parse("s3://bucket/sets/d", base).unwrap();
        assert_eq!(url.join("train").unwrap().to_string(), "s3://bucket/sets/d/train");
        assert!(url.folder().is_none());
        assert!(bail_text(Location::parse("s3://bucket/a/../b", base)).contains("`..` segment"));
    }

    fn bail_text(r: Result<Location>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn a_short_local_read_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.bin"), [1u8; 10]).unwrap();
        let path = dir.path().join("s.bin");
        let backing = Backing::Files(vec![(path.clone(), File::open(&path).unwrap())]);
        assert_eq!(backing.read_many(&[Span { shard: 0, offset: 2, length: 4 }]).unwrap(), [vec![1u8; 4]]);
        let err =
            tessera_util::error::chain(&backing.read_many(&[Span { shard: 0, offset: 8, length: 4 }]).unwrap_err());
        assert!(err.contains("s.bin: reading at byte offset 8"), "{err}");
    }
}
