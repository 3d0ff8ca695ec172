//! Edge-list files: SNAP's format (`#` comments, one `u v [w]` per line,
//! whitespace-separated, any integer ids, renumbered 0.. in order of first
//! appearance) and the `n m` header format (a first line `n m`, then m lines
//! `u v [w]` with ids in 0..n). A third column w, where present, is the
//! edge's probability p_uv. Errors name the file and line. Parsing runs on
//! all cores (`parse`); a large file's parse is kept as a binary CSR file
//! for later runs (`csr_cache`).

use std::io::Write;
use std::path::Path;

use crate::error::{Context, Result};
use rayon::prelude::*;

use super::csr_cache::{self, CacheKey};
use super::parse::{read_edges, EdgeRecords, Layout};
use super::{DroppedEdges, Graph};

pub use crate::choice::{EdgeListFormat, GraphCache};

/// The most nodes without an edge a header may promise beyond those its
/// edges can touch.
pub const MAX_ISOLATED_NODES: u64 = 1_000_000;

/// Reads the graph in `path` (`.gz` is decompressed) on all cores;
/// `undirected` adds both directions of every line. Edges without a weight
/// get p = 0 (set a probability model afterwards); with weights, every line
/// must have one. `cache` says whether to keep (and reuse) the parse as a
/// binary CSR file in Tessera's cache folder.
pub fn read_edge_list(path: &Path, format: EdgeListFormat, undirected: bool, cache: GraphCache) -> Result<Graph> {
    let name = path.display().to_string();
    let key = CacheKey::of(path, format, undirected).with_context(|| format!("opening graph {name}"))?;
    let cached = cache_file(cache, &key);
    if let Some(graph) = cached.as_deref().and_then(|file| csr_cache::load(file, &key)) {
        log::info!("{name}: read from its parsed copy {}, memory-mapped", cached.unwrap_or_default().display());
        return Ok(graph);
    }
    let graph = parse_edge_list(path, &name, format, undirected)?;
    if let Some(file) = cached {
        match csr_cache::store(&file, &key, &graph) {
            Ok(()) => log::info!("{name}: parsed copy kept at {} for later runs", file.display()),
            Err(e) => log::warn!(
                "{name}: could not keep a parsed copy ({}); it will be parsed again next time",
                tessera_util::error::chain(&e)
            ),
        }
    }
    Ok(graph)
}

/// Files at least this large are cached under `graph.cache = "auto"`.
pub const CACHE_MIN_BYTES: u64 = 16 << 20;

/// Where the parse of `key` is kept, if it is to be.
fn cache_file(cache: GraphCache, key: &CacheKey) -> Option<std::path::PathBuf> {
    let wanted = match cache {
        GraphCache::Auto => key.size >= CACHE_MIN_BYTES,
        GraphCache::Always => true,
        GraphCache::Never => false,
    };
    wanted.then(csr_cache::cache_dir).flatten().map(|dir| csr_cache::cache_path(&dir, key))
}

/// Parses the edge list at `path` into CSR form.
fn parse_edge_list(path: &Path, name: &str, format: EdgeListFormat, undirected: bool) -> Result<Graph> {
    let file = std::fs::File::open(path).with_context(|| format!("opening graph {name}"))?;
    let size = file.metadata().map_or(0, |m| m.len());
    let layout = Layout { name, format, undirected };
    let started = std::time::Instant::now();
    let records = if path.extension().is_some_and(|e| e == "gz") {
        read_edges(flate2::read::GzDecoder::new(file), size * 4, &layout)?
    } else {
        read_edges(file, size, &layout)?
    };
    let parsed = started.elapsed().as_secs_f64();
    let graph = into_csr(records, name);
    log::debug!("{name}: {size} bytes parsed in {parsed:.2}s, CSR in {:.2}s", started.elapsed().as_secs_f64() - parsed);
    Ok(graph)
}

/// The CSR form of the edges read: each node's targets sorted, self-loops
/// and repeats dropped (a repeat keeps its first weight) and counted.
fn into_csr(records: EdgeRecords, name: &str) -> Graph {
    let EdgeRecords { mut packed, weights, nodes } = records;
    let is_loop = |e: u64| (e >> 32) == (e & 0xFFFF_FFFF);
    let (graph, self_loops, duplicates) = if weights.is_empty() {
        let before = packed.len();
        packed.retain(|&e| !is_loop(e));
        let self_loops = before - packed.len();
        packed.par_sort_unstable();
        let before = packed.len();
        packed.dedup();
        let duplicates = before - packed.len();
        (Graph::from_sorted_packed(nodes, packed), self_loops, duplicates)
    } else {
        let mut order: Vec<usize> = (0..packed.len()).filter(|&i| !is_loop(packed[i])).collect();
        let self_loops = packed.len() - order.len();
        order.par_sort_unstable_by_key(|&i| (packed[i], i));
        let before = order.len();
        order.dedup_by_key(|i| packed[*i]);
        let duplicates = before - order.len();
        let probabilities: Vec<f32> = order.iter().map(|&i| weights[i]).collect();
        let sorted: Vec<u64> = order.iter().map(|&i| packed[i]).collect();
        drop(packed);
        let mut graph = Graph::from_sorted_packed(nodes, sorted);
        graph.probabilities = probabilities;
        (graph, self_loops, duplicates)
    };
    if self_loops + duplicates > 0 {
        log::warn!("{name}: dropped {self_loops} self-loop(s) and {duplicates} repeated edge(s)");
    }
    Graph { dropped: DroppedEdges { self_loops: self_loops as u64, duplicates: duplicates as u64 }, ..graph }
}

/// Writes `graph` as a SNAP edge list (`u v p` per line, ids 0..n), with a
/// comment saying where it came from, for other influence-maximization tools.
pub fn write_snap(graph: &Graph, path: &Path, comment: &str) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for line in comment.lines() {
        writeln!(out, "# {line}")?;
    }
    writeln!(out, "# Nodes: {} Edges: {}", graph.nodes(), graph.edges())?;
    let probabilities = graph.probabilities();
    for u in 0..graph.nodes() as usize {
        for e in graph.offsets[u] as usize..graph.offsets[u + 1] as usize {
            let v = graph.targets[e];
            writeln!(out, "{u}\t{v}\t{}", probabilities.get(e, v))?;
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn snap_files_are_renumbered_and_may_be_undirected() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "g.txt", "# a comment\n# FromNodeId\tToNodeId\n100 7\n7 42\n\n100 42\n");
        let g = read_edge_list(&p, EdgeListFormat::Snap, false, GraphCache::Never).unwrap();
        // 100 -> 0, 7 -> 1, 42 -> 2.
        assert_eq!((g.nodes(), g.offsets.to_vec(), g.targets.to_vec()), (3, vec![0, 2, 3, 3], vec![1, 2, 2]));
        let u = read_edge_list(&p, EdgeListFormat::Snap, true, GraphCache::Never).unwrap();
        assert_eq!(u.edges(), 6);
        assert_eq!(u.reverse().targets, u.targets);
    }

    #[test]
    fn weights_and_headers_are_read_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "h.txt", "3 3\n0 2 0.5\n0 1 0.25\n2 0 1\n");
        let g = read_edge_list(&p, EdgeListFormat::Header, false, GraphCache::Never).unwrap();
        assert_eq!(g.targets, vec![1, 2, 0]);
        assert_eq!(g.probabilities, vec![0.25, 0.5, 1.0], "weights follow their edges");
        let out = dir.path().join("out.txt");
        write_snap(&g, &out, "test graph\nseed 1").unwrap();
        let back = read_edge_list(&out, EdgeListFormat::Snap, false, GraphCache::Never).unwrap();
        assert_eq!(back, g);
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("a.txt", EdgeListFormat::Snap, "0 1\n1 x\n", "a.txt:2: `x` is not a node id"),
            ("b.txt", EdgeListFormat::Snap, "0 1\n# c\n1 2 3 4\n", "b.txt:3: expected `u v` or `u v w`"),
            ("c.txt", EdgeListFormat::Header, "2 1\n0 5\n", "c.txt:2: edge (0, 5) names a node outside 0..2"),
            ("d.txt", EdgeListFormat::Header, "3 2\n0 1\n", "the header promises 2 edges, the file has 1"),
            ("e.txt", EdgeListFormat::Snap, "0 1 0.5\n1 2\n", "1 of 2 edges have a weight"),
            ("f.txt", EdgeListFormat::Snap, "0 1 1.5\n", "f.txt:1: weight `1.5` is not a probability"),
            ("g.txt", EdgeListFormat::Header, "0 1 2\n", "g.txt:1: the first line must be `n m`"),
        ];
        for (name, format, text, expected) in cases {
            let p = write(dir.path(), name, text);
            let err = tessera_util::error::chain(&read_edge_list(&p, format, false, GraphCache::Never).unwrap_err());
            assert!(err.contains(expected), "{name}: {err}");
        }
    }
}
