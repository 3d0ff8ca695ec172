//! MNIST-style IDX images and labels, whole and example by example.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_engine::data::examples::IdxFiles;
use tessera_engine::data::ExampleSource;

fuzz_target!(|data: &[u8]| {
    let (images, labels) = tessera_fuzz::split(data);
    let images = tessera_fuzz::file("images.idx", images);
    let labels = tessera_fuzz::file("labels.idx", labels);
    let _ = tessera_engine::data::readers::idx(&images, &labels);
    if let Ok(source) = IdxFiles::open(&images, &labels) {
        let mut out = Vec::new();
        for i in 0..source.len().min(64) {
            out.clear();
            let _ = source.read(i, &mut out);
        }
    }
});
