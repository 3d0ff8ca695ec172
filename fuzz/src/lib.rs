//! What the fuzz targets share: a scratch folder per process, files written
//! into it from the fuzzer's bytes, and the split of one input into parts.

use std::path::{Path, PathBuf};

/// This process's scratch folder (under the temporary folder; made once).
pub fn scratch() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tessera-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        dir
    })
}

/// Writes `bytes` to `name` in the scratch folder; its path.
pub fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("a folder");
    }
    std::fs::write(&path, bytes).expect("a scratch file");
    path
}

/// `data` cut in two where its first two bytes (little endian) say: the
/// first part, then the rest.
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<2>() else { return (data, &[]) };
    let at = (u16::from_le_bytes(*head) as usize).min(rest.len());
    rest.split_at(at)
}

/// The graph cache's key the `csr_cache` target reads for, and its seed is
/// written with: a fixed edge list's path, size and time.
pub fn csr_key() -> tessera_engine::graph::csr_cache::CacheKey {
    tessera_engine::graph::csr_cache::CacheKey {
        path: "/fuzz/edges.txt".into(),
        size: 100,
        modified_ns: 7,
        format: tessera_engine::choice::EdgeListFormat::Snap,
        undirected: false,
    }
}
