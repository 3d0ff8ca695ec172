//! Folders Tessera creates, claims atomically and may remove. Tessera removes
//! only a folder it created itself and marked as its own: a folder that
//! existed before is never written into or deleted, whatever a manifest says.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{bail, Context, Result};

/// The file that marks a folder as Tessera's: written by [`OwnedDir::create`]
/// and [`claim_run_dir`], checked before any removal.
pub const MARKER: &str = ".tessera-owned";

/// A folder this process created and marked, with the parents it had to
/// create for it.
#[derive(Debug)]
pub struct OwnedDir {
    path: PathBuf,
    created_parents: Vec<PathBuf>,
}

impl OwnedDir {
    /// Creates `path` (its parents as needed) and marks it; an error when it
    /// already exists, whoever made it.
    pub fn create(path: &Path, purpose: &str) -> Result<Self> {
        let created_parents: Vec<PathBuf> = path
            .ancestors()
            .skip(1)
            .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
            .map(Path::to_path_buf)
            .collect();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        match std::fs::create_dir(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
                "{} already exists; Tessera writes {purpose} only into a folder it creates, and never into or over one it did not",
                path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
        write_marker(path, purpose)?;
        Ok(OwnedDir { path: path.to_path_buf(), created_parents })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the folder, if it still carries the marker this process
    /// wrote, then the parents it created, while they are empty.
    pub fn remove(self) -> Result<()> {
        if !is_owned(&self.path) {
            bail!("{} no longer carries Tessera's {MARKER}: left in place", self.path.display());
        }
        std::fs::remove_dir_all(&self.path).with_context(|| format!("removing {}", self.path.display()))?;
        for parent in &self.created_parents {
            // `remove_dir` removes only an empty folder: anything put there since stays.
            if std::fs::remove_dir(parent).is_err() {
                break;
            }
        }
        Ok(())
    }
}

fn write_marker(dir: &Path, purpose: &str) -> Result<()> {
    let path = dir.join(MARKER);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("claiming {}: another Tessera run holds it", dir.display()))?;
    writeln!(file, "created by tessera {} (process {}) for {purpose}", env!("CARGO_PKG_VERSION"), std::process::id())?;
    Ok(())
}

/// Whether `dir` is a real folder (not a link) that carries the marker.
pub fn is_owned(dir: &Path) -> bool {
    let real_dir = dir.symlink_metadata().is_ok_and(|m| m.is_dir());
    real_dir && dir.join(MARKER).symlink_metadata().is_ok_and(|m| m.is_file())
}

/// Removes `dir` if it is a folder Tessera marked as its own (a unit's
/// leftovers, say); an error naming it otherwise. Nothing there is fine.
pub fn remove_owned(dir: &Path) -> Result<()> {
    if dir.symlink_metadata().is_err() {
        return Ok(());
    }
    if !is_owned(dir) {
        bail!("{} does not carry Tessera's {MARKER}: left in place", dir.display());
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
}

/// Claims `out` as a run folder: created if missing, or taken if it is an
/// empty folder. The claim is atomic (the marker is created with
/// `create_new`), so of two runs started on one `--out`, one wins and the
/// other is refused.
pub fn claim_run_dir(out: &Path) -> Result<PathBuf> {
    if out.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
        bail!("--out {}: it exists and is not a folder (a file or a link); choose another --out", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating the run folder {} (--out)", out.display()))?;
    write_marker(out, "a run").map_err(|_| {
        crate::error::invalid!(
            "{} is another run's folder; choose another --out (runs are never overwritten)",
            out.display()
        )
    })?;
    let others = std::fs::read_dir(out)?.filter_map(|e| e.ok()).any(|e| e.file_name() != MARKER);
    if others {
        std::fs::remove_file(out.join(MARKER))?;
        bail!("{} already holds files; choose another --out or remove it (runs are never overwritten)", out.display());
    }
    Ok(out.to_path_buf())
}

/// Creates a new folder `base`, or `base-2`, `base-3`, … if taken: never one
/// that exists.
pub fn create_fresh_dir(base: &Path) -> Result<PathBuf> {
    if let Some(parent) = base.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    for n in 1.. {
        let dir = if n == 1 { base.to_path_buf() } else { PathBuf::from(format!("{}-{n}", base.display())) };
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                write_marker(&dir, "a run")?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    unreachable!("some suffix is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_folder_is_never_taken_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("mydata");
        std::fs::create_dir(&user).unwrap();
        std::fs::write(user.join("precious.txt"), "keep").unwrap();
        let err = OwnedDir::create(&user, "shards").unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(std::fs::read_to_string(user.join("precious.txt")).unwrap(), "keep");
    }

    #[test]
    fn an_owned_folder_is_removed_only_while_marked() {
        let dir = tempfile::tempdir().unwrap();
        let owned = OwnedDir::create(&dir.path().join("a/shards"), "shards").unwrap();
        std::fs::write(owned.path().join("x"), "1").unwrap();
        let path = owned.path().to_path_buf();
        owned.remove().unwrap();
        assert!(!dir.path().join("a").exists(), "the parent it created goes too");
        let owned = OwnedDir::create(&path, "shards").unwrap();
        std::fs::remove_file(path.join(MARKER)).unwrap();
        assert!(owned.remove().is_err());
        assert!(path.exists(), "an unmarked folder stays");
    }

    #[test]
    fn a_run_folder_is_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        claim_run_dir(&out).unwrap();
        assert!(claim_run_dir(&out).unwrap_err().to_string().contains("another run's folder"));
        let full = dir.path().join("full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("notes.txt"), "mine").unwrap();
        assert!(claim_run_dir(&full).unwrap_err().to_string().contains("already holds files"));
        assert!(!full.join(MARKER).exists(), "a refused claim leaves nothing behind");
        let a = create_fresh_dir(&dir.path().join("runs/x")).unwrap();
        let b = create_fresh_dir(&dir.path().join("runs/x")).unwrap();
        assert_ne!(a, b);
    }
}
