//! Writing and reading shard sets (the format is described in the module
//! above this one).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tessera_store::StoreOptions;

use crate::error::{bail, invalid, Context, Result};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use super::backing::{store_client, store_error, Backing, Location, Span};
use super::cache::{BlockCache, CacheCounts};
use crate::confined::Confined;
use crate::data::Dataset;

/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Where one block lives and how to check it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockEntry {
    /// Index of the shard file in [`ShardIndex::shards`].
    pub shard: u32,
    /// Byte offset of the block in its shard.
    pub offset: u64,
    /// Byte length of the block.
    pub length: u64,
    /// Number of examples in the block (b, or fewer for the last block).
    pub examples: u32,
    /// CRC-32 (IEEE) of the block's bytes.
    pub crc32: u32,
}

/// `index.json`: the layout of a shard set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardIndex {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Shape of one example's features.
    pub shape: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
    /// Bytes of one record: 8 (label) + 4 × features.
    pub record_bytes: u64,
    /// Examples per block, b.
    pub block_size: u64,
    /// Examples in the set.
    pub examples: u64,
    /// Shard file names, relative to the set's folder.
    pub shards: Vec<String>,
    /// Every block, in example order.
    pub blocks: Vec<BlockEntry>,
}

impl ShardIndex {
    /// Parses and checks the index `text` read from `name`: a layout this
    /// reader can hold, and shard names that are plain file names (never a
    /// path out of the set's folder or prefix).
    pub fn parse(text: &[u8], name: &str) -> Result<ShardIndex> {
        let index: ShardIndex = serde_json::from_slice(text).with_context(|| format!("{name}: not a shard index"))?;
        index.check().with_context(|| format!("{name}: a damaged shard index; rewrite the shards"))?;
        if let Some(bad) = index.shards.iter().find(|n| !crate::confined::is_plain_name(std::ffi::OsStr::new(n))) {
            bail!("{name}: shard `{bad}` is not a file name in the set's folder; rewrite the shards");
        }
        Ok(index)
    }

    /// The layout a sampler sees.
    pub fn layout(&self) -> tessera_sdk::StorageLayout {
        tessera_sdk::StorageLayout {
            examples: self.examples,
            block_size: self.block_size,
            bytes_per_example: self.record_bytes,
        }
    }

    /// Features per example.
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    /// That the index describes a set this reader can hold: its version,
    /// shape, classes, block size and record size agree, and every block
    /// lists as many examples and bytes as its place implies.
    pub fn check(&self) -> Result<()> {
        if self.version != FORMAT_VERSION {
            bail!("format version {} (this tessera reads {FORMAT_VERSION})", self.version);
        }
        let dim = self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&d| d >= 1);
        let record = dim.and_then(|d| (d as u64).checked_mul(4)).and_then(|b| b.checked_add(8));
        if record != Some(self.record_bytes) || self.record_bytes > MAX_RECORD_BYTES {
            bail!(
                "record_bytes {} does not fit shape {:?} (8 label bytes + 4 per feature, at least one feature, at most {MAX_RECORD_BYTES} bytes)",
                self.record_bytes,
                self.shape
            );
        }
        if self.classes == 0 || self.classes > crate::validate::MAX_CLASSES {
            bail!("classes {} (1 to {})", self.classes, crate::validate::MAX_CLASSES);
        }
        if self.block_size == 0 || self.block_size.saturating_mul(self.record_bytes) > MAX_BLOCK_BYTES {
            bail!("block_size {} (at least 1, and blocks of at most {MAX_BLOCK_BYTES} bytes)", self.block_size);
        }
        self.check_blocks()
    }

    fn check_blocks(&self) -> Result<()> {
        let expected = self.examples.div_ceil(self.block_size);
        if self.blocks.len() as u64 != expected {
            bail!(
                "{} blocks listed for {} examples of block size {}",
                self.blocks.len(),
                self.examples,
                self.block_size
            );
        }
        for (b, block) in self.blocks.iter().enumerate() {
            let examples = self.block_size.min(self.examples - b as u64 * self.block_size);
            if block.examples as u64 != examples || block.length != examples * self.record_bytes {
                bail!(
                    "block {b} lists {} examples in {} bytes; its place holds {examples} examples of {} bytes",
                    block.examples,
                    block.length,
                    self.record_bytes
                );
            }
            if block.shard as usize >= self.shards.len() {
                bail!("block {b} names shard {} of {}", block.shard, self.shards.len());
            }
        }
        Ok(())
    }
}

/// The bytes of one record of examples of `shape`: 8 for the label, 4 a feature.
pub fn record_bytes(shape: &[usize]) -> Result<u64> {
    let dim = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
    match dim.and_then(|d| d.checked_mul(4)).and_then(|b| b.checked_add(8)) {
        Some(bytes) if bytes <= MAX_RECORD_BYTES => Ok(bytes),
        _ => bail!("examples of shape {shape:?} are more than Tessera stores in a record ({MAX_RECORD_BYTES} bytes)"),
    }
}

pub use crate::validate::{MAX_BLOCK_BYTES, MAX_RECORD_BYTES};

/// Writes a shard set example by example, so that a set larger than memory
/// (or one being rewritten in a new order) streams to disk.
pub struct ShardWriter {
    dir: PathBuf,
    index: ShardIndex,
    blocks_per_shard: u64,
    block: Vec<u8>,
    block_examples: u32,
    writer: Option<(BufWriter<File>, u64)>,
    written: super::IoStats,
}

impl ShardWriter {
    /// Starts a set in `dir` (new or empty) for examples of `shape`.
    pub fn create(
        dir: &Path,
        shape: &[usize],
        classes: usize,
        block_size: u64,
        blocks_per_shard: u64,
    ) -> Result<ShardWriter> {
        if block_size == 0 || blocks_per_shard == 0 {
            bail!("block_size and blocks_per_shard must be at least 1");
        }
        let record_bytes = record_bytes(shape)?;
        if block_size.checked_mul(record_bytes).is_none_or(|b| b > MAX_BLOCK_BYTES) {
            bail!(
                "block_size {block_size}: blocks of {block_size} examples of {record_bytes} bytes are more than Tessera writes ({MAX_BLOCK_BYTES} bytes); choose a smaller block size"
            );
        }
        if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
            bail!("{} already holds files; shards are written into a new or empty folder", dir.display());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(ShardWriter {
            dir: dir.to_path_buf(),
            index: ShardIndex {
                version: FORMAT_VERSION,
                shape: shape.to_vec(),
                classes,
                record_bytes,
                block_size,
                examples: 0,
                shards: vec![],
                blocks: vec![],
            },
            blocks_per_shard,
            block: Vec::with_capacity((block_size * record_bytes) as usize),
            block_examples: 0,
            writer: None,
            written: super::IoStats::default(),
        })
    }

    /// Appends one example.
    pub fn push(&mut self, label: i64, features: &[f32]) -> Result<()> {
        if features.len() as u64 * 4 + 8 != self.index.record_bytes {
            bail!("an example of {} features does not fit records of shape {:?}", features.len(), self.index.shape);
        }
        self.block.extend_from_slice(&label.to_le_bytes());
        for v in features {
            self.block.extend_from_slice(&v.to_le_bytes());
        }
        self.block_examples += 1;
        self.index.examples += 1;
        if self.block_examples as u64 == self.index.block_size {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<()> {
        if self.block_examples == 0 {
            return Ok(());
        }
        let started = std::time::Instant::now();
        if (self.index.blocks.len() as u64).is_multiple_of(self.blocks_per_shard) {
            if let Some((mut w, _)) = self.writer.take() {
                w.flush()?;
            }
            let name = format!("shard-{:05}.bin", self.index.shards.len());
            let path = self.dir.join(&name);
            let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            self.index.shards.push(name);
            self.writer = Some((BufWriter::with_capacity(1 << 20, file), 0));
        }
        let (w, offset) = self.writer.as_mut().expect("a shard is open");
        w.write_all(&self.block)?;
        self.index.blocks.push(BlockEntry {
            shard: (self.index.shards.len() - 1) as u32,
            offset: *offset,
            length: self.block.len() as u64,
            examples: self.block_examples,
            crc32: crc32fast::hash(&self.block),
        });
        *offset += self.block.len() as u64;
        self.written.requests += 1;
        self.written.bytes += self.block.len() as u64;
        self.written.io_seconds += started.elapsed().as_secs_f64();
        self.block.clear();
        self.block_examples = 0;
        Ok(())
    }

    /// Writes the last block and the index; returns the index and the
    /// writes (one request per block).
    pub fn finish(mut self) -> Result<(ShardIndex, super::IoStats)> {
        self.flush_block()?;
        if let Some((mut w, _)) = self.writer.take() {
            w.flush()?;
        }
        let json = serde_json::to_string_pretty(&self.index)?;
        tessera_util::fs::write_atomic(&self.dir.join("index.json"), json.as_bytes())?;
        Ok((self.index, self.written))
    }
}

/// Writes `data` in the order `order` (positions of `data`; `None` = as is)
/// as a shard set in `dir`: blocks of `block_size` examples, `blocks_per_shard`
/// blocks per file. `dir` must be new or empty.
pub fn write_shards(
    data: &Dataset,
    order: Option<&[usize]>,
    dir: &Path,
    block_size: u64,
    blocks_per_shard: u64,
) -> Result<ShardIndex> {
    if let Some(order) = order {
        if let Some(&bad) = order.iter().find(|&&i| i >= data.len()) {
            bail!("the order names example {bad}, but the dataset has {}", data.len());
        }
    }
    let mut writer = ShardWriter::create(dir, &data.shape, data.classes, block_size, blocks_per_shard)?;
    let dim = data.dim();
    let n = order.map_or(data.len(), <[usize]>::len);
    for position in 0..n {
        let i = order.map_or(position, |o| o[position]);
        writer.push(data.labels[i], &data.features[i * dim..(i + 1) * dim])?;
    }
    Ok(writer.finish()?.0)
}

/// Blocks [`ShardSet::read_all`] asks for at once.
const READ_ALL_CHUNK: usize = 256;

/// The largest `index.json` Tessera reads (about 5 million blocks).
pub const MAX_INDEX_BYTES: u64 = 512 << 20;

/// An open shard set: its index and its shards.
pub struct ShardSet {
    /// The folder (for a set in an object store, its URL: messages only).
    pub dir: PathBuf,
    /// Where the set is.
    pub location: Location,
    /// The layout.
    pub index: ShardIndex,
    backing: Backing,
    /// Where blocks read from a store are kept on local disk, if anywhere.
    cache: Option<Arc<BlockCache>>,
}

impl ShardSet {
    /// Opens the shard set in `dir`, checking the index against the files:
    /// every size and offset is checked before anything is allocated or read,
    /// and shard files are plain names inside `dir`, never links.
    pub fn open(dir: &Path) -> Result<ShardSet> {
        let folder = Confined::new(dir);
        let index_path = dir.join("index.json");
        let text = folder.read("index.json").with_context(|| format!("reading {}", index_path.display()))?;
        let index = ShardIndex::parse(&text, &index_path.display().to_string())?;
        let mut files = Vec::new();
        for name in &index.shards {
            let file = folder.open(name).with_context(|| format!("opening shard {}", dir.join(name).display()))?;
            files.push((dir.join(name), file));
        }
        ShardSet::checked(Location::Folder(dir.to_path_buf()), index, Backing::Files(files))
    }

    /// Opens the shard set at `location`: a folder as [`ShardSet::open`]
    /// does, a store prefix through a client with `options` (its index read
    /// whole, each shard's size asked once; nothing read past them).
    pub fn open_at(location: &Location, options: StoreOptions) -> Result<ShardSet> {
        let url = match location {
            Location::Folder(dir) => return ShardSet::open(dir),
            Location::Store(url) => url,
        };
        let index_url = url.join("index.json").map_err(|e| invalid!("{e}"))?;
        let store = store_client(url, options)?;
        let size = store.size(&index_url).map_err(store_error)?;
        if size > MAX_INDEX_BYTES {
            bail!("{index_url}: {size} bytes, more than a shard index holds ({MAX_INDEX_BYTES}); rewrite the shards");
        }
        let text = store.get(&index_url).map_err(store_error)?;
        let index = ShardIndex::parse(&text, &index_url.to_string())?;
        let shards = index.shards.iter().map(|n| url.join(n)).collect::<Result<Vec<_>, _>>();
        let backing = Backing::Store { store, shards: shards.map_err(|e| invalid!("{e}"))? };
        ShardSet::checked(location.clone(), index, backing)
    }

    /// The set, once every block is found inside its shard's bytes.
    fn checked(location: Location, index: ShardIndex, backing: Backing) -> Result<ShardSet> {
        let sizes = backing.sizes()?;
        for (b, block) in index.blocks.iter().enumerate() {
            let size = sizes[block.shard as usize];
            let end = block.offset.saturating_add(block.length);
            if end > size {
                bail!(
                    "{}/{}: block {b} ends at byte {end} but the shard has {size} bytes (truncated?); rewrite the shards",
                    location,
                    index.shards[block.shard as usize]
                );
            }
        }
        let dir = PathBuf::from(location.to_string());
        Ok(ShardSet { dir, location, index, backing, cache: None })
    }

    /// The set, its blocks kept in `cache` as they are read (a set in a
    /// store; a local set reads its own files).
    pub fn with_cache(self, cache: Arc<BlockCache>) -> ShardSet {
        let cache = matches!(self.location, Location::Store(_)).then_some(cache);
        ShardSet { cache, ..self }
    }

    /// What the set's block cache has done, if it has one.
    pub fn cache_counts(&self) -> Option<CacheCounts> {
        self.cache.as_ref().map(|c| c.counts())
    }

    /// What the set's store client has done, for a set in a store.
    pub fn store_counts(&self) -> Option<tessera_store::StoreCounts> {
        self.backing.store_counts()
    }

    /// Block `b`'s place, or an error if there is no such block.
    fn span(&self, b: u64) -> Result<(Span, &BlockEntry)> {
        let entry = self
            .index
            .blocks
            .get(b as usize)
            .with_context(|| format!("block {b} does not exist ({} blocks)", self.index.blocks.len()))?;
        Ok((Span { shard: entry.shard, offset: entry.offset, length: entry.length }, entry))
    }

    /// The shard file of `entry`, for messages.
    fn shard_path(&self, entry: &BlockEntry) -> PathBuf {
        self.dir.join(&self.index.shards[entry.shard as usize])
    }

    /// Reads block `b` with one request and checks its CRC-32.
    pub fn read_block(&self, b: u64) -> Result<Vec<u8>> {
        Ok(self.read_blocks(&[b])?.pop().expect("one block"))
    }

    /// Reads `blocks` (in that order), one request each, several at once,
    /// and checks each one's CRC-32 and labels; with a cache, what it holds
    /// is read from it and the rest fetched and kept.
    pub fn read_blocks(&self, blocks: &[u64]) -> Result<Vec<Vec<u8>>> {
        match &self.cache {
            None => self.fetch_blocks(blocks),
            Some(cache) => self.read_through(cache, blocks),
        }
    }

    /// Reads `blocks` from the set's files or objects and checks them.
    fn fetch_blocks(&self, blocks: &[u64]) -> Result<Vec<Vec<u8>>> {
        let spans = blocks.iter().map(|&b| Ok(self.span(b)?.0)).collect::<Result<Vec<_>>>()?;
        let read = self.backing.read_many(&spans)?;
        for (&b, bytes) in blocks.iter().zip(&read) {
            self.check_block(b, bytes)?;
        }
        Ok(read)
    }

    /// Reads `blocks` from `cache` (which checks their CRC-32), fetches the
    /// rest at once and keeps them there.
    fn read_through(&self, cache: &BlockCache, blocks: &[u64]) -> Result<Vec<Vec<u8>>> {
        let cached = |b: u64| -> Result<Option<Vec<u8>>> {
            let (span, entry) = self.span(b)?;
            Ok(cache.get(&self.cache_key(span), entry.length, entry.crc32))
        };
        let mut read = blocks.iter().map(|&b| cached(b)).collect::<Result<Vec<_>>>()?;
        let missing: Vec<u64> = blocks.iter().zip(&read).filter(|(_, r)| r.is_none()).map(|(&b, _)| b).collect();
        let mut fetched = self.fetch_blocks(&missing)?.into_iter();
        for (&b, slot) in blocks.iter().zip(&mut read) {
            let (span, entry) = self.span(b)?;
            match slot {
                Some(bytes) => self.check_labels(bytes, b * self.index.block_size, entry)?,
                None => {
                    let bytes = fetched.next().expect("one fetched block per miss");
                    cache.put(&self.cache_key(span), entry.crc32, &bytes)?;
                    *slot = Some(bytes);
                }
            }
        }
        Ok(read.into_iter().map(|b| b.expect("cached or fetched")).collect())
    }

    /// What names a block in the cache: its object and byte range.
    fn cache_key(&self, span: Span) -> String {
        format!("{}/{}@{}+{}", self.location, self.index.shards[span.shard as usize], span.offset, span.length)
    }

    /// That block `b`'s bytes have their stored CRC-32 and valid labels.
    fn check_block(&self, b: u64, bytes: &[u8]) -> Result<()> {
        let (_, entry) = self.span(b)?;
        let crc = crc32fast::hash(bytes);
        if crc != entry.crc32 {
            bail!(
                "{}: block {b} at byte offset {} fails its checksum (stored {:08x}, read {crc:08x}): the shard is corrupt; rewrite it",
                self.shard_path(entry).display(),
                entry.offset,
                entry.crc32
            );
        }
        self.check_labels(bytes, b * self.index.block_size, entry)
    }

    /// That every record of `bytes` (examples from `first` on) has a label in
    /// `0..classes`; an error naming the file and byte offset otherwise.
    fn check_labels(&self, bytes: &[u8], first: u64, entry: &BlockEntry) -> Result<()> {
        let classes = self.index.classes as i64;
        let records = bytes.chunks_exact(self.index.record_bytes as usize);
        for (k, record) in records.enumerate() {
            let label = i64::from_le_bytes(record[..8].try_into().expect("8 bytes"));
            if !(0..classes).contains(&label) {
                let offset = entry.offset + k as u64 * self.index.record_bytes;
                bail!(
                    "{}: example {} at byte offset {offset} has label {label}, outside 0..{classes}; rewrite the shards",
                    self.shard_path(entry).display(),
                    first + k as u64
                );
            }
        }
        Ok(())
    }

    /// Asks the storage to start reading `blocks` now (a local set: the
    /// kernel's `WILLNEED`), so a random block order keeps many requests in
    /// flight, as a scan does through readahead. Only a hint.
    pub fn advise(&self, blocks: &[u64]) {
        let spans: Vec<Span> = blocks.iter().filter_map(|&b| self.span(b).ok().map(|(s, _)| s)).collect();
        self.backing.advise(&spans);
    }

    /// Reads the record of example `i` alone (a ranged request; records are
    /// not checksummed one by one).
    pub fn read_record(&self, i: u64) -> Result<Vec<u8>> {
        Ok(self.read_records(&[i])?.pop().expect("one record"))
    }

    /// Reads the records of `ids` (in that order), one ranged request each,
    /// several at once.
    pub fn read_records(&self, ids: &[u64]) -> Result<Vec<Vec<u8>>> {
        let mut spans = Vec::with_capacity(ids.len());
        for &i in ids {
            let b = i / self.index.block_size;
            let entry = self
                .index
                .blocks
                .get(b as usize)
                .filter(|_| i < self.index.examples)
                .with_context(|| format!("example {i} does not exist ({} examples)", self.index.examples))?;
            let offset = entry.offset + (i % self.index.block_size) * self.index.record_bytes;
            spans.push((Span { shard: entry.shard, offset, length: self.index.record_bytes }, entry));
        }
        let only: Vec<Span> = spans.iter().map(|(s, _)| *s).collect();
        let read = self.backing.read_many(&only)?;
        for ((&i, (span, entry)), bytes) in ids.iter().zip(&spans).zip(&read) {
            let in_block = BlockEntry { offset: span.offset, ..(*entry).clone() };
            self.check_labels(bytes, i, &in_block)?;
        }
        Ok(read)
    }

    /// Decodes a record into (label, features).
    pub fn decode(&self, record: &[u8], features: &mut Vec<f32>) -> i64 {
        let label = i64::from_le_bytes(record[..8].try_into().expect("8 bytes"));
        let bytes = &record[8..];
        let n = bytes.len() / 4;
        if cfg!(target_endian = "little") {
            // The stored little-endian floats are this machine's floats: a
            // record's features sit 4-aligned in its block, so they are read
            // in place (`bytemuck` checks it); byte by byte otherwise.
            match bytemuck::try_cast_slice::<u8, f32>(&bytes[..n * 4]) {
                Ok(floats) => features.extend_from_slice(floats),
                Err(_) => {
                    features.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))))
                }
            }
        } else {
            features.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))));
        }
        label
    }

    /// Reads the whole set back into memory, in stored order (checksums checked).
    pub fn read_all(&self) -> Result<Dataset> {
        let mut features = Vec::with_capacity(self.index.examples as usize * self.index.dim());
        let mut labels = Vec::with_capacity(self.index.examples as usize);
        let blocks: Vec<u64> = (0..self.index.blocks.len() as u64).collect();
        for chunk in blocks.chunks(READ_ALL_CHUNK) {
            for bytes in self.read_blocks(chunk)? {
                for record in bytes.chunks_exact(self.index.record_bytes as usize) {
                    labels.push(self.decode(record, &mut features));
                }
            }
        }
        Ok(Dataset { features, shape: self.index.shape.clone(), labels, classes: self.index.classes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Dataset {
        crate::data::blobs(103, 3, 4, 2.0, 5).unwrap()
    }

    #[test]
    fn round_trip_in_a_given_order_with_a_partial_last_block() {
        let dir = tempfile::tempdir().unwrap();
        let d = data();
        let order = d.order_by_label();
        let index = write_shards(&d, Some(&order), &dir.path().join("s"), 10, 3).unwrap();
        assert_eq!(index.blocks.len(), 11);
        assert_eq!(index.shards.len(), 4);
        assert_eq!(index.blocks[10].examples, 3);
        let set = ShardSet::open(&dir.path().join("s")).unwrap();
        assert_eq!(set.read_all().unwrap(), d.subset(&order));
        let mut f = Vec::new();
        let label = set.decode(&set.read_record(42).unwrap(), &mut f);
        assert_eq!((label, f.as_slice()), (d.labels[order[42]], &d.features[order[42] * 3..order[42] * 3 + 3]));
        // A record at an odd address decodes the same (byte by byte).
        let mut shifted = vec![0u8];
        shifted.extend(set.read_record(42).unwrap());
        let mut g = Vec::new();
        assert_eq!(set.decode(&shifted[1..], &mut g), label);
        assert_eq!(g, f);
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum_with_file_block_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        write_shards(&data(), None, &path, 10, 4).unwrap();
        let shard = path.join("shard-00001.bin");
        let mut bytes = std::fs::read(&shard).unwrap();
        bytes[200] ^= 0x01; // block 5 (the second of shard 1, which starts at byte 200)
        std::fs::write(&shard, bytes).unwrap();
        let set = ShardSet::open(&path).unwrap();
        assert!(set.read_block(4).is_ok());
        let err = tessera_util::error::chain(&set.read_block(5).unwrap_err());
        assert!(err.contains("shard-00001.bin: block 5 at byte offset 200 fails its checksum"), "{err}");
    }

    #[test]
    fn a_lying_index_is_refused_before_anything_is_sized_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let good = write_shards(&data(), None, &path, 10, 4).unwrap();
        type Lie = fn(&mut ShardIndex);
        let cases: [(&str, Lie); 7] = [
            ("block_size 0", |i| i.block_size = 0),
            ("record_bytes 1000", |i| i.record_bytes = 1000),
            ("does not fit shape", |i| i.shape = vec![1 << 40, 1 << 40]),
            ("classes 0", |i| i.classes = 0),
            ("blocks listed for", |i| i.examples = u64::MAX),
            ("block 3 lists", |i| i.blocks[3].length = u64::MAX),
            ("not a file name", |i| i.shards[0] = "../s/shard-00000.bin".into()),
        ];
        for (says, lie) in cases {
            let mut index = good.clone();
            lie(&mut index);
            std::fs::write(path.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
            let err = tessera_util::error::chain(&ShardSet::open(&path).err().expect(says));
            assert!(err.contains(says), "{says}: {err}");
        }
    }

    #[test]
    fn a_label_outside_the_classes_is_named_with_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut d = data();
        d.labels[12] = 9;
        let index = write_shards(&d, None, &path, 10, 4).unwrap();
        assert_eq!(index.classes, 4, "written with the classes it was given");
        let set = ShardSet::open(&path).unwrap();
        let err = tessera_util::error::chain(&set.read_block(1).unwrap_err());
        assert!(err.contains("example 12 at byte offset 240 has label 9, outside 0..4"), "{err}");
        assert!(set.read_record(12).is_err() && set.read_record(11).is_ok());
        assert!(set.read_record(103).is_err(), "past the last example of the last block");
    }

    #[test]
    fn truncated_and_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        write_shards(&data(), None, &path, 10, 4).unwrap();
        let shard = path.join("shard-00002.bin");
        let len = std::fs::metadata(&shard).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&shard).unwrap().set_len(len - 5).unwrap();
        let err = tessera_util::error::chain(&ShardSet::open(&path).err().unwrap());
        assert!(err.contains("shard-00002.bin: block 10 ends at byte") && err.contains("truncated"), "{err}");
        std::fs::remove_file(&shard).unwrap();
        let err = tessera_util::error::chain(&ShardSet::open(&path).err().unwrap());
        assert!(err.contains("opening shard") && err.contains("shard-00002.bin"), "{err}");
        assert!(write_shards(&data(), None, &path, 10, 4).is_err(), "never writes over a set");
    }
}
