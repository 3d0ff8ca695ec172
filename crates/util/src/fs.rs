//! Writing files so that a reader never sees half of one, and naming them
//! after user-given names.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a new temporary file beside it,
/// synced, then renamed over it (which replaces a link there rather than
/// following it). The error names the path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let named = |what: &str, shown: &Path, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("{what} {}: {e}", shown.display()))
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| named("writing into", dir, e))?;
    tmp.write_all(bytes).map_err(|e| named("writing", path, e))?;
    tmp.as_file().sync_all().map_err(|e| named("writing", path, e))?;
    tmp.persist(path).map_err(|e| named("replacing", path, e.error))?;
    Ok(())
}

/// `name` as one ordinary path component: letters, digits, `-`, `_` and `.`
/// kept, anything else `_`; never `.`, `..` or a hidden file.
pub fn file_stem_safe(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' })
        .collect();
    if stem.is_empty() || stem.starts_with('.') {
        format!("_{stem}")
    } else {
        stem
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_one_plain_component() {
        assert_eq!(file_stem_safe("a/b c"), "a_b_c");
        assert_eq!(file_stem_safe(".."), "_..");
        assert_eq!(file_stem_safe(""), "_");
        assert_eq!(file_stem_safe("run@1[x=2]"), "run_1_x_2_");
    }

    #[test]
    fn an_atomic_write_replaces_a_link_instead_of_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"theirs").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        write_atomic(&link, b"ours").unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"theirs");
        assert_eq!(std::fs::read(&link).unwrap(), b"ours");
        assert!(!std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    }
}
