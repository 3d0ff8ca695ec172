//! A manifest's text: parsed, its variants resolved, their settings checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_engine::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(manifest) = Manifest::parse(std::path::Path::new("fuzz.toml"), text.to_string()) else { return };
    let Ok(variants) = manifest.variants(&[]) else { return };
    for variant in variants.iter().take(64) {
        let _ = tessera_engine::validate::settings(&variant.settings, std::path::Path::new("."));
    }
});
