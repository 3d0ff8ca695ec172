//! Edge-list parsing on all cores: the file is read in blocks of 16 MB,
//! each block is cut at line ends into one piece per core, the pieces are
//! parsed in parallel from bytes, and their edges are renumbered in file
//! order. Memory is the edges (8 bytes each, 4 more with weights) plus one
//! block, whatever the file's size.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;

use crate::error::{bail, Result};
use rayon::prelude::*;

use super::readers::MAX_ISOLATED_NODES;
use super::EdgeListFormat;

/// Bytes read at a time.
const BLOCK_BYTES: usize = 16 << 20;

/// Edges as read: `u << 32 | v` per edge in file order (both directions for
/// an undirected file), their weights where the file has them, and n.
pub(super) struct EdgeRecords {
    /// Packed edges.
    pub packed: Vec<u64>,
    /// One weight per packed edge, or none.
    pub weights: Vec<f32>,
    /// Nodes: the header's n, or the distinct ids seen.
    pub nodes: u32,
}

/// How the edge list is laid out and where it comes from (for messages).
pub(super) struct Layout<'a> {
    /// The file's name as messages print it.
    pub name: &'a str,
    /// SNAP or header.
    pub format: EdgeListFormat,
    /// Add both directions of every line.
    pub undirected: bool,
}

/// One piece's data lines, parsed: raw ids and weights.
#[derive(Default)]
struct Piece {
    ends: Vec<(u64, u64)>,
    weights: Vec<f32>,
}

/// A problem on line `line` (0-based within its piece) of a piece.
struct LineError {
    line: u64,
    message: String,
}

/// Reads every edge of `source` (about `size_hint` bytes).
pub(super) fn read_edges(source: impl Read, size_hint: u64, layout: &Layout) -> Result<EdgeRecords> {
    read_in_blocks(source, size_hint, layout, BLOCK_BYTES)
}

/// [`read_edges`], `block_bytes` at a time.
fn read_in_blocks(mut source: impl Read, size_hint: u64, layout: &Layout, block_bytes: usize) -> Result<EdgeRecords> {
    let mut state = ReadState::new(layout, size_hint);
    let mut buffer: Vec<u8> = Vec::with_capacity(2 * block_bytes);
    loop {
        let kept = buffer.len();
        buffer.resize(kept + block_bytes, 0);
        let got = read_up_to(&mut source, &mut buffer[kept..])
            .map_err(|e| crate::error::invalid!("{}: cannot read the file: {e}", layout.name))?;
        buffer.truncate(kept + got);
        let at_end = got == 0;
        let cut = if at_end { buffer.len() } else { buffer.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) };
        state.block(&buffer[..cut])?;
        buffer.drain(..cut);
        if at_end {
            return state.finish();
        }
    }
}

/// Fills `buffer` as far as the source allows; the bytes read (0 at the end).
fn read_up_to(source: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match source.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A multiplicative hash for node ids: renumbering is a hash-map lookup per
/// edge end, and SipHash would be most of the reading time.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x517c_c1b7_2722_0a95));
    }
    fn write_u64(&mut self, id: u64) {
        // SplitMix64's finalizer: every input bit reaches the low bits the
        // table indexes by (ids that are multiples of 1,000 spread too).
        let mut x = (id ^ (id >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = x ^ (x >> 31);
    }
}

/// What reading has gathered so far.
struct ReadState<'a> {
    layout: &'a Layout<'a>,
    /// The header's (n, m), once read.
    header: Option<(u64, u64)>,
    /// SNAP ids in order of first appearance.
    ids: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
    records: EdgeRecords,
    /// Lines before the current block.
    lines_before: u64,
    data_lines: u64,
    /// Data lines with a third column.
    weighted_lines: u64,
    size_hint: u64,
}

impl<'a> ReadState<'a> {
    fn new(layout: &'a Layout<'a>, size_hint: u64) -> Self {
        ReadState {
            layout,
            header: None,
            ids: HashMap::default(),
            records: EdgeRecords { packed: vec![], weights: vec![], nodes: 0 },
            lines_before: 0,
            data_lines: 0,
            weighted_lines: 0,
            size_hint,
        }
    }

    /// Parses one block of whole lines.
    fn block(&mut self, mut text: &[u8]) -> Result<()> {
        if self.layout.format == EdgeListFormat::Header && self.header.is_none() {
            text = self.header_line(text)?;
        }
        if self.records.packed.is_empty() && !text.is_empty() {
            self.reserve(text);
        }
        let pieces = split_at_lines(text, rayon::current_num_threads().max(1));
        let header_n = self.header.map(|(n, _)| n);
        let parsed: Vec<std::result::Result<Piece, LineError>> =
            pieces.par_iter().map(|piece| parse_piece(piece, header_n)).collect();
        for (piece, result) in pieces.iter().zip(parsed) {
            let piece_result = result.map_err(|e| {
                crate::error::invalid!("{}:{}: {}", self.layout.name, self.lines_before + e.line + 1, e.message)
            })?;
            self.take(piece_result);
            self.lines_before += memchr::memchr_iter(b'\n', piece).count() as u64;
        }
        Ok(())
    }

    /// Reserves room for the edges, judging the file's lines by this block's.
    fn reserve(&mut self, text: &[u8]) {
        let lines = memchr::memchr_iter(b'\n', text).count().max(1) as u64;
        let per_line = (text.len() as u64 / lines).max(4);
        let directions = if self.layout.undirected { 2 } else { 1 };
        let estimate = (self.size_hint / per_line + lines) * directions * 21 / 20;
        self.records.packed.reserve(estimate.min(1 << 34) as usize);
    }

    /// Reads the header (`n m`), the first line that is not blank or a
    /// comment; the text after it.
    fn header_line<'t>(&mut self, text: &'t [u8]) -> Result<&'t [u8]> {
        let mut rest = text;
        while !rest.is_empty() {
            let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
            let (line, after) = rest.split_at(end);
            rest = after;
            self.lines_before += 1;
            let number = self.lines_before;
            let Some(fields) = data_fields(line) else { continue };
            let shown = String::from_utf8_lossy(line.trim_ascii());
            let at = |message: String| crate::error::invalid!("{}:{number}: {message}", self.layout.name);
            if fields.len() != 2 {
                return Err(at(format!("the first line must be `n m` (nodes, edges), found `{shown}`")));
            }
            let field = |e: BadField| at(e.to_string());
            let (n, m) = (node_id(fields[0], line).map_err(field)?, node_id(fields[1], line).map_err(field)?);
            if n > u32::MAX as u64 {
                return Err(at(format!("{n} nodes is more than this reader handles (2^32 - 1)")));
            }
            if n > 2 * m + MAX_ISOLATED_NODES {
                return Err(at(format!(
                    "the header promises {n} nodes for {m} edges, which touch at most {}; more than {MAX_ISOLATED_NODES} nodes without an edge is taken for a wrong header (first line `n m`: nodes, then edges)",
                    2 * m
                )));
            }
            self.header = Some((n, m));
            return Ok(rest);
        }
        Ok(rest)
    }

    /// Appends a parsed piece, renumbering SNAP ids in order of appearance.
    fn take(&mut self, piece: Piece) {
        self.data_lines += piece.ends.len() as u64;
        self.weighted_lines += piece.weights.len() as u64;
        // A piece with weights on some lines only fails the check at the end.
        let weighted = piece.weights.len() == piece.ends.len() && !piece.weights.is_empty();
        for (i, &(a, b)) in piece.ends.iter().enumerate() {
            let (u, v) = match self.header {
                Some(_) => (a as u32, b as u32),
                None => (self.id(a), self.id(b)),
            };
            self.records.packed.push((u as u64) << 32 | v as u64);
            if weighted {
                self.records.weights.push(piece.weights[i]);
            }
            if self.layout.undirected {
                self.records.packed.push((v as u64) << 32 | u as u64);
                if weighted {
                    self.records.weights.push(piece.weights[i]);
                }
            }
        }
    }

    fn id(&mut self, raw: u64) -> u32 {
        let next = self.ids.len() as u32;
        *self.ids.entry(raw).or_insert(next)
    }

    /// Checks the totals; the edges.
    fn finish(mut self) -> Result<EdgeRecords> {
        let name = self.layout.name;
        let with_weight = self.weighted_lines;
        if with_weight != 0 && with_weight != self.data_lines {
            bail!("{name}: {with_weight} of {} edges have a weight; give all or none", self.data_lines);
        }
        self.records.nodes = match self.header {
            Some((n, m)) => {
                if self.data_lines != m {
                    bail!("{name}: the header promises {m} edges, the file has {}", self.data_lines);
                }
                n as u32
            }
            None if self.layout.format == EdgeListFormat::Header => {
                bail!("{name}: empty file; expected a first line `n m`")
            }
            None => self.ids.len() as u32,
        };
        if self.records.nodes == 0 {
            bail!("{name}: no edges");
        }
        Ok(self.records)
    }
}

/// `text` cut into about `parts` pieces, each ending at a line end.
fn split_at_lines(text: &[u8], parts: usize) -> Vec<&[u8]> {
    let mut pieces = Vec::with_capacity(parts);
    let mut rest = text;
    for left in (1..=parts).rev() {
        if left == 1 || rest.is_empty() {
            pieces.push(rest);
            break;
        }
        let target = rest.len() / left;
        let cut = memchr::memchr(b'\n', &rest[target..]).map_or(rest.len(), |i| target + i + 1);
        let (piece, after) = rest.split_at(cut);
        pieces.push(piece);
        rest = after;
    }
    pieces
}

/// The whitespace-separated fields of a data line (at most 4 kept: enough
/// to tell a bad line), or `None` for a blank line or a comment.
fn data_fields(line: &[u8]) -> Option<Vec<&[u8]>> {
    let text = line.trim_ascii();
    if text.is_empty() || text[0] == b'#' || text[0] == b'%' {
        return None;
    }
    Some(text.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty()).take(4).collect())
}

/// A field of an edge-list line that is not what its column holds.
#[derive(Debug, thiserror::Error)]
enum BadField {
    /// Not a node id.
    #[error("`{field}` is not a node id (a non-negative integer) in `{line}`")]
    NodeId {
        /// The field.
        field: String,
        /// Its line, trimmed.
        line: String,
    },
    /// Not a probability.
    #[error("weight `{0}` is not a probability in [0, 1]")]
    Weight(String),
}

/// A node id: a non-negative decimal integer below 2^64.
fn node_id(field: &[u8], line: &[u8]) -> std::result::Result<u64, BadField> {
    let mut value: u64 = 0;
    let bad = || BadField::NodeId {
        field: String::from_utf8_lossy(field).into_owned(),
        line: String::from_utf8_lossy(line.trim_ascii()).into_owned(),
    };
    if field.is_empty() {
        return Err(bad());
    }
    for &b in field {
        if !b.is_ascii_digit() {
            return Err(bad());
        }
        value = value.checked_mul(10).and_then(|v| v.checked_add((b - b'0') as u64)).ok_or_else(bad)?;
    }
    Ok(value)
}

/// A weight: a probability in [0, 1].
fn weight(field: &[u8]) -> std::result::Result<f32, BadField> {
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse::<f32>().ok())
        .filter(|w| (0.0..=1.0).contains(w))
        .ok_or_else(|| BadField::Weight(String::from_utf8_lossy(field).into_owned()))
}

/// Parses one piece of whole lines; ids checked against the header's n.
fn parse_piece(piece: &[u8], header_n: Option<u64>) -> std::result::Result<Piece, LineError> {
    let mut out = Piece { ends: Vec::with_capacity(memchr::memchr_iter(b'\n', piece).count() + 1), weights: vec![] };
    for (index, line) in piece.split(|&b| b == b'\n').enumerate() {
        let Some(fields) = data_fields(line) else { continue };
        let fail = |message: String| LineError { line: index as u64, message };
        if !(2..=3).contains(&fields.len()) {
            let shown = String::from_utf8_lossy(line.trim_ascii());
            return Err(fail(format!("expected `u v` or `u v w`, found `{shown}`")));
        }
        let field = |e: BadField| fail(e.to_string());
        let (a, b) = (node_id(fields[0], line).map_err(field)?, node_id(fields[1], line).map_err(field)?);
        if let Some(n) = header_n.filter(|&n| a >= n || b >= n) {
            return Err(fail(format!("edge ({a}, {b}) names a node outside 0..{n} (the header says n = {n})")));
        }
        if fields.len() == 3 {
            out.weights.push(weight(fields[2]).map_err(field)?);
        }
        out.ends.push((a, b));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(format: EdgeListFormat) -> Layout<'static> {
        Layout { name: "g.txt", format, undirected: false }
    }

    /// A SNAP file of `lines` edges among ids spread over 0..10⁹, with comments.
    fn snap_text(lines: u64) -> String {
        let mut text = String::from("# a comment\n");
        for i in 0..lines {
            text.push_str(&format!("{}\t{}\n", (i * 7919) % 1_000_003 * 997, (i * 104_729 + 3) % 999_983 * 991));
            if i % 97 == 0 {
                text.push_str("% another\n\n");
            }
        }
        text
    }

    #[test]
    fn blocks_and_pieces_of_any_size_give_the_same_edges_in_file_order() {
        let text = snap_text(5000);
        let whole = read_in_blocks(text.as_bytes(), 0, &layout(EdgeListFormat::Snap), 1 << 24).unwrap();
        for block in [7, 64, 1000, 4096] {
            let parts = read_in_blocks(text.as_bytes(), 0, &layout(EdgeListFormat::Snap), block).unwrap();
            assert_eq!((parts.packed.clone(), parts.nodes), (whole.packed.clone(), whole.nodes), "block {block}");
        }
        // Ids are numbered in order of first appearance.
        let first = whole.packed[0];
        assert_eq!((first >> 32, first & 0xFFFF_FFFF), (0, 1));
        assert_eq!(whole.packed.len(), 5000);
    }

    #[test]
    fn a_bad_line_is_named_by_its_number_whichever_block_holds_it() {
        let mut text = snap_text(3000);
        let lines_before = text.lines().count();
        text.push_str("12 oops\n");
        for block in [50, 333, 1 << 20] {
            let err = read_in_blocks(text.as_bytes(), 0, &layout(EdgeListFormat::Snap), block).err().unwrap();
            let expected = format!("g.txt:{}: `oops` is not a node id", lines_before + 1);
            assert!(err.to_string().contains(&expected), "block {block}: {err}");
        }
        let header = "# header below\n3 2\n0 1\n2 7\n";
        let err = read_in_blocks(header.as_bytes(), 0, &layout(EdgeListFormat::Header), 5).err().unwrap();
        assert!(err.to_string().contains("g.txt:4: edge (2, 7) names a node outside 0..3"), "{err}");
    }

    #[test]
    fn weights_follow_their_edges_and_must_be_on_every_line() {
        let text = "0 1 0.5\n1 2 0.25\n2 0 1\n";
        let read = read_in_blocks(text.as_bytes(), 0, &layout(EdgeListFormat::Snap), 8).unwrap();
        assert_eq!(read.weights, vec![0.5, 0.25, 1.0]);
        let mixed = "0 1 0.5\n1 2\n2 0 1\n";
        let err = read_in_blocks(mixed.as_bytes(), 0, &layout(EdgeListFormat::Snap), 8).err().unwrap();
        assert!(err.to_string().contains("2 of 3 edges have a weight"), "{err}");
    }
}
