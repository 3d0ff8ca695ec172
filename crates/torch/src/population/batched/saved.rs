//! A batch's state saved between optimizer steps (every
//! `experiment.checkpoint_minutes`, and when a stop is asked for), so that a
//! stopped unit continues its batch where it stood, bit for bit on the CPU.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

use super::fit::BatchedFit;
use super::TakenMember;
use crate::error::{bail, Result};
use crate::population::group::Group;
use crate::train::Stopped;

/// Between two optimizer steps of `fit`: the group's state with the batch's
/// (the members `taken` so far) saved when the interval has passed or a stop
/// is asked for; then, if asked, the stop (with the step saved).
pub(super) fn at_boundary(
    fit: &BatchedFit,
    group: &Group,
    taken: &RefCell<Vec<Vec<TakenMember>>>,
    cancel: &AtomicBool,
) -> Result<()> {
    let stopping = cancel.load(Ordering::Relaxed);
    let Some(saving) = group.saving.as_ref() else {
        if stopping {
            bail!("cancelled: a batch of population runs without a saved state starts over when resumed");
        }
        return Ok(());
    };
    if !stopping && !saving.due() {
        return Ok(());
    }
    let mut state = group.state(None)?;
    state.batch = Some(fit.state(taken.borrow().clone())?);
    let saved = saving.save(&state, &mut |dir| fit.write_files(dir));
    if stopping {
        return Err(Stopped { step: state.steps(), saved }.into());
    }
    Ok(())
}
