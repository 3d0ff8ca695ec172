//! Executes an example order against a shard set through a buffer of blocks.
//!
//! A reader thread pulls the order from the sampler chunk by chunk, decides
//! which blocks must be read (a least-recently-used buffer of
//! `buffer_blocks`), reads them — one request each — and sends them ahead
//! through a bounded channel. It plans one chunk ahead and advises the
//! kernel of that chunk's blocks first, so random block orders keep the
//! device as busy as a scan does. The consumer replays the same buffer policy,
//! so both agree on every block without talking about it. A chunk is cut
//! into pieces of at most a buffer's worth of new blocks (with example
//! access: of at most buffer × block size records), so the loader holds at
//! most (prefetch + 3) × buffer blocks' bytes, whatever the order and the
//! dataset size.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::error::{bail, invalid, Result};
use abi_stable::std_types::RVec;

use super::cost::IoStats;
use super::format::ShardSet;

/// A source of example ids for one epoch.
pub trait EpochOrder {
    /// The next chunk of ids, `None` at the end of the epoch.
    fn next_chunk(&mut self) -> Result<Option<RVec<u64>>>;
}

/// How the loader reads a block that is not buffered: whole blocks, or
/// one ranged request per example.
pub use crate::choice::StorageAccess as Access;

/// Hashes block ids by one multiplication (Fibonacci hashing): the buffer is
/// looked up once per example, where SipHash would dominate.
#[derive(Default, Clone, Copy)]
pub struct BlockIdHasher(u64);

impl std::hash::Hasher for BlockIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The least-recently-used buffer policy both threads replay (and that
/// in-memory training replays to count the I/O it would have done): the
/// `lru` crate's list, so a hit and an eviction cost O(1) however large the
/// buffer (the hand-written one scanned every entry to evict).
pub struct LruPolicy<T> {
    entries: lru::LruCache<u64, T, std::hash::BuildHasherDefault<BlockIdHasher>>,
}

impl<T> LruPolicy<T> {
    /// An empty buffer of `capacity` blocks.
    pub fn new(capacity: usize) -> Self {
        let capacity = std::num::NonZeroUsize::new(capacity.max(1)).expect("at least 1");
        LruPolicy { entries: lru::LruCache::with_hasher(capacity, Default::default()) }
    }

    /// Touches `block`; true if it was buffered.
    pub fn touch(&mut self, block: u64) -> bool {
        self.touch_get(block).is_some()
    }

    /// Touches `block` (now the most recently used) and returns its value
    /// if it was buffered.
    pub fn touch_get(&mut self, block: u64) -> Option<&T> {
        self.entries.get(&block)
    }

    /// Buffers `block` as the most recently used, evicting the least
    /// recently used one if full.
    pub fn insert(&mut self, block: u64, value: T) {
        self.entries.put(block, value);
    }
}

/// Pulls chunks of an order and plans their block reads with the buffer
/// policy (the consumer replays the same policy). A chunk that needs more
/// new blocks than the buffer holds is cut into pieces of at most
/// `capacity` new blocks, so no piece holds more than a buffer's worth of
/// data, however far the order jumps.
struct ReadPlanner {
    set: Arc<ShardSet>,
    policy: LruPolicy<()>,
    capacity: usize,
    access: Access,
    last_block: Option<u64>,
    /// The rest of the current chunk: its ids and the next position.
    carry: Option<(RVec<u64>, usize)>,
}

impl ReadPlanner {
    fn new(set: Arc<ShardSet>, capacity: usize, access: Access) -> Self {
        let capacity = capacity.max(1);
        ReadPlanner { set, policy: LruPolicy::new(capacity), capacity, access, last_block: None, carry: None }
    }

    /// The next piece of the order and the blocks it must read (empty for
    /// example access).
    fn next(&mut self, order: &mut (dyn EpochOrder + Send)) -> Result<Option<(RVec<u64>, Vec<u64>)>> {
        let (ids, start) = match self.carry.take() {
            Some(carry) => carry,
            None => match order.next_chunk()? {
                Some(ids) => (ids, 0),
                None => return Ok(None),
            },
        };
        let n = self.set.index.examples;
        let mut planned = Vec::new();
        let mut end = start;
        while end < ids.len() {
            let id = ids[end];
            if id >= n {
                bail!("the sampler yielded example id {id}, outside 0..{n}");
            }
            if self.access == Access::Example && end - start == self.capacity * self.set.index.block_size as usize {
                break; // a buffer's worth of records, as many bytes as its blocks
            }
            if self.access == Access::Block {
                let block = id / self.set.index.block_size;
                // The most recent block again: no LRU order changes.
                if self.last_block != Some(block) && !self.policy.touch(block) {
                    if planned.len() == self.capacity {
                        // Undo nothing: `touch` of a missing block changes no entry.
                        break;
                    }
                    self.policy.insert(block, ());
                    planned.push(block);
                }
                self.last_block = Some(block);
            }
            end += 1;
        }
        if start == 0 && end == ids.len() {
            return Ok(Some((ids, planned))); // the whole chunk: no copy
        }
        let piece: RVec<u64> = ids[start..end].into();
        if end < ids.len() {
            self.carry = Some((ids, end));
        }
        Ok(Some((piece, planned)))
    }
}

/// What the reader thread sends: a chunk of the order with the data it needs.
struct Piece {
    ids: RVec<u64>,
    /// Blocks read for this chunk, in the order the buffer policy loads them.
    blocks: Vec<Arc<Vec<u8>>>,
    /// Records read one by one (example access), one per id.
    records: Vec<Vec<u8>>,
}

/// One example handed to training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadedExample {
    /// Its id (position in the shard set).
    pub id: u64,
    /// Its label.
    pub label: i64,
}

/// Loads orders from a shard set.
pub struct BlockLoader {
    set: Arc<ShardSet>,
    buffer_blocks: usize,
    access: Access,
    prefetch: usize,
}

impl BlockLoader {
    /// A loader over `set` with a buffer of `buffer_blocks` blocks, reading
    /// up to `prefetch` chunks ahead of training.
    pub fn new(set: Arc<ShardSet>, buffer_blocks: usize, access: Access, prefetch: usize) -> Self {
        BlockLoader { set, buffer_blocks: buffer_blocks.max(1), access, prefetch: prefetch.max(1) }
    }

    /// The shard set.
    pub fn set(&self) -> &ShardSet {
        &self.set
    }

    /// Starts executing `order`: its reads run ahead on a background thread.
    pub fn start(&self, mut order: Box<dyn EpochOrder + Send>) -> EpochReader {
        let (tx, rx) = sync_channel::<Result<Piece>>(self.prefetch);
        let set = self.set.clone();
        let (capacity, access) = (self.buffer_blocks, self.access);
        let reader = std::thread::spawn(move || {
            let mut stats = IoStats::default();
            let mut planner = ReadPlanner::new(set.clone(), capacity, access);
            // One chunk of lookahead: the next chunk's blocks are advised to
            // the kernel before this chunk's are read, so reads stay queued.
            let mut next = planner.next(&mut *order);
            if let Ok(Some((_, blocks))) = &next {
                set.advise(blocks);
            }
            loop {
                let piece = (|| -> Result<Option<Piece>> {
                    let Some((ids, planned)) = std::mem::replace(&mut next, Ok(None))? else {
                        return Ok(None);
                    };
                    next = planner.next(&mut *order);
                    if let Ok(Some((_, blocks))) = &next {
                        set.advise(blocks);
                    }
                    let mut piece = Piece { ids: RVec::new(), blocks: vec![], records: vec![] };
                    let started = Instant::now();
                    match access {
                        Access::Block => {
                            for bytes in set.read_blocks(&planned)? {
                                stats.requests += 1;
                                stats.bytes += bytes.len() as u64;
                                piece.blocks.push(Arc::new(bytes));
                            }
                        }
                        Access::Example => {
                            for record in set.read_records(&ids)? {
                                stats.requests += 1;
                                stats.bytes += record.len() as u64;
                                piece.records.push(record);
                            }
                        }
                    }
                    stats.io_seconds += started.elapsed().as_secs_f64();
                    piece.ids = ids;
                    Ok(Some(piece))
                })();
                match piece {
                    Ok(Some(p)) => {
                        if tx.send(Ok(p)).is_err() {
                            break; // the consumer stopped early
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        break;
                    }
                }
            }
            stats
        });
        EpochReader {
            set: self.set.clone(),
            rx,
            reader: Some(reader),
            policy: LruPolicy::new(capacity),
            access,
            current: None,
            position: 0,
            next_block: 0,
            last_block: None,
            waited: 0.0,
        }
    }
}

/// The consumer side of one pass: yields examples in the order's order.
pub struct EpochReader {
    set: Arc<ShardSet>,
    rx: Receiver<Result<Piece>>,
    reader: Option<JoinHandle<IoStats>>,
    policy: LruPolicy<Arc<Vec<u8>>>,
    access: Access,
    current: Option<Piece>,
    position: usize,
    next_block: usize,
    last_block: Option<(u64, Arc<Vec<u8>>)>,
    /// Seconds spent waiting for the reader thread.
    waited: f64,
}

impl EpochReader {
    /// Appends up to `max` next examples: their features to `features`
    /// (row-major) and returns their ids and labels; empty at the end.
    pub fn next_examples(&mut self, max: usize, features: &mut Vec<f32>) -> Result<Vec<LoadedExample>> {
        let mut out = Vec::with_capacity(max);
        let record_bytes = self.set.index.record_bytes as usize;
        let block_size = self.set.index.block_size;
        while out.len() < max {
            if self.current.as_ref().is_none_or(|p| self.position >= p.ids.len()) {
                let started = Instant::now();
                let received = self.rx.recv();
                self.waited += started.elapsed().as_secs_f64();
                match received {
                    Ok(Ok(piece)) => {
                        self.current = Some(piece);
                        self.position = 0;
                        self.next_block = 0;
                        continue;
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(_) => break, // the reader finished
                }
            }
            let piece = self.current.as_ref().expect("a piece");
            let id = piece.ids[self.position];
            let label = match self.access {
                Access::Block => {
                    let block = id / block_size;
                    // Touching the most recent block again changes no LRU
                    // order: skip the lookups (the reader thread need not).
                    if self.last_block.as_ref().is_none_or(|(b, _)| *b != block) {
                        let bytes = match self.policy.touch_get(block) {
                            Some(bytes) => bytes.clone(),
                            None => {
                                let bytes = piece
                                    .blocks
                                    .get(self.next_block)
                                    .ok_or_else(|| invalid!("loader out of step at block {block}"))?
                                    .clone();
                                self.next_block += 1;
                                self.policy.insert(block, bytes.clone());
                                bytes
                            }
                        };
                        self.last_block = Some((block, bytes));
                    }
                    let bytes = &self.last_block.as_ref().expect("set above").1;
                    let start = (id % block_size) as usize * record_bytes;
                    self.set.decode(&bytes[start..start + record_bytes], features)
                }
                Access::Example => self.set.decode(&piece.records[self.position], features),
            };
            out.push(LoadedExample { id, label });
            self.position += 1;
        }
        Ok(out)
    }

    /// Ends the pass and returns its I/O.
    pub fn finish(mut self) -> Result<IoStats> {
        drop(std::mem::replace(&mut self.rx, sync_channel(1).1));
        let stats = self.reader.take().expect("started").join();
        let stats = stats.map_err(|_| invalid!("the storage reader thread panicked"))?;
        Ok(IoStats { wait_seconds: self.waited, ..stats })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::write_shards;

    struct VecOrder(Vec<Vec<u64>>);

    impl EpochOrder for VecOrder {
        fn next_chunk(&mut self) -> Result<Option<RVec<u64>>> {
            Ok(if self.0.is_empty() { None } else { Some(self.0.remove(0).into()) })
        }
    }

    fn set(dir: &std::path::Path) -> (crate::data::Dataset, Arc<ShardSet>) {
        let d = crate::data::blobs(100, 2, 2, 2.0, 1).unwrap();
        write_shards(&d, None, &dir.join("s"), 10, 3).unwrap();
        (d, Arc::new(ShardSet::open(&dir.join("s")).unwrap()))
    }

    fn run(loader: &BlockLoader, chunks: Vec<Vec<u64>>) -> (Vec<u64>, Vec<f32>, IoStats) {
        let mut reader = loader.start(Box::new(VecOrder(chunks)));
        let (mut ids, mut features) = (vec![], vec![]);
        loop {
            let got = reader.next_examples(7, &mut features).unwrap();
            if got.is_empty() {
                break;
            }
            ids.extend(got.iter().map(|e| e.id));
        }
        (ids, features, reader.finish().unwrap())
    }

    #[test]
    fn a_sequential_pass_reads_each_block_once() {
        let dir = tempfile::tempdir().unwrap();
        let (d, set) = set(dir.path());
        let loader = BlockLoader::new(set, 1, Access::Block, 2);
        let (ids, features, io) = run(&loader, vec![(0..60).collect(), (60..100).collect()]);
        assert_eq!(ids, (0..100).collect::<Vec<_>>());
        assert_eq!(features, d.features);
        assert_eq!((io.requests, io.bytes), (10, 100 * 16));
    }

    #[test]
    fn io_counts_follow_the_buffer_policy() {
        let dir = tempfile::tempdir().unwrap();
        let (d, set) = set(dir.path());
        // Alternating between blocks 0 and 5: a 1-block buffer re-reads on
        // every switch, a 2-block buffer reads each once.
        let order: Vec<u64> = (0..10).flat_map(|i| [i, 50 + i]).collect();
        let (ids, features, io) = run(&BlockLoader::new(set.clone(), 1, Access::Block, 1), vec![order.clone()]);
        assert_eq!(io.requests, 20);
        assert_eq!(ids, order);
        assert_eq!(&features[2..4], &d.features[100..102], "example 50 decoded");
        let (_, _, io) = run(&BlockLoader::new(set.clone(), 2, Access::Block, 1), vec![order.clone()]);
        assert_eq!((io.requests, io.bytes), (2, 2 * 10 * 16));
        // Example access: one small request per example.
        let (ids2, features2, io) = run(&BlockLoader::new(set, 2, Access::Example, 1), vec![order.clone()]);
        assert_eq!((io.requests, io.bytes), (20, 20 * 16));
        assert_eq!((ids2, features2), (ids, features));
    }

    #[test]
    fn a_chunk_that_jumps_between_blocks_is_read_a_buffer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (d, set) = set(dir.path());
        // One chunk visiting all 10 blocks twice, through a 3-block buffer:
        // no piece may carry more than 3 blocks, and the pass is unchanged.
        let order: Vec<u64> = (0..10).chain(0..10).map(|b| b * 10 + 3).collect();
        let mut planner = ReadPlanner::new(set.clone(), 3, Access::Block);
        let mut chunks = VecOrder(vec![order.clone()]);
        let mut seen = vec![];
        while let Some((ids, blocks)) = planner.next(&mut chunks).unwrap() {
            assert!(blocks.len() <= 3, "a piece with {} blocks", blocks.len());
            seen.extend(ids.iter().copied());
        }
        assert_eq!(seen, order);
        let (ids, features, io) = run(&BlockLoader::new(set, 3, Access::Block, 1), vec![order.clone()]);
        assert_eq!(ids, order);
        assert_eq!(io.requests, 20, "every visit to a block evicted since is a read");
        assert_eq!(&features[..2], &d.features[6..8]);
    }

    #[test]
    fn a_bad_id_or_a_corrupt_block_stops_the_pass_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (_, set) = set(dir.path());
        let loader = BlockLoader::new(set, 2, Access::Block, 1);
        let mut reader = loader.start(Box::new(VecOrder(vec![vec![1, 500]])));
        let err = reader.next_examples(10, &mut vec![]).unwrap_err();
        assert!(err.to_string().contains("example id 500, outside 0..100"), "{err}");
        let shard = dir.path().join("s/shard-00000.bin");
        let mut bytes = std::fs::read(&shard).unwrap();
        bytes[170] ^= 0xff;
        std::fs::write(&shard, bytes).unwrap();
        let mut reader = loader.start(Box::new(VecOrder(vec![vec![0, 15]])));
        let err = tessera_util::error::chain(&reader.next_examples(10, &mut vec![]).unwrap_err());
        assert!(err.contains("block 1 at byte offset 160 fails its checksum"), "{err}");
    }
}
