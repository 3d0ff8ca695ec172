//! An edge list (SNAP or with an `n m` header, directed or not, by the
//! first byte), parsed without the cache.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_engine::choice::{EdgeListFormat, GraphCache};

fuzz_target!(|data: &[u8]| {
    let Some((&how, rest)) = data.split_first() else { return };
    let path = tessera_fuzz::file("edges.txt", rest);
    let format = if how & 1 == 0 { EdgeListFormat::Snap } else { EdgeListFormat::Header };
    let _ = tessera_engine::graph::readers::read_edge_list(&path, format, how & 2 != 0, GraphCache::Never);
});
