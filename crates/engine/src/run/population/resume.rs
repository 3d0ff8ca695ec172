//! A population unit's saved states: the group's state (see
//! `tessera_torch::population::GroupState`) CBOR-encoded beside the files
//! libtorch writes, in the unit's [`crate::run::checkpoints::UnitCheckpoints`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::population::{GroupState, GroupStore};
use crate::run::train::resume::{Resuming, STATE};

/// The group's state, saved where the unit's saved states go.
pub(in crate::run) struct PopulationStore(pub(in crate::run) Resuming);

impl GroupStore for PopulationStore {
    fn every(&self) -> Option<Duration> {
        self.0.every
    }

    fn save(
        &self,
        state: &GroupState,
        write: &mut dyn FnMut(&Path) -> tessera_torch::Result<()>,
    ) -> tessera_torch::Result<()> {
        let mut bytes = Vec::new();
        ciborium::into_writer(state, &mut bytes)
            .map_err(|e| invalid(format!("encoding the population's state: {e}")))?;
        let files: [(&str, &[u8]); 1] = [(STATE, &bytes)];
        let saved = self.0.store.save((state.steps(), &self.0.fingerprint), &files, |dir| Ok(write(dir)?));
        saved.map_err(|e| invalid(e.chain()))
    }

    fn load(&self) -> tessera_torch::Result<Option<(GroupState, PathBuf)>> {
        let Some(saved) = self.0.store.newest(&self.0.fingerprint) else { return Ok(None) };
        let bytes = self.0.store.read(&saved, STATE).map_err(|e| invalid(e.chain()))?;
        let state: GroupState = ciborium::from_reader(bytes.as_slice())
            .map_err(|e| invalid(format!("{}: not a population's state: {e}", saved.dir.join(STATE).display())))?;
        Ok(Some((state, saved.dir)))
    }
}

/// The engine's error as the training layer's.
fn invalid(message: String) -> tessera_torch::TorchError {
    tessera_torch::TorchError::Invalid(message)
}
