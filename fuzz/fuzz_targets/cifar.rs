//! A CIFAR binary batch (1 or 2 label bytes a record, by the first byte).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let path = tessera_fuzz::file("batch.bin", rest);
    let _ = tessera_engine::data::readers::cifar(&[&path], 1 + (which & 1) as usize);
});
