//! A read-only memory map of a whole file: `.npy` features streamed by the
//! data loaders and parsed graphs kept in the cache folder are read through
//! one, so that processes reading the same file share its pages.

use std::fs::File;
use std::path::Path;

use memmap2::{Mmap, UncheckedAdvice};

use crate::error::{bail, Context, Result};

/// A read-only, shared memory map of a whole file (`memmap2`), unmapped on drop.
///
/// Map only files that are not modified in place while mapped (Tessera's
/// own cache files are replaced by a rename, never rewritten).
pub struct FileMap {
    map: Mmap,
}

impl FileMap {
    /// Maps the whole of `path` (not empty).
    pub fn open(path: &Path) -> Result<FileMap> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        if file.metadata()?.len() == 0 {
            bail!("{}: the file is empty", path.display());
        }
        // SAFETY: the map is read-only, and the files mapped are not changed
        // in place while mapped (see the type's documentation).
        let map = unsafe { Mmap::map(&file) }
            .map_err(|e| crate::error::invalid!("{}: cannot map the file: {e}", path.display()))?;
        Ok(FileMap { map })
    }

    /// The file's length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the file is empty (never: `open` refuses empty files).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes `start..start + len` of the file.
    pub fn bytes(&self, start: usize, len: usize) -> &[u8] {
        let end = start.checked_add(len).filter(|&end| end <= self.map.len());
        &self.map[start..end.expect("a range inside the map")]
    }

    /// Hands the pages read so far back to the page cache
    /// (`MADV_DONTNEED`): they stay cached, no longer in this process.
    pub fn release(&self) {
        self.release_range(0, self.map.len());
    }

    /// [`FileMap::release`] for the whole pages within `start..start + len`
    /// (for a stretch copied out, so that it is not held twice).
    pub fn release_range(&self, start: usize, len: usize) {
        let page = page_size();
        let (first, end) = (start.div_ceil(page) * page, (start + len).min(self.map.len()));
        if end > first {
            // SAFETY: `DontNeed` on a shared, read-only file mapping drops
            // nothing but this process's page-table entries: the pages
            // refault from the page cache with the same bytes. Errors only
            // mean the hint is ignored.
            let _ = unsafe { self.map.unchecked_advise_range(UncheckedAdvice::DontNeed, first, end - first) };
        }
    }
}

/// The system's page size.
fn page_size() -> usize {
    // SAFETY: sysconf only reads a constant of the system.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(1) as usize
}

impl std::fmt::Debug for FileMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileMap({} bytes)", self.map.len())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_reads_the_file_and_refuses_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let (file, empty) = (dir.path().join("bytes"), dir.path().join("empty"));
        std::fs::write(&file, b"0123456789").unwrap();
        std::fs::write(&empty, b"").unwrap();
        let map = FileMap::open(&file).unwrap();
        assert_eq!((map.len(), map.bytes(3, 4)), (10, &b"3456"[..]));
        map.release();
        assert_eq!(map.bytes(0, 2), b"01", "released pages read again");
        assert!(FileMap::open(&empty).unwrap_err().to_string().contains("empty"));
    }
}
