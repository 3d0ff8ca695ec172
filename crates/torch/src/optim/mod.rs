//! A libtorch optimizer whose state can be saved and loaded: the first piece
//! of resumable training (issue 38). tch's `nn::Optimizer` wraps the same
//! C++ optimizers but hides their state (momentum buffers, Adam's moments
//! and step counts); this one owns the `torch::optim::Optimizer` pointer
//! and reaches its `save`/`load` through `state.cpp`. It runs the same C++
//! `step` as tch's, so it gives the same bits (a test checks it), and a run
//! stopped, saved and loaded continues as if it had never stopped.
//!
//! The training loop (`train::fit`) steps with it; saving its state at a
//! unit's checkpoints is the next step.

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;

use tch::Tensor;

use crate::error::{bail, Result};

mod members;
pub use members::StackedOptimizer;

extern "C" {
    fn tessera_optimizer_save(optimizer: *mut c_void, path: *const c_char) -> *mut c_char;
    fn tessera_optimizer_load(optimizer: *mut c_void, path: *const c_char) -> *mut c_char;
    fn tessera_optimizer_free_error(error: *mut c_char);
    fn tessera_cpu_rng_state_size() -> usize;
    fn tessera_cpu_rng_state_get(out: *mut u8, len: usize) -> *mut c_char;
    fn tessera_cpu_rng_state_set(bytes: *const u8, len: usize) -> *mut c_char;
}

/// The state of libtorch's default CPU generator (dropout and anything else
/// that draws from libtorch's global stream), as bytes.
pub fn cpu_rng_state() -> Result<Vec<u8>> {
    // SAFETY: a plain query of libtorch's default generator.
    let mut bytes = vec![0u8; unsafe { tessera_cpu_rng_state_size() }];
    // SAFETY: `bytes` has the length passed.
    checked(unsafe { tessera_cpu_rng_state_get(bytes.as_mut_ptr(), bytes.len()) }, "generator state")?;
    Ok(bytes)
}

/// Restores the generator state [`cpu_rng_state`] returned.
pub fn set_cpu_rng_state(bytes: &[u8]) -> Result<()> {
    // SAFETY: `bytes` is live for the call and has the length passed.
    checked(unsafe { tessera_cpu_rng_state_set(bytes.as_ptr(), bytes.len()) }, "generator state")
}

/// Which update rule, with its settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// SGD with momentum and weight decay (no dampening, not Nesterov).
    Sgd {
        /// The momentum.
        momentum: f64,
        /// The L2 weight decay.
        weight_decay: f64,
    },
    /// Adam with libtorch's default betas and epsilon.
    Adam {
        /// The L2 weight decay.
        weight_decay: f64,
    },
    /// AdamW (decoupled weight decay) with libtorch's default betas and epsilon.
    AdamW {
        /// The decoupled weight decay.
        weight_decay: f64,
    },
}

/// A libtorch optimizer over some tensors, its state savable.
pub struct SavableOptimizer {
    raw: *mut torch_sys::C_optimizer,
}

impl SavableOptimizer {
    /// An optimizer of `rule` at learning rate `lr` over `params` (in group 0).
    pub fn new(rule: Rule, lr: f64, params: &[Tensor]) -> Result<SavableOptimizer> {
        // SAFETY: plain constructors of torch-sys; errors are read back below.
        let raw = unsafe {
            match rule {
                Rule::Sgd { momentum, weight_decay } => torch_sys::ato_sgd(lr, momentum, 0.0, weight_decay, 0),
                Rule::Adam { weight_decay } => torch_sys::ato_adam(lr, 0.9, 0.999, weight_decay, 1e-8, false),
                Rule::AdamW { weight_decay } => torch_sys::ato_adamw(lr, 0.9, 0.999, weight_decay, 1e-8, false),
            }
        };
        last_error()?;
        let optimizer = SavableOptimizer { raw };
        for p in params {
            // SAFETY: the optimizer and the tensor are live; libtorch keeps its own handle of the tensor.
            unsafe { torch_sys::ato_add_parameters(optimizer.raw, p.as_ptr() as *mut _, 0) };
            last_error()?;
        }
        Ok(optimizer)
    }

    /// Sets the learning rate of every parameter.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        // SAFETY: the optimizer is live.
        unsafe { torch_sys::ato_set_learning_rate(self.raw, lr) };
        last_error()
    }

    /// Clears the parameters' gradients.
    pub fn zero_grad(&mut self) -> Result<()> {
        // SAFETY: the optimizer is live.
        unsafe { torch_sys::ato_zero_grad(self.raw) };
        last_error()
    }

    /// One update from the parameters' gradients.
    pub fn step(&mut self) -> Result<()> {
        // SAFETY: the optimizer is live.
        unsafe { torch_sys::ato_step(self.raw) };
        last_error()
    }

    /// Writes the optimizer's state (libtorch's archive format) to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let path = c_path(path)?;
        // SAFETY: the optimizer is live and `path` a NUL-terminated string.
        checked(unsafe { tessera_optimizer_save(self.raw.cast(), path.as_ptr()) }, "optimizer state")
    }

    /// Reads the state [`SavableOptimizer::save`] wrote: the optimizer must
    /// have the same rule and parameters, in the same order.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let path = c_path(path)?;
        // SAFETY: as in `save`.
        checked(unsafe { tessera_optimizer_load(self.raw.cast(), path.as_ptr()) }, "optimizer state")
    }
}

impl Drop for SavableOptimizer {
    fn drop(&mut self) {
        // SAFETY: the pointer came from ato_sgd/ato_adam and is freed once.
        unsafe { torch_sys::ato_free(self.raw) };
    }
}

fn c_path(path: &Path) -> Result<CString> {
    match CString::new(path.as_os_str().as_encoded_bytes()) {
        Ok(c) => Ok(c),
        Err(_) => bail!("{}: a path with a NUL byte", path.display()),
    }
}

/// An error `state.cpp` returned, as this crate's error.
fn checked(error: *mut c_char, what: &str) -> Result<()> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a NUL-terminated string state.cpp allocated; freed once here.
    let text = unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned();
    unsafe { tessera_optimizer_free_error(error) };
    bail!("{what}: {text}")
}

/// torch-sys's last error, if a call set one.
fn last_error() -> Result<()> {
    // SAFETY: torch-sys's error slot; the string it returns is ours to free.
    let error = unsafe { torch_sys::get_and_reset_last_err() };
    if error.is_null() {
        return Ok(());
    }
    let text = unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned();
    unsafe { libc_free(error.cast()) };
    bail!("libtorch: {text}")
}

extern "C" {
    #[link_name = "free"]
    fn libc_free(ptr: *mut c_void);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::OptimizerConfig;
    use tch::{Device, Kind};

    /// A least-squares problem and its weights, from a seed of their own
    /// (not libtorch's global generator, which tests running at once share).
    fn problem() -> (Tensor, Tensor, Tensor) {
        let mut rng = tessera_sdk::SeedRng::new(3);
        let mut draw = |rows: i64, cols: i64| {
            let v: Vec<f32> = (0..rows * cols).map(|_| rng.next_f64() as f32 - 0.5).collect();
            Tensor::from_slice(&v).reshape([rows, cols])
        };
        let (x, y, w) = (draw(64, 8), draw(64, 2), draw(8, 2));
        (x, y, w.set_requires_grad(true))
    }

    fn loss(x: &Tensor, y: &Tensor, w: &Tensor) -> Tensor {
        (x.matmul(w) - y).square().mean(Kind::Float)
    }

    fn steps(opt: &mut SavableOptimizer, (x, y, w): (&Tensor, &Tensor, &Tensor), n: usize) {
        for _ in 0..n {
            opt.zero_grad().unwrap();
            loss(x, y, w).backward();
            opt.step().unwrap();
        }
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(&t.detach().flatten(0, -1)).unwrap()
    }

    #[test]
    fn a_run_saved_and_loaded_halfway_ends_with_the_uninterrupted_bits() {
        for rule in [Rule::Sgd { momentum: 0.9, weight_decay: 1e-4 }, Rule::Adam { weight_decay: 0.0 }] {
            let (x, y, w) = problem();
            let mut opt = SavableOptimizer::new(rule, 0.05, &[w.shallow_clone()]).unwrap();
            steps(&mut opt, (&x, &y, &w), 10);
            let whole = values(&w);

            let (x, y, w) = problem();
            let mut opt = SavableOptimizer::new(rule, 0.05, &[w.shallow_clone()]).unwrap();
            steps(&mut opt, (&x, &y, &w), 5);
            let dir = tempfile::tempdir().unwrap();
            opt.save(&dir.path().join("optimizer.pt")).unwrap();
            let halfway = w.detach().copy().set_requires_grad(true);
            drop(opt);
            let mut resumed = SavableOptimizer::new(rule, 0.05, &[halfway.shallow_clone()]).unwrap();
            resumed.load(&dir.path().join("optimizer.pt")).unwrap();
            steps(&mut resumed, (&x, &y, &halfway), 5);
            assert_eq!(values(&halfway), whole, "{rule:?}: resumed differs");

            // Without the state the momentum restarts, and the bits differ.
            let (x, y, w) = problem();
            let mut opt = SavableOptimizer::new(rule, 0.05, &[w.shallow_clone()]).unwrap();
            steps(&mut opt, (&x, &y, &w), 5);
            let mut fresh = SavableOptimizer::new(rule, 0.05, &[w.shallow_clone()]).unwrap();
            steps(&mut fresh, (&x, &y, &w), 5);
            assert_ne!(values(&w), whole, "{rule:?}: the state made no difference");
        }
    }

    #[test]
    fn it_steps_exactly_as_tch_s_optimizer_does() {
        let (x, y, w) = problem();
        let mut ours =
            SavableOptimizer::new(Rule::Sgd { momentum: 0.9, weight_decay: 1e-4 }, 0.05, &[w.shallow_clone()]).unwrap();
        steps(&mut ours, (&x, &y, &w), 7);
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let (x, y, w0) = problem();
        let theirs_w = vs.root().var_copy("w", &w0.detach());
        let sgd = tch::nn::Sgd { momentum: 0.9, dampening: 0.0, wd: 1e-4, nesterov: false };
        let mut theirs = sgd.build(&vs, 0.05).unwrap();
        for _ in 0..7 {
            theirs.zero_grad();
            loss(&x, &y, &theirs_w).backward();
            theirs.step();
        }
        assert_eq!(values(&w), values(&theirs_w));
    }

    #[test]
    fn the_generator_state_restored_draws_the_same_numbers_again() {
        // Other tests draw from the same global generator at once: a draw of
        // theirs in between is a reason to try again, not a failure.
        let again = (0..5).any(|_| {
            let saved = cpu_rng_state().unwrap();
            let first = values(&Tensor::rand([8], (tch::Kind::Float, Device::Cpu)));
            set_cpu_rng_state(&saved).unwrap();
            values(&Tensor::rand([8], (tch::Kind::Float, Device::Cpu))) == first
        });
        assert!(again, "restored five times, never the same draws");
        assert!(set_cpu_rng_state(&cpu_rng_state().unwrap()[..10]).is_err(), "a cut state is refused");
    }

    #[test]
    fn a_file_that_is_not_a_state_is_an_error() {
        let (_, _, w) = problem();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.pt"), b"not an archive").unwrap();
        let mut opt = SavableOptimizer::new(Rule::Adam { weight_decay: 0.0 }, 0.01, &[w]).unwrap();
        let e = opt.load(&dir.path().join("bad.pt")).unwrap_err();
        assert!(e.to_string().contains("optimizer state"), "{e}");
    }
}
