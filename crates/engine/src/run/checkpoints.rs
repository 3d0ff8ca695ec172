//! A unit's saved training states (`units/<id>.resume/`), from which a
//! stopped unit continues. Each is a folder `step-<N>/` written whole under
//! a temporary name and renamed into place, its file list with sizes and
//! hashes (`complete.json`) written last: the newest folder whose files
//! match their list wins, a damaged one is skipped with a warning. The
//! folder sits beside the unit's own (which a rerun clears) and is removed
//! when the unit finishes. Every operation goes through the run folder's
//! [`Confined`] layer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::confined::Confined;
use crate::error::{bail, Context, Result};

/// How many saved states a unit keeps (the newest, and one before it in
/// case the newest is damaged).
const KEEP: usize = 2;

/// The format of `complete.json`.
const FORMAT: u32 = 1;

/// What `complete.json` says about one saved state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedInfo {
    /// The format of this file.
    pub format: u32,
    /// The optimizer steps the unit had taken.
    pub step: u64,
    /// What the unit was run from (its variant, Tessera's version): a state
    /// saved by other settings is not continued.
    pub fingerprint: String,
    /// When it was saved (RFC 3339).
    pub saved: String,
    /// Each file's size and FNV-1a hash.
    pub files: BTreeMap<String, FileCheck>,
}

/// A file's size and hash.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FileCheck {
    /// Its size in bytes.
    pub bytes: u64,
    /// Its FNV-1a 64-bit hash.
    pub fnv64: u64,
}

/// A saved state that checked out: its folder and what it says.
#[derive(Debug, Clone)]
pub struct Saved {
    /// Its folder (absolute, inside the run folder).
    pub dir: PathBuf,
    /// Its `complete.json`.
    pub info: SavedInfo,
}

/// The saved states of one unit.
#[derive(Debug, Clone)]
pub struct UnitCheckpoints {
    run: PathBuf,
    /// `units/<id>.resume`, relative to the run folder.
    dir: PathBuf,
}

impl UnitCheckpoints {
    /// Those of unit `id` of the run folder `run_dir`.
    pub fn of(run_dir: &Path, id: usize) -> Self {
        UnitCheckpoints { run: run_dir.to_path_buf(), dir: super::unit::unit_path(id).with_extension("resume") }
    }

    fn confined(&self) -> Confined {
        Confined::new(&self.run)
    }

    /// Saves a state: `files` (name, bytes), and what `write` puts into the
    /// folder it is given (new, empty, inside the run folder: libtorch's
    /// files, which it writes to a path); then the file list is written, the
    /// folder renamed into place, and older states pruned.
    pub fn save(
        &self,
        (step, fingerprint): (u64, &str),
        files: &[(&str, &[u8])],
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        let run = self.confined();
        if !run.exists(&self.dir) {
            // Marked as Tessera's: only such a folder is read back or removed.
            crate::owned::OwnedDir::create(&run.path(&self.dir)?, "a unit's saved training states")?;
        }
        let partial = self.dir.join(format!("partial-{}", std::process::id()));
        if run.exists(&partial) {
            run.remove_dir_all(&partial)?;
        }
        let dir = run.create_dir_all(&partial)?;
        for (name, bytes) in files {
            run.write_atomic(partial.join(name), bytes)?;
        }
        write(&dir).with_context(|| format!("saving the training state into {}", dir.display()))?;
        let info = SavedInfo {
            format: FORMAT,
            step,
            fingerprint: fingerprint.to_string(),
            saved: chrono::Local::now().to_rfc3339(),
            files: self.checks(&partial)?,
        };
        run.write_atomic(partial.join("complete.json"), &serde_json::to_vec_pretty(&info)?)?;
        let done = self.dir.join(format!("step-{step:012}"));
        if run.exists(&done) {
            run.remove_dir_all(&done)?;
        }
        run.rename(&partial, &done)?;
        self.prune()
    }

    /// The size and hash of each file in `folder`.
    fn checks(&self, folder: &Path) -> Result<BTreeMap<String, FileCheck>> {
        let run = self.confined();
        let mut files = BTreeMap::new();
        for name in run.names(folder)? {
            let bytes = run.read(folder.join(&name))?;
            let check = FileCheck { bytes: bytes.len() as u64, fnv64: fnv64(&bytes) };
            files.insert(name.to_string_lossy().into_owned(), check);
        }
        Ok(files)
    }

    /// The names of the complete states, newest first; none unless the
    /// folder is one Tessera created (a real folder with its marker).
    fn steps(&self) -> Vec<String> {
        if !self.confined().path(&self.dir).is_ok_and(|dir| crate::owned::is_owned(&dir)) {
            return Vec::new();
        }
        let mut names: Vec<String> = (self.confined().names(&self.dir).unwrap_or_default().into_iter())
            .filter_map(|n| n.into_string().ok())
            .filter(|n| n.starts_with("step-"))
            .collect();
        names.sort_unstable_by(|a, b| b.cmp(a));
        names
    }

    /// Removes all but the newest [`KEEP`] states.
    fn prune(&self) -> Result<()> {
        for old in self.steps().iter().skip(KEEP) {
            self.confined().remove_dir_all(self.dir.join(old))?;
        }
        Ok(())
    }

    /// The newest state whose files check out, saved from `fingerprint`; a
    /// damaged one, or one of other settings, is skipped with a warning.
    pub fn newest(&self, fingerprint: &str) -> Option<Saved> {
        for name in self.steps() {
            match self.verified(&name) {
                Ok(saved) if saved.info.fingerprint == fingerprint => return Some(saved),
                Ok(_) => log::warn!(
                    "{}: saved by other settings or another Tessera; not continued",
                    self.run.join(&self.dir).join(&name).display()
                ),
                Err(e) => log::warn!("{}: skipped: {e}", self.run.join(&self.dir).join(&name).display()),
            }
        }
        None
    }

    /// The newest complete state's list, unchecked (for `tessera status`).
    pub fn latest_info(&self) -> Option<SavedInfo> {
        let name = self.steps().into_iter().next()?;
        let bytes = self.confined().read(self.dir.join(name).join("complete.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The state `name` if every file matches its list.
    fn verified(&self, name: &str) -> Result<Saved> {
        let run = self.confined();
        let folder = self.dir.join(name);
        let bytes = run.read(folder.join("complete.json")).context("no complete.json (the save did not finish)")?;
        let info: SavedInfo = serde_json::from_slice(&bytes).context("complete.json is damaged")?;
        if info.format != FORMAT {
            bail!("format {} (this Tessera reads {FORMAT})", info.format);
        }
        let mut found = self.checks(&folder)?;
        found.remove("complete.json");
        if found != info.files {
            bail!("its files do not match complete.json (damaged or changed)");
        }
        Ok(Saved { dir: run.path(&folder)?, info })
    }

    /// The bytes of file `name` of a saved state.
    pub fn read(&self, saved: &Saved, name: &str) -> Result<Vec<u8>> {
        Ok(self.confined().read(saved.dir.join(name))?)
    }

    /// Removes every saved state (the unit finished): the folder, if it is
    /// one Tessera created; an error naming it otherwise.
    pub fn remove(&self) -> Result<()> {
        crate::owned::remove_owned(&self.confined().path(&self.dir)?)
    }
}

/// The FNV-1a 64-bit hash of `bytes`.
pub fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn save(store: &UnitCheckpoints, step: u64, content: &[u8]) {
        store.save((step, "f"), &[("state.bin", content)], |_| Ok(())).unwrap();
    }

    #[test]
    fn the_newest_complete_state_wins_and_two_are_kept() {
        let run = tempfile::tempdir().unwrap();
        let store = UnitCheckpoints::of(run.path(), 3);
        assert!(store.newest("f").is_none());
        for step in [10, 20, 30] {
            save(&store, step, &step.to_le_bytes());
        }
        assert_eq!(store.newest("f").unwrap().info.step, 30);
        assert_eq!(store.steps().len(), KEEP);
        assert!(store.newest("other settings").is_none());
        store.remove().unwrap();
        assert!(!run.path().join("units/00003.resume").exists());
    }

    #[test]
    fn a_folder_tessera_did_not_create_is_neither_read_nor_removed() {
        let run = tempfile::tempdir().unwrap();
        let store = UnitCheckpoints::of(run.path(), 2);
        save(&store, 10, b"ten");
        std::fs::remove_file(run.path().join("units/00002.resume/.tessera-owned")).unwrap();
        assert!(store.newest("f").is_none(), "not marked as Tessera's: not read");
        assert!(store.remove().is_err(), "nor removed");
        assert!(run.path().join("units/00002.resume/step-000000000010/state.bin").exists());
    }

    #[test]
    fn a_damaged_or_unfinished_state_is_skipped() {
        let run = tempfile::tempdir().unwrap();
        let store = UnitCheckpoints::of(run.path(), 0);
        save(&store, 10, b"ten");
        save(&store, 20, b"twenty");
        let newest = store.newest("f").unwrap().dir;
        std::fs::write(newest.join("state.bin"), b"twenty!").unwrap();
        assert_eq!(store.newest("f").unwrap().info.step, 10, "a changed file: the one before wins");
        std::fs::remove_file(newest.join("complete.json")).unwrap();
        assert_eq!(store.newest("f").unwrap().info.step, 10, "no list: not finished");
    }

    #[test]
    fn a_link_in_the_folder_is_not_followed() {
        let (run, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::create_dir_all(run.path().join("units")).unwrap();
        std::os::unix::fs::symlink(outside.path(), run.path().join("units/00001.resume")).unwrap();
        let store = UnitCheckpoints::of(run.path(), 1);
        assert!(store.save((5, "f"), &[("state.bin", b"x")], |_| Ok(())).is_err());
        assert!(store.newest("f").is_none());
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none(), "nothing written outside");
    }
}
