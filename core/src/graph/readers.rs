//! Edge-list files: SNAP's format (`#` comments, one `u v [w]` per line,
//! whitespace-separated, any integer ids, renumbered 0.. in order of first
//! appearance) and the `n m` header format (a first line `n m`, then m lines
//! `u v [w]` with ids in 0..n). A third column w, where present, is the
//! edge's probability p_uv. Errors name the file and line.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{DroppedEdges, Graph};

pub use crate::choice::EdgeListFormat;

/// The most nodes without an edge a header may promise beyond those its
/// edges can touch.
pub const MAX_ISOLATED_NODES: u64 = 1_000_000;

/// Reads the graph in `path` (`.gz` is decompressed); `undirected` adds
/// both directions of every line. Edges without a weight get p = 0 (set a
/// probability model afterwards); with weights, every line must have one.
pub fn read_edge_list(path: &Path, format: EdgeListFormat, undirected: bool) -> Result<Graph> {
    let file = std::fs::File::open(path).with_context(|| format!("opening graph {}", path.display()))?;
    let reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(std::io::BufReader::new(flate2::read::GzDecoder::new(file)))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    let name = path.display().to_string();
    let mut ids: std::collections::HashMap<u64, u32> = Default::default();
    let mut header: Option<(u64, u64)> = None;
    let (mut edges, mut weights): (Vec<(u32, u32)>, Vec<f32>) = (vec![], vec![]);
    let mut lines_with_weight = 0usize;
    let mut data_lines = 0u64;
    for (index, line) in reader.lines().enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("{name}:{number}: cannot read the line"))?;
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') || text.starts_with('%') {
            continue;
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        let int = |i: usize| -> Result<u64> {
            fields[i].parse::<u64>().with_context(|| {
                format!("{name}:{number}: `{}` is not a node id (a non-negative integer) in `{text}`", fields[i])
            })
        };
        if format == EdgeListFormat::Header && header.is_none() {
            if fields.len() != 2 {
                bail!("{name}:{number}: the first line must be `n m` (nodes, edges), found `{text}`");
            }
            let (n, m) = (int(0)?, int(1)?);
            if n > u32::MAX as u64 {
                bail!("{name}:{number}: {n} nodes is more than this reader handles (2^32 - 1)");
            }
            if n > 2 * m + MAX_ISOLATED_NODES {
                bail!(
                    "{name}:{number}: the header promises {n} nodes for {m} edges, which touch at most {}; more than {MAX_ISOLATED_NODES} nodes without an edge is taken for a wrong header (first line `n m`: nodes, then edges)",
                    2 * m
                );
            }
            header = Some((n, m));
            continue;
        }
        if !(2..=3).contains(&fields.len()) {
            bail!("{name}:{number}: expected `u v` or `u v w`, found `{text}`");
        }
        let (a, b) = (int(0)?, int(1)?);
        let (u, v) = match header {
            Some((n, _)) => {
                if a >= n || b >= n {
                    bail!("{name}:{number}: edge ({a}, {b}) names a node outside 0..{n} (the header says n = {n})");
                }
                (a as u32, b as u32)
            }
            None => {
                let mut id = |raw: u64| {
                    let next = ids.len() as u32;
                    *ids.entry(raw).or_insert(next)
                };
                (id(a), id(b))
            }
        };
        if fields.len() == 3 {
            let w: f32 =
                fields[2].parse().ok().filter(|w: &f32| (0.0..=1.0).contains(w)).with_context(|| {
                    format!("{name}:{number}: weight `{}` is not a probability in [0, 1]", fields[2])
                })?;
            weights.push(w);
            lines_with_weight += 1;
        }
        data_lines += 1;
        edges.push((u, v));
        if undirected {
            edges.push((v, u));
            if fields.len() == 3 {
                weights.push(*weights.last().expect("pushed"));
            }
        }
    }
    if lines_with_weight != 0 && lines_with_weight as u64 != data_lines {
        bail!("{name}: {lines_with_weight} of {data_lines} edges have a weight; give all or none");
    }
    let n = match header {
        Some((n, m)) => {
            if data_lines != m {
                bail!("{name}: the header promises {m} edges, the file has {data_lines}");
            }
            n as u32
        }
        None if format == EdgeListFormat::Header => bail!("{name}: empty file; expected a first line `n m`"),
        None => ids.len() as u32,
    };
    if n == 0 {
        bail!("{name}: no edges");
    }
    // CSR sorts each node's targets: carry the weights along.
    let mut order: Vec<usize> = (0..edges.len()).collect();
    order.sort_by_key(|&i| (edges[i], i));
    // A self-loop cannot spread influence and a repeated edge is one edge:
    // both are dropped (the first weight of a repeated edge is kept), and counted.
    let self_loops = order.iter().filter(|&&i| edges[i].0 == edges[i].1).count() as u64;
    order.retain(|&i| edges[i].0 != edges[i].1);
    let before = order.len();
    order.dedup_by_key(|i| edges[*i]);
    let duplicates = (before - order.len()) as u64;
    if self_loops + duplicates > 0 {
        log::warn!("{name}: dropped {self_loops} self-loop(s) and {duplicates} repeated edge(s)");
    }
    let sorted: Vec<(u32, u32)> = order.iter().map(|&i| edges[i]).collect();
    let mut graph = Graph::from_edges(n, &sorted)?;
    if !weights.is_empty() {
        graph.probabilities = order.iter().map(|&i| weights[i]).collect();
    }
    graph.dropped = DroppedEdges { self_loops, duplicates };
    Ok(graph)
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
    for u in 0..graph.nodes() as usize {
        for e in graph.offsets[u] as usize..graph.offsets[u + 1] as usize {
            writeln!(out, "{u}\t{}\t{}", graph.targets[e], graph.probabilities[e])?;
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
        let g = read_edge_list(&p, EdgeListFormat::Snap, false).unwrap();
        // 100 -> 0, 7 -> 1, 42 -> 2.
        assert_eq!((g.nodes(), g.offsets.clone(), g.targets.clone()), (3, vec![0, 2, 3, 3], vec![1, 2, 2]));
        let u = read_edge_list(&p, EdgeListFormat::Snap, true).unwrap();
        assert_eq!(u.edges(), 6);
        assert_eq!(u.reverse().targets, u.targets);
    }

    #[test]
    fn weights_and_headers_are_read_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "h.txt", "3 3\n0 2 0.5\n0 1 0.25\n2 0 1\n");
        let g = read_edge_list(&p, EdgeListFormat::Header, false).unwrap();
        assert_eq!(g.targets, vec![1, 2, 0]);
        assert_eq!(g.probabilities, vec![0.25, 0.5, 1.0], "weights follow their edges");
        let out = dir.path().join("out.txt");
        write_snap(&g, &out, "test graph\nseed 1").unwrap();
        let back = read_edge_list(&out, EdgeListFormat::Snap, false).unwrap();
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
            let err = format!("{:#}", read_edge_list(&p, format, false).unwrap_err());
            assert!(err.contains(expected), "{name}: {err}");
        }
    }
}
