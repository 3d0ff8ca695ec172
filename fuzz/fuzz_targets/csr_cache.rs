//! A graph cache file, read for a fixed key: whatever its bytes, a graph
//! that checks out or none.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_engine::graph::csr_cache;

fuzz_target!(|data: &[u8]| {
    let path = tessera_fuzz::file("graph.csr", data);
    let key = tessera_fuzz::csr_key();
    if let Some(graph) = csr_cache::load(&path, &key) {
        let _ = graph.nodes();
        let _ = graph.edges();
    }
});
