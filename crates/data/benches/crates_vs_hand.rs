//! The crates that replaced hand-written parts of the data layer, each
//! timed against the hand-written version it replaced (kept here as the
//! baseline), in the same run:
//!
//! - the block buffer's LRU (`lru` crate, O(1) eviction) against the map
//!   scanned for its oldest entry on every eviction;
//! - decoding a record's floats (`bytemuck`, a checked byte copy into the
//!   new floats) against the `unsafe` raw copy;
//! - the read-only file map (`memmap2`) against the `libc::mmap` wrapper,
//!   mapping and summing a file.
//!
//! Run: `cargo bench -p tessera-data --bench crates_vs_hand`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use tessera_data::data::generators::teacher;
use tessera_data::file_map::FileMap;
use tessera_data::storage::{write_shards, LruPolicy, ShardSet};

/// The hand-written LRU the loader had: a clock per entry, and a scan of
/// every entry for the oldest on eviction.
struct ScanLru {
    capacity: usize,
    clock: u64,
    entries: HashMap<u64, u64>,
}

impl ScanLru {
    fn new(capacity: usize) -> Self {
        ScanLru { capacity, clock: 0, entries: HashMap::new() }
    }

    fn touch(&mut self, block: u64) -> bool {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(&block).map(|t| *t = clock).is_some()
    }

    fn insert(&mut self, block: u64) {
        if self.entries.len() >= self.capacity {
            if let Some(&oldest) = self.entries.iter().min_by_key(|(_, t)| **t).map(|(b, _)| b) {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(block, self.clock);
    }
}

/// A CorgiPile-like trace: random blocks, each visited for a run of examples.
fn trace(touches: usize, blocks: u64) -> Vec<u64> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(touches);
    while out.len() < touches {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend(std::iter::repeat_n(state % blocks, 4));
    }
    out
}

fn seconds(f: impl FnOnce() -> u64) -> (f64, u64) {
    let started = Instant::now();
    let misses = f();
    (started.elapsed().as_secs_f64(), misses)
}

fn lru(capacity: usize) {
    let blocks = trace(2_000_000, 16 * capacity as u64);
    let (hand, hand_misses) = seconds(|| {
        let mut lru = ScanLru::new(capacity);
        let mut misses = 0;
        for &b in &blocks {
            if !lru.touch(b) {
                lru.insert(b);
                misses += 1;
            }
        }
        misses
    });
    let (crate_s, crate_misses) = seconds(|| {
        let mut lru = LruPolicy::new(capacity);
        let mut misses = 0;
        for &b in &blocks {
            if !lru.touch(b) {
                lru.insert(b, ());
                misses += 1;
            }
        }
        misses
    });
    assert_eq!(hand_misses, crate_misses, "the same policy: the same misses");
    println!(
        "lru, {capacity:>5} blocks: hand-written {hand:.3} s, lru crate {crate_s:.3} s: {:.1}× ({} misses of {} touches each)",
        hand / crate_s,
        crate_misses,
        blocks.len()
    );
}

/// The decode the shard set had: a raw copy into reserved floats.
fn decode_unsafe(record: &[u8], features: &mut Vec<f32>) -> i64 {
    let label = i64::from_le_bytes(record[..8].try_into().expect("8 bytes"));
    let bytes = &record[8..];
    let n = bytes.len() / 4;
    features.reserve(n);
    // SAFETY: as the shard set had it: room for n floats, a byte copy.
    unsafe {
        let dst = features.as_mut_ptr().add(features.len()) as *mut u8;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, n * 4);
        features.set_len(features.len() + n);
    }
    label
}

fn decode() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let data = teacher(20_000, 784, 16, 10, 0).expect("teacher data");
    write_shards(&data, None, dir.path(), 256, 16).expect("shards");
    let set = ShardSet::open(dir.path()).expect("the shard set");
    let records: Vec<Vec<u8>> = (0..set.index.examples).map(|i| set.read_record(i).expect("a record")).collect();
    let passes = 20;
    let mut features = Vec::with_capacity(784 * records.len());
    let (hand, _) = seconds(|| {
        for _ in 0..passes {
            features.clear();
            records.iter().for_each(|r| _ = black_box(decode_unsafe(r, &mut features)));
        }
        features.len() as u64
    });
    let hand_values = features.clone();
    let (crate_s, _) = seconds(|| {
        for _ in 0..passes {
            features.clear();
            records.iter().for_each(|r| _ = black_box(set.decode(r, &mut features)));
        }
        features.len() as u64
    });
    assert_eq!(hand_values, features, "the same floats");
    let mb = (passes * records.len() * 784 * 4) as f64 / 1e6;
    println!(
        "decode, {mb:.0} MB of f32: unsafe copy {:.0} MB/s, bytemuck {:.0} MB/s: {:.2}×",
        mb / hand,
        mb / crate_s,
        hand / crate_s
    );
}

/// The map the data layer had: `libc::mmap` of the whole file.
fn sum_libc_map(path: &std::path::Path) -> u64 {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).expect("the file");
    let len = file.metadata().expect("its length").len() as usize;
    // SAFETY: as the data layer had it: a read-only shared map of an open file.
    let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0) };
    assert_ne!(ptr, libc::MAP_FAILED);
    // SAFETY: `len` bytes mapped above, unmapped below.
    let bytes = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) };
    let sum = bytes.iter().step_by(64).map(|&b| b as u64).sum();
    // SAFETY: unmaps what was mapped.
    unsafe { libc::munmap(ptr, len) };
    sum
}

fn file_map() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("bytes");
    std::fs::write(&path, (0..256u32 << 20).map(|i| (i * 31) as u8).collect::<Vec<u8>>()).expect("the file");
    let rounds = 10;
    let (hand, hand_sum) = seconds(|| (0..rounds).map(|_| sum_libc_map(&path)).sum());
    let (crate_s, crate_sum) = seconds(|| {
        (0..rounds)
            .map(|_| {
                let map = FileMap::open(&path).expect("the map");
                map.bytes(0, map.len()).iter().step_by(64).map(|&b| b as u64).sum::<u64>()
            })
            .sum()
    });
    assert_eq!(hand_sum, crate_sum, "the same bytes");
    println!(
        "file map, {rounds} × 256 MB mapped and read: libc {hand:.3} s, memmap2 {crate_s:.3} s: {:.2}×",
        hand / crate_s
    );
}

fn main() {
    for capacity in [16, 256, 4096] {
        lru(capacity);
    }
    decode();
    file_map();
}
