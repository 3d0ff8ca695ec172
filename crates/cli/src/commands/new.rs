//! `tessera new plugin`: a plugin crate that builds and loads as written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `tessera new plugin`: writes the crate and says what to do next.
pub(crate) fn new_plugin(
    name: &str,
    kind: tessera_engine::choice::PluginKind,
    out: Option<&Path>,
    sdk: Option<&Path>,
) -> ExitCode {
    let dir = out.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(name));
    let sdk = sdk.map(Path::to_path_buf).unwrap_or_else(crate::scaffold::default_sdk);
    let sdk = std::fs::canonicalize(&sdk).unwrap_or(sdk);
    match crate::scaffold::write(&dir, name, kind, &sdk) {
        Ok(files) => {
            for file in files {
                println!("wrote {}", file.display());
            }
            println!("next: cd {} && cargo test && cargo build --release && tessera run {name}.toml", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => super::user_error(e),
    }
}
