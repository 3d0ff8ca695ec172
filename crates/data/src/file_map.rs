//! A read-only memory map of a whole file: `.npy` features streamed by the
//! data loaders and parsed graphs kept in the cache folder are read through
//! one, so that processes reading the same file share its pages.

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// A read-only, shared memory map of a whole file, unmapped on drop.
///
/// Map only files that are not modified in place while mapped (Tessera's
/// own cache files are replaced by a rename, never rewritten).
pub struct FileMap {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the map is read-only and never remapped while shared; reads are
// plain loads from memory the kernel keeps valid until `munmap` in `drop`.
unsafe impl Send for FileMap {}
// SAFETY: as above: nothing in it is ever written.
unsafe impl Sync for FileMap {}

impl FileMap {
    /// Maps the whole of `path` (not empty).
    pub fn open(path: &Path) -> Result<FileMap> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file.metadata()?.len() as usize;
        if len == 0 {
            bail!("{}: the file is empty", path.display());
        }
        use std::os::fd::AsRawFd;
        // SAFETY: maps `len` bytes of an open file read-only; checked below.
        let ptr =
            unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0) };
        if ptr == libc::MAP_FAILED {
            bail!("{}: cannot map the file: {}", path.display(), std::io::Error::last_os_error());
        }
        Ok(FileMap { ptr, len })
    }

    /// The file's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the file is empty (never: `open` refuses empty files).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes `start..start + len` of the file.
    pub fn bytes(&self, start: usize, len: usize) -> &[u8] {
        assert!(start.checked_add(len).is_some_and(|end| end <= self.len), "a range inside the map");
        // SAFETY: in bounds (asserted); the mapping lives as long as `self`.
        unsafe { std::slice::from_raw_parts((self.ptr as *const u8).add(start), len) }
    }

    /// Hands the pages read so far back to the page cache
    /// (`MADV_DONTNEED`): they stay cached, no longer in this process.
    pub fn release(&self) {
        self.release_range(0, self.len);
    }

    /// [`FileMap::release`] for the whole pages within `start..start + len`
    /// (for a stretch copied out, so that it is not held twice).
    pub fn release_range(&self, start: usize, len: usize) {
        // SAFETY: sysconf only reads a constant of the system.
        let page = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(1) as usize;
        let (first, end) = (start.div_ceil(page) * page, (start + len).min(self.len));
        if end > first {
            // SAFETY: a hint on whole pages of our own read-only mapping; they
            // refault from the page cache if read again. Errors only mean the
            // hint is ignored.
            unsafe { libc::madvise((self.ptr as *mut u8).add(first).cast(), end - first, libc::MADV_DONTNEED) };
        }
    }
}

impl std::fmt::Debug for FileMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileMap({} bytes)", self.len)
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `open` mapped.
        unsafe { libc::munmap(self.ptr, self.len) };
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
