//! A `.npy` file: header and values, and as a data set's features (with
//! labels) read example by example.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_engine::data::examples::NpyFile;
use tessera_engine::data::readers;
use tessera_engine::data::ExampleSource;

fuzz_target!(|data: &[u8]| {
    let _ = readers::npy_bytes(data, std::path::Path::new("fuzz.npy"));
    let (features, labels) = tessera_fuzz::split(data);
    let x = tessera_fuzz::file("x.npy", features);
    let y = tessera_fuzz::file("y.npy", labels);
    if let Ok(source) = NpyFile::open(&x, &y) {
        let mut out = Vec::new();
        for i in 0..source.len().min(64) {
            out.clear();
            let _ = source.read(i, &mut out);
        }
    }
});
