//! A parsed edge list kept as a binary CSR file in Tessera's cache folder
//! (`$TESSERA_CACHE_DIR`, else `$XDG_CACHE_HOME/tessera`, else
//! `~/.cache/tessera`, then `graphs/`): later runs read it instead of
//! parsing the text again. The file is named by the edge list's path and
//! reading options, and is used only while the edge list keeps the size and
//! modification time it had when parsed. Tessera writes only there, under
//! names it made, through a temporary file and a rename.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Context, Result};

use super::column::{Column, Plain};
use super::{DroppedEdges, EdgeListFormat, Graph};
use crate::file_map::FileMap;

/// First bytes of a cache file (and its layout's version).
const MAGIC: &[u8; 8] = b"TSRCSR01";

/// Which parse of which file a cache file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    /// The edge list, canonical.
    pub path: PathBuf,
    /// Its size in bytes when parsed.
    pub size: u64,
    /// Its modification time when parsed, in nanoseconds since the epoch.
    pub modified_ns: u64,
    /// How it was read.
    pub format: EdgeListFormat,
    /// Whether both directions of each line were added.
    pub undirected: bool,
}

impl CacheKey {
    /// The key of `path` as it is now.
    pub fn of(path: &Path, format: EdgeListFormat, undirected: bool) -> Result<CacheKey> {
        let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        Ok(CacheKey {
            path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            size: meta.len(),
            modified_ns: modified.map_or(0, |d| d.as_nanos() as u64),
            format,
            undirected,
        })
    }

    /// The cache file's name: the edge list's stem and a hash of its path and options.
    fn file_name(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let text = format!("{}|{}|{}", self.path.display(), self.format.as_str(), self.undirected);
        for b in text.bytes() {
            hash = (hash ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        let stem = self.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let stem: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        format!("{stem}-{hash:016x}.csr")
    }
}

/// The cache folder for parsed graphs.
pub fn cache_dir() -> Option<PathBuf> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let base = env("TESSERA_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("tessera")))
        .or_else(|| env("HOME").map(|h| h.join(".cache/tessera")))?;
    Some(base.join("graphs"))
}

/// The cache file for `key` under `dir`.
pub fn cache_path(dir: &Path, key: &CacheKey) -> PathBuf {
    dir.join(key.file_name())
}

/// The graph cached at `file` for `key`, or `None` where there is none or it
/// belongs to another state of the edge list (or is damaged: then it says so).
/// Its offsets and targets are read in place from the memory-mapped file.
pub fn load(file: &Path, key: &CacheKey) -> Option<Graph> {
    let map = Arc::new(FileMap::open(file).ok()?);
    match read_graph(&map, key) {
        Ok(graph) => graph,
        Err(e) => {
            log::warn!("ignoring the damaged graph cache {}: {}", file.display(), tessera_util::error::chain(&e));
            None
        }
    }
}

/// Writes `graph` to `file` for `key` (a temporary file, then a rename).
pub fn store(file: &Path, key: &CacheKey, graph: &Graph) -> Result<()> {
    let dir = file.parent().context("the cache file has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let temporary = file.with_extension(format!("csr.{}.tmp", std::process::id()));
    let written = write_graph(&temporary, key, graph);
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary); // ours: made just now
        return written;
    }
    std::fs::rename(&temporary, file).with_context(|| format!("renaming {} to {}", temporary.display(), file.display()))
}

fn write_graph(path: &Path, key: &CacheKey, graph: &Graph) -> Result<()> {
    let file = std::fs::File::create_new(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let weighted = graph.probabilities.iter().any(|&p| p != 0.0);
    out.write_all(MAGIC)?;
    let head = [key.size, key.modified_ns, graph.nodes() as u64, graph.edges(), weighted as u64];
    let dropped = [graph.dropped.self_loops, graph.dropped.duplicates];
    for x in head.iter().chain(&dropped).chain(&graph.offsets) {
        out.write_all(&x.to_le_bytes())?;
    }
    for t in &graph.targets {
        out.write_all(&t.to_le_bytes())?;
    }
    if weighted {
        for p in &graph.probabilities {
            out.write_all(&p.to_le_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Bytes before the offsets: the magic and seven u64 (see [`write_graph`]).
const HEAD_BYTES: usize = 8 + 7 * 8;

/// The graph in `map` if it was made for `key`; `Ok(None)` if for another state.
fn read_graph(map: &Arc<FileMap>, key: &CacheKey) -> Result<Option<Graph>> {
    crate::error::ensure!(
        map.len() >= HEAD_BYTES && map.bytes(0, 8) == MAGIC,
        "not a Tessera CSR file of this version"
    );
    let head: Vec<u64> = decode(map.bytes(8, 7 * 8), u64::from_le_bytes);
    let [size, modified_ns, nodes, edges, weighted, self_loops, duplicates] = head[..] else { unreachable!() };
    if size != key.size || modified_ns != key.modified_ns {
        return Ok(None);
    }
    // In u128, so that a damaged head cannot overflow: past this check every
    // size below fits in the file's length.
    let columns = if weighted != 0 { 2 } else { 1 };
    let expected = HEAD_BYTES as u128 + (nodes as u128 + 1) * 8 + edges as u128 * 4 * columns;
    crate::error::ensure!(map.len() as u128 == expected, "{} bytes where its head says {expected}", map.len());
    let (n, m) = (nodes as usize, edges as usize);
    let targets_at = HEAD_BYTES + (n + 1) * 8;
    let offsets = column::<u64, 8>(map, HEAD_BYTES, n + 1, u64::from_le_bytes);
    let targets = column::<u32, 4>(map, targets_at, m, u32::from_le_bytes);
    crate::error::ensure!(
        offsets.first() == Some(&0) && offsets.last() == Some(&edges),
        "offsets do not span the edges"
    );
    crate::error::ensure!(offsets.windows(2).all(|w| w[0] <= w[1]), "offsets decrease");
    crate::error::ensure!(targets.iter().all(|&t| (t as u64) < nodes), "a target outside the nodes");
    let mut graph = Graph::from_csr(offsets, targets);
    if weighted != 0 {
        graph.probabilities = decode(map.bytes(targets_at + m * 4, m * 4), f32::from_le_bytes);
        map.release_range(targets_at + m * 4, m * 4); // copied: not held twice
    }
    graph.dropped = DroppedEdges { self_loops, duplicates };
    Ok(Some(graph))
}

/// `len` values from byte `start` of `map`: read in place where the layout
/// allows (see [`Column::mapped`]), else decoded into memory.
fn column<T: Plain, const N: usize>(map: &Arc<FileMap>, start: usize, len: usize, read: fn([u8; N]) -> T) -> Column<T> {
    Column::mapped(map.clone(), start, len).unwrap_or_else(|| Column::Owned(decode(map.bytes(start, len * N), read)))
}

/// Little-endian values of N bytes each.
fn decode<T, const N: usize>(bytes: &[u8], read: fn([u8; N]) -> T) -> Vec<T> {
    bytes.chunks_exact(N).map(|b| read(b.try_into().expect("N bytes"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_graph_reads_back_and_another_state_of_the_file_misses() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("edges.txt");
        std::fs::write(&source, "0 1\n").unwrap();
        let key = CacheKey::of(&source, EdgeListFormat::Snap, false).unwrap();
        let mut graph = Graph::from_edges(4, &[(0, 1), (0, 3), (2, 1)]).unwrap();
        graph.probabilities = vec![0.5, 0.25, 1.0];
        graph.dropped = DroppedEdges { self_loops: 2, duplicates: 1 };
        let file = cache_path(dir.path(), &key);
        store(&file, &key, &graph).unwrap();
        let loaded = load(&file, &key).unwrap();
        assert_eq!(loaded, graph);
        assert!(loaded.offsets.is_mapped() && loaded.targets.is_mapped(), "read in place");
        drop(loaded);
        let whole = std::fs::read(&file).unwrap();
        std::fs::write(&file, &whole[..whole.len() - 4]).unwrap();
        assert_eq!(load(&file, &key), None, "truncated: ignored");
        store(&file, &key, &graph).unwrap();
        let changed = CacheKey { size: key.size + 1, ..key.clone() };
        assert_eq!(load(&file, &changed), None, "another size: parse again");
        let other = CacheKey { undirected: true, ..key.clone() };
        assert_ne!(cache_path(dir.path(), &other), file, "other options, other file");
        std::fs::write(&file, b"TSRCSR01 and then garbage").unwrap();
        assert_eq!(load(&file, &key), None, "damaged: ignored");
        let mut huge = whole.clone();
        huge[8 + 16..8 + 24].copy_from_slice(&u64::MAX.to_le_bytes()); // the node count
        std::fs::write(&file, huge).unwrap();
        assert_eq!(load(&file, &key), None, "an impossible node count: ignored, no overflow");
    }
}
