//! A shard folder: `index.json` and one shard file, opened, each block and
//! record read, then the whole set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_engine::storage::ShardSet;

fuzz_target!(|data: &[u8]| {
    let (index, shard) = tessera_fuzz::split(data);
    tessera_fuzz::file("set/index.json", index);
    tessera_fuzz::file("set/shard-00000.bin", shard);
    let Ok(set) = ShardSet::open(&tessera_fuzz::scratch().join("set")) else { return };
    for b in 0..(set.index.blocks.len() as u64).min(16) {
        let _ = set.read_block(b);
    }
    for i in 0..set.index.examples.min(16) {
        if let Ok(record) = set.read_record(i) {
            let mut features = Vec::new();
            set.decode(&record, &mut features);
        }
    }
    let _ = set.read_all();
});
