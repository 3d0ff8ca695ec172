//! A WebDataset tar shard: indexed, then every sample decoded (`.npy`, PNG,
//! JPEG features; `.cls` and `.json` labels).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_engine::data::webdataset::TarShards;
use tessera_engine::data::ExampleSource;

fuzz_target!(|data: &[u8]| {
    let path = tessera_fuzz::file("shard.tar", data);
    let Ok(shards) = TarShards::open(&[path]) else { return };
    let mut out = Vec::new();
    for i in 0..shards.len().min(64) {
        out.clear();
        let _ = shards.read(i, &mut out);
    }
});
