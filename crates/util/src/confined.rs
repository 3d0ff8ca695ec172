//! The one layer every file operation under a run folder or a shard folder
//! goes through. A [`Confined`] folder takes paths relative to itself (or
//! absolute ones under it), made of plain names only: no `..`, no root, and
//! no part of the path may be a symbolic link. Files are opened with
//! `O_NOFOLLOW`, replaced by rename (which replaces a link rather than
//! following it) and folders are removed without following links, so
//! nothing done through it reads, writes or deletes outside the folder,
//! whatever was put there.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// Why a path was refused.
#[derive(Debug, thiserror::Error)]
pub enum Escape {
    /// An absolute path that is not under the folder.
    #[error("{path} is outside {root}: Tessera works only inside it")]
    Outside {
        /// The path asked for.
        path: PathBuf,
        /// The folder.
        root: PathBuf,
    },
    /// A `..`, root or prefix component.
    #[error("{path}: only plain names are allowed under {root} (no `..`, no absolute path)")]
    NotPlain {
        /// The path asked for.
        path: PathBuf,
        /// The folder.
        root: PathBuf,
    },
    /// A symbolic link on the way.
    #[error("{link} is a symbolic link: Tessera does not follow links inside {root}; remove it")]
    Link {
        /// The link.
        link: PathBuf,
        /// The folder.
        root: PathBuf,
    },
}

/// A folder Tessera works inside and never leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confined {
    root: PathBuf,
}

impl Confined {
    /// The folder `root` (it need not exist yet), made absolute against the
    /// current folder, so that the paths it hands out can be handed back.
    /// The root itself is taken as given (it is what the user named); only
    /// what is under it is checked.
    pub fn new(root: &Path) -> Confined {
        Confined { root: std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf()) }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `path` (relative, or absolute under the folder) checked: plain names
    /// only, and no existing part of it a symbolic link. The absolute path.
    pub fn path(&self, path: impl AsRef<Path>) -> Result<PathBuf, Escape> {
        let path = path.as_ref();
        let relative = self.relative(path)?;
        if !relative.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
            return Err(Escape::NotPlain { path: path.into(), root: self.root.clone() });
        }
        let mut at = self.root.clone();
        for name in relative.components().filter(|c| matches!(c, Component::Normal(_))) {
            at.push(name);
            match at.symlink_metadata() {
                Ok(m) if m.file_type().is_symlink() => return Err(Escape::Link { link: at, root: self.root.clone() }),
                Ok(_) => {}
                // Missing: the rest is not there either, so nothing to follow.
                Err(_) => break,
            }
        }
        Ok(self.root.join(relative))
    }

    fn relative<'a>(&self, path: &'a Path) -> Result<&'a Path, Escape> {
        match path.is_absolute() {
            true => path
                .strip_prefix(&self.root)
                .map_err(|_| Escape::Outside { path: path.into(), root: self.root.clone() }),
            false => Ok(path),
        }
    }

    /// Whether `path` exists (as a file or folder, not a link).
    pub fn exists(&self, path: impl AsRef<Path>) -> bool {
        self.path(path).is_ok_and(|p| p.symlink_metadata().is_ok())
    }

    /// Creates the folder `path` and its parents.
    pub fn create_dir_all(&self, path: impl AsRef<Path>) -> std::io::Result<PathBuf> {
        let path = self.path(path).map_err(escape)?;
        std::fs::create_dir_all(&path)?;
        // A link made in between is caught here rather than written through.
        self.path(&path).map_err(escape)
    }

    /// Opens `path` for reading, without following a link.
    pub fn open(&self, path: impl AsRef<Path>) -> std::io::Result<File> {
        let path = self.path(path).map_err(escape)?;
        OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path)
    }

    /// The bytes of `path`.
    pub fn read(&self, path: impl AsRef<Path>) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut self.open(path)?, &mut bytes)?;
        Ok(bytes)
    }

    /// Opens `path` for appending (created if missing), without following a link.
    pub fn append(&self, path: impl AsRef<Path>) -> std::io::Result<File> {
        let path = self.path(path).map_err(escape)?;
        OpenOptions::new().create(true).append(true).custom_flags(libc::O_NOFOLLOW).open(path)
    }

    /// Writes `bytes` to `path` atomically ([`crate::fs::write_atomic`]:
    /// a new temporary file beside it, then a rename over it, which replaces
    /// a link there rather than following it).
    pub fn write_atomic(&self, path: impl AsRef<Path>, bytes: &[u8]) -> std::io::Result<()> {
        crate::fs::write_atomic(&self.path(path).map_err(escape)?, bytes)
    }

    /// Moves `from` to `to`, both inside.
    pub fn rename(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::rename(self.path(from).map_err(escape)?, self.path(to).map_err(escape)?)
    }

    /// Removes the folder `path` and all in it; links in it are removed,
    /// never followed.
    pub fn remove_dir_all(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let path = self.path(path).map_err(escape)?;
        if path == self.root {
            return Err(std::io::Error::other(format!("{}: refusing to remove the folder itself", path.display())));
        }
        std::fs::remove_dir_all(path)
    }

    /// Removes the file `path` (a link there is removed, never followed).
    pub fn remove_file(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::remove_file(self.path(path).map_err(escape)?)
    }

    /// The names in folder `path`.
    pub fn names(&self, path: impl AsRef<Path>) -> std::io::Result<Vec<std::ffi::OsString>> {
        let path = self.path(path).map_err(escape)?;
        std::fs::read_dir(path)?.map(|e| e.map(|e| e.file_name())).collect()
    }
}

/// Whether `name` is one plain file name: not empty, no `/`, not `.` or `..`.
pub fn is_plain_name(name: &OsStr) -> bool {
    let mut parts = Path::new(name).components();
    matches!((parts.next(), parts.next()), (Some(Component::Normal(n)), None) if n == name)
}

fn escape(e: Escape) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> (tempfile::TempDir, Confined, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("run");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("precious.txt"), "mine").unwrap();
        (tmp, Confined::new(&root), outside)
    }

    #[test]
    fn dot_dot_and_foreign_absolute_paths_are_refused() {
        let (_tmp, run, outside) = folder();
        assert!(matches!(run.path("../outside/precious.txt"), Err(Escape::NotPlain { .. })));
        assert!(matches!(run.path("units/../../x"), Err(Escape::NotPlain { .. })));
        assert!(matches!(run.path(outside.join("precious.txt")), Err(Escape::Outside { .. })));
        assert_eq!(run.path(run.root().join("a/b")).unwrap(), run.root().join("a/b"));
    }

    #[test]
    fn a_link_anywhere_on_the_path_is_refused_and_nothing_outside_changes() {
        let (_tmp, run, outside) = folder();
        std::os::unix::fs::symlink(&outside, run.root().join("units")).unwrap();
        let err = run.write_atomic("units/precious.txt", b"overwritten").unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(run.remove_dir_all("units").is_err());
        assert!(run.append("units/precious.txt").is_err());
        assert!(run.read("units/precious.txt").is_err());
        assert_eq!(std::fs::read_to_string(outside.join("precious.txt")).unwrap(), "mine");
    }

    #[test]
    fn a_linked_file_is_replaced_by_write_and_never_followed_by_append() {
        let (_tmp, run, outside) = folder();
        std::os::unix::fs::symlink(outside.join("precious.txt"), run.root().join("unit.log")).unwrap();
        assert!(run.append("unit.log").is_err());
        assert!(run.open("unit.log").is_err());
        assert_eq!(std::fs::read_to_string(outside.join("precious.txt")).unwrap(), "mine");
    }

    #[test]
    fn removing_a_folder_removes_links_in_it_not_their_targets() {
        let (_tmp, run, outside) = folder();
        run.create_dir_all("units/00000").unwrap();
        std::os::unix::fs::symlink(&outside, run.root().join("units/00000/link")).unwrap();
        run.remove_dir_all("units").unwrap();
        assert!(!run.exists("units"));
        assert_eq!(std::fs::read_to_string(outside.join("precious.txt")).unwrap(), "mine");
    }

    #[test]
    fn a_relative_root_hands_out_paths_it_takes_back() {
        let run = Confined::new(Path::new("some/run"));
        assert!(run.root().is_absolute());
        let tables = run.path("tables").unwrap();
        assert_eq!(run.path(tables.join("a.csv")).unwrap(), run.root().join("tables/a.csv"));
    }

    #[test]
    fn plain_names() {
        assert!(is_plain_name(OsStr::new("shard-00000.bin")));
        for bad in ["", ".", "..", "a/b", "/a", "../a"] {
            assert!(!is_plain_name(OsStr::new(bad)), "{bad}");
        }
    }
}
