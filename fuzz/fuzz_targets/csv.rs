//! A CSV data set, its label column chosen by the first byte.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&column, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let label_column = column as i8 as isize;
    let _ = tessera_engine::data::readers::csv_text(text, label_column, "fuzz.csv");
});
