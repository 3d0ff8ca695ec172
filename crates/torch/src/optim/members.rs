//! One optimizer over tensors stacked on a leading member axis (a batch of
//! runs trained as one model), its members at their own learning rates.
//!
//! Where the members share a learning rate it is libtorch's own optimizer
//! over the stacked tensors ([`SavableOptimizer`]), bit for bit as before.
//! Where they do not (a learning-rate grid trained as one batch), libtorch's
//! SGD, Adam and AdamW updates spelt out element by element, each member's
//! rows scaled by its own rate: each member's update is the one it takes
//! alone, up to floating-point rounding (a fused multiply-add or not).

use std::ffi::c_void;
use std::path::Path;

use tch::{Kind, Tensor};

use super::{Rule, SavableOptimizer};
use crate::error::{bail, Result};

extern "C" {
    fn tessera_grad_reset(tensor: *mut c_void);
}

/// Adam's and AdamW's betas and epsilon: libtorch's defaults, as
/// [`SavableOptimizer`] builds them.
const BETAS: (f64, f64) = (0.9, 0.999);
const EPS: f64 = 1e-8;

/// The optimizer of a batch of members, with each member's base learning rate.
pub struct StackedOptimizer {
    update: Update,
    /// Each member's base learning rate, which a schedule scales at each step.
    rates: Vec<f64>,
}

/// How a batch's members are updated.
enum Update {
    /// One learning rate for every member: libtorch's optimizer.
    Shared(SavableOptimizer),
    /// A learning rate per member.
    PerMember(MemberRates),
}

impl StackedOptimizer {
    /// An optimizer of `rule` over `params` (each stacked on a leading axis
    /// of `rates.len()` members, as whole rows per member), member `k` at
    /// base learning rate `rates[k]`.
    pub fn new(rule: Rule, rates: &[f64], params: &[Tensor]) -> Result<Self> {
        let Some(&first) = rates.first() else { bail!("an optimizer of no members") };
        let update = match rates.iter().all(|&lr| lr == first) {
            true => Update::Shared(SavableOptimizer::new(rule, first, params)?),
            false => Update::PerMember(MemberRates::new(rule, rates.len() as i64, params)?),
        };
        Ok(StackedOptimizer { update, rates: rates.to_vec() })
    }

    /// One update from the gradients, each member at `scheduled` of its
    /// base learning rate (the schedule's rate at this step).
    pub fn step(&mut self, scheduled: impl Fn(f64) -> f64) -> Result<()> {
        match &mut self.update {
            Update::Shared(optimizer) => {
                optimizer.set_lr(scheduled(self.rates[0]))?;
                optimizer.step()
            }
            Update::PerMember(optimizer) => {
                optimizer.step(&self.rates.iter().map(|&base| scheduled(base)).collect::<Vec<_>>())
            }
        }
    }

    /// Clears the parameters' gradients.
    pub fn zero_grad(&mut self) -> Result<()> {
        match &mut self.update {
            Update::Shared(optimizer) => optimizer.zero_grad(),
            Update::PerMember(optimizer) => {
                optimizer.zero_grad();
                Ok(())
            }
        }
    }

    /// Whether every member steps at its own rate (the rates differ).
    pub fn per_member(&self) -> bool {
        matches!(self.update, Update::PerMember(_))
    }

    /// Writes the optimizer's state to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        match &self.update {
            Update::Shared(optimizer) => optimizer.save(path),
            Update::PerMember(optimizer) => optimizer.save(path),
        }
    }

    /// Reads the state [`StackedOptimizer::save`] wrote, of an optimizer
    /// made as this one was.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        match &mut self.update {
            Update::Shared(optimizer) => optimizer.load(path),
            Update::PerMember(optimizer) => optimizer.load(path),
        }
    }
}

/// libtorch's update rules with a learning rate per member: each parameter
/// seen as `[members, rows]`, its state alike.
struct MemberRates {
    rule: Rule,
    members: i64,
    params: Vec<Tensor>,
    /// Per parameter: SGD's momentum buffer (made at the first step, as
    /// libtorch makes it), or Adam's two moments.
    state: Vec<Vec<Tensor>>,
    /// Updates taken (Adam's bias correction counts them).
    steps: i64,
}

impl MemberRates {
    /// `rule` over `params` of `members` members each.
    fn new(rule: Rule, members: i64, params: &[Tensor]) -> Result<Self> {
        for p in params {
            if p.size().first().is_none_or(|rows| rows % members != 0) || !p.is_contiguous() {
                bail!("a stacked tensor of shape {:?} is not {members} members' contiguous rows", p.size());
            }
        }
        let params = params.iter().map(Tensor::shallow_clone).collect();
        Ok(MemberRates { rule, members, params, state: Vec::new(), steps: 0 })
    }

    /// Drops the gradients (as libtorch's `zero_grad` does: the next
    /// backward pass writes them rather than adding to zeros).
    fn zero_grad(&mut self) {
        for p in &self.params {
            // SAFETY: `p` is a live tensor handle (tch's `C_tensor` is an
            // `at::Tensor *`); the call only resets its gradient.
            unsafe { tessera_grad_reset(p.as_ptr() as *mut c_void) };
        }
    }

    /// `t` as `[members, rows]`.
    fn by_member(&self, t: &Tensor) -> Tensor {
        t.reshape([self.members, -1])
    }

    /// `values` (one per member) as a `[members, 1]` column on `like`'s device.
    fn column(values: impl Iterator<Item = f64>, like: &Tensor) -> Tensor {
        let values: Vec<f32> = values.map(|v| v as f32).collect();
        Tensor::from_slice(&values).to(like.device()).unsqueeze(1)
    }

    /// One update, member `k` at `lrs[k]`.
    fn step(&mut self, lrs: &[f64]) -> Result<()> {
        if lrs.len() as i64 != self.members {
            bail!("{} learning rates for {} members", lrs.len(), self.members);
        }
        self.steps += 1;
        if self.state.is_empty() {
            self.state = self.fresh_state();
        }
        let Some(first) = self.params.first() else { return Ok(()) };
        let rates = self.rates(lrs, first);
        tch::no_grad(|| {
            for i in 0..self.params.len() {
                let grad = self.params[i].grad();
                if grad.defined() {
                    self.update(i, &grad, &rates);
                }
            }
        });
        Ok(())
    }

    /// This step's per-member columns on the parameters' device (made once
    /// for every parameter): what scales each member's update (−lr for SGD,
    /// −lr over Adam's first bias correction) and AdamW's decay factor
    /// (1 − lr · weight decay).
    fn rates(&self, lrs: &[f64], like: &Tensor) -> StepRates {
        let column = |values: Vec<f64>| Self::column(values.into_iter(), like);
        match self.rule {
            Rule::Sgd { .. } => StepRates { scale: column(lrs.iter().map(|lr| -lr).collect()), decay: None },
            Rule::Adam { .. } | Rule::AdamW { .. } => {
                let corrected = 1.0 - BETAS.0.powi(self.steps as i32);
                let scale = column(lrs.iter().map(|lr| -lr / corrected).collect());
                let decay = match self.rule {
                    Rule::AdamW { weight_decay } => {
                        Some(column(lrs.iter().map(|lr| 1.0 - lr * weight_decay).collect()))
                    }
                    _ => None,
                };
                StepRates { scale, decay }
            }
        }
    }

    /// The state before the first step: Adam's moments at zero; SGD's
    /// buffers none yet.
    fn fresh_state(&self) -> Vec<Vec<Tensor>> {
        let zeros = |p: &Tensor| self.by_member(&p.zeros_like());
        match self.rule {
            Rule::Sgd { .. } => self.params.iter().map(|_| Vec::new()).collect(),
            Rule::Adam { .. } | Rule::AdamW { .. } => self.params.iter().map(|p| vec![zeros(p), zeros(p)]).collect(),
        }
    }

    /// Parameter `i`'s update from its gradient `grad`.
    fn update(&mut self, i: usize, grad: &Tensor, rates: &StepRates) {
        let (mut p, grad) = (self.by_member(&self.params[i]), self.by_member(grad));
        match self.rule {
            Rule::Sgd { momentum, weight_decay } => {
                let direction = decayed(&grad, &p, weight_decay);
                let direction = self.momentum(i, direction, momentum);
                let _ = p.addcmul_(&direction, &rates.scale);
            }
            Rule::Adam { weight_decay } => {
                let grad = decayed(&grad, &p, weight_decay);
                self.adam(i, &mut p, &grad, &rates.scale);
            }
            Rule::AdamW { .. } => {
                if let Some(decay) = &rates.decay {
                    let _ = p.g_mul_(decay);
                }
                self.adam(i, &mut p, &grad, &rates.scale);
            }
        }
    }

    /// SGD's momentum buffer of parameter `i` after `direction` (the
    /// direction itself at the first step, or without momentum).
    fn momentum(&mut self, i: usize, direction: Tensor, momentum: f64) -> Tensor {
        if momentum == 0.0 {
            return direction;
        }
        match self.state[i].first_mut() {
            Some(buffer) => {
                let _ = buffer.g_mul_scalar_(momentum).g_add_(&direction);
                buffer.shallow_clone()
            }
            None => {
                self.state[i].push(direction.copy());
                direction
            }
        }
    }

    /// Adam's moments of parameter `i` after `grad`, and its update, each
    /// member's scaled by its `step_sizes` row (−lr over the first bias correction).
    fn adam(&mut self, i: usize, p: &mut Tensor, grad: &Tensor, step_sizes: &Tensor) {
        let (beta1, beta2) = BETAS;
        let [average, squares] = &mut self.state[i][..] else { unreachable!("Adam keeps two moments") };
        let _ = average.g_mul_scalar_(beta1).g_add_(&(grad * (1.0 - beta1)));
        let _ = squares.g_mul_scalar_(beta2).addcmul_(grad, &(grad * (1.0 - beta2)));
        let corrected = 1.0 - beta2.powi(self.steps as i32);
        let denominator = squares.sqrt() / corrected.sqrt() + EPS;
        let _ = p.addcdiv_(&(&*average * step_sizes), &denominator);
    }

    /// Writes the update count and every state tensor (safetensors).
    fn save(&self, path: &Path) -> Result<()> {
        let mut named = vec![("steps".to_string(), Tensor::from_slice(&[self.steps]))];
        for (i, tensors) in self.state.iter().enumerate() {
            named.extend(tensors.iter().enumerate().map(|(j, t)| (format!("{i}.{j}"), t.shallow_clone())));
        }
        Ok(Tensor::write_safetensors(&named, path)?)
    }

    /// Reads what [`MemberRates::save`] wrote.
    fn load(&mut self, path: &Path) -> Result<()> {
        let saved: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(path)?.into_iter().collect();
        let Some(steps) = saved.get("steps").and_then(|s| i64::try_from(s).ok()) else {
            bail!("{}: not a member-rates optimizer state (no `steps`)", path.display())
        };
        self.steps = steps;
        self.state = if steps == 0 { Vec::new() } else { self.fresh_state() };
        for (i, tensors) in self.state.iter_mut().enumerate() {
            let mut j = 0;
            while let Some(value) = saved.get(&format!("{i}.{j}")) {
                match tensors.get_mut(j) {
                    Some(t) if t.size() == value.size() => tch::no_grad(|| t.copy_(value)),
                    Some(t) => bail!("{}: `{i}.{j}` has shape {:?}, not {:?}", path.display(), value.size(), t.size()),
                    None => tensors.push(value.to(self.params[i].device()).to_kind(Kind::Float)),
                }
                j += 1;
            }
        }
        Ok(())
    }
}

/// One step's per-member columns `[members, 1]` (see [`MemberRates::rates`]).
struct StepRates {
    scale: Tensor,
    decay: Option<Tensor>,
}

/// `grad` with L2 weight decay: `grad + decay · p` (as it is where `decay` is 0).
fn decayed(grad: &Tensor, p: &Tensor, decay: f64) -> Tensor {
    if decay == 0.0 {
        return grad.shallow_clone();
    }
    grad + p * decay
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Three members' least-squares problems: inputs `[3, 32, 6]`, targets
    /// `[3, 32, 2]`, weights `[3, 6, 2]` (each member its own).
    fn problem() -> (Tensor, Tensor, Tensor) {
        let mut rng = tessera_sdk::SeedRng::new(5);
        let mut draw = |shape: [i64; 3]| {
            let v: Vec<f32> = (0..shape.iter().product::<i64>()).map(|_| rng.next_f64() as f32 - 0.5).collect();
            Tensor::from_slice(&v).reshape(shape)
        };
        let (x, y, w) = (draw([3, 32, 6]), draw([3, 32, 2]), draw([3, 6, 2]));
        (x, y, w.set_requires_grad(true))
    }

    /// Each member's mean squared error, summed: each member's gradient its own.
    fn loss(x: &Tensor, y: &Tensor, w: &Tensor) -> Tensor {
        (x.bmm(w) - y).square().mean_dim([1i64, 2].as_slice(), false, Kind::Float).sum(Kind::Float)
    }

    const RATES: [f64; 3] = [0.01, 0.05, 0.2];

    fn steps(opt: &mut StackedOptimizer, (x, y, w): (&Tensor, &Tensor, &Tensor), n: usize) {
        for _ in 0..n {
            opt.zero_grad().unwrap();
            loss(x, y, w).backward();
            opt.step(|base| base).unwrap();
        }
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(&t.detach().flatten(0, -1)).unwrap()
    }

    const RULES: [Rule; 4] = [
        Rule::Sgd { momentum: 0.9, weight_decay: 1e-2 },
        Rule::Sgd { momentum: 0.0, weight_decay: 0.0 },
        Rule::Adam { weight_decay: 1e-2 },
        Rule::AdamW { weight_decay: 1e-1 },
    ];

    #[test]
    fn each_member_steps_as_libtorch_s_optimizer_steps_it_alone_at_its_rate() {
        for rule in RULES {
            let (x, y, w) = problem();
            let mut stacked = StackedOptimizer::new(rule, &RATES, &[w.shallow_clone()]).unwrap();
            assert!(stacked.per_member(), "three rates: one per member");
            steps(&mut stacked, (&x, &y, &w), 20);
            for (k, lr) in RATES.iter().enumerate() {
                let (x, y, all) = problem();
                let alone = all.get(k as i64).detach().copy().set_requires_grad(true);
                let mut opt = SavableOptimizer::new(rule, *lr, &[alone.shallow_clone()]).unwrap();
                for _ in 0..20 {
                    opt.zero_grad().unwrap();
                    loss(&x.narrow(0, k as i64, 1), &y.narrow(0, k as i64, 1), &alone.unsqueeze(0)).backward();
                    opt.step().unwrap();
                }
                let (got, expected) = (w.get(k as i64).detach(), alone.detach());
                let relative = f64::try_from((&got - &expected).abs().max() / expected.abs().max()).unwrap();
                assert!(relative < 1e-5, "{rule:?} member {k} at lr {lr}: {relative:e} relative from alone");
                let moved = f64::try_from((&expected - all.get(k as i64)).abs().max()).unwrap();
                assert!(moved > 1e-3, "{rule:?} member {k}: 20 steps moved it by {moved:e} only");
            }
        }
    }

    #[test]
    fn one_rate_is_libtorch_s_optimizer_itself() {
        let (_, _, w) = problem();
        let shared = StackedOptimizer::new(RULES[0], &[0.1; 3], &[w]).unwrap();
        assert!(!shared.per_member());
    }

    #[test]
    fn saved_and_loaded_halfway_it_ends_with_the_uninterrupted_bits() {
        for rule in RULES {
            let (x, y, w) = problem();
            let mut opt = StackedOptimizer::new(rule, &RATES, &[w.shallow_clone()]).unwrap();
            steps(&mut opt, (&x, &y, &w), 10);
            let whole = values(&w);

            let (x, y, w) = problem();
            let mut opt = StackedOptimizer::new(rule, &RATES, &[w.shallow_clone()]).unwrap();
            steps(&mut opt, (&x, &y, &w), 5);
            let dir = tempfile::tempdir().unwrap();
            opt.save(&dir.path().join("optimizer.safetensors")).unwrap();
            let halfway = w.detach().copy().set_requires_grad(true);
            let mut resumed = StackedOptimizer::new(rule, &RATES, &[halfway.shallow_clone()]).unwrap();
            resumed.load(&dir.path().join("optimizer.safetensors")).unwrap();
            steps(&mut resumed, (&x, &y, &halfway), 5);
            assert_eq!(values(&halfway), whole, "{rule:?}: resumed differs");

            if rule == (Rule::Sgd { momentum: 0.0, weight_decay: 0.0 }) {
                continue; // no state to keep
            }
            let mut fresh = StackedOptimizer::new(rule, &RATES, &[w.shallow_clone()]).unwrap();
            steps(&mut fresh, (&x, &y, &w), 5);
            assert_ne!(values(&w), whole, "{rule:?}: the state made no difference");
        }
    }

    #[test]
    fn a_state_of_another_optimizer_or_tensors_that_are_not_members_rows_are_errors() {
        let (_, _, w) = problem();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optimizer.safetensors");
        Tensor::write_safetensors(&[("other", Tensor::zeros([2], (Kind::Float, Device::Cpu)))], &path).unwrap();
        let mut opt = StackedOptimizer::new(RULES[2], &RATES, &[w.shallow_clone()]).unwrap();
        let e = opt.load(&path).unwrap_err().to_string();
        assert!(e.contains("not a member-rates optimizer state"), "{e}");
        let odd = Tensor::zeros([4, 2], (Kind::Float, Device::Cpu));
        let e = StackedOptimizer::new(RULES[0], &RATES, &[odd]).err().unwrap().to_string();
        assert!(e.contains("not 3 members' contiguous rows"), "{e}");
    }
}
