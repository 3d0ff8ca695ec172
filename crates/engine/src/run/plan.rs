//! The plan of a run: the manifest expanded into units of work, written to
//! `plan.json` before anything runs. A unit is one variant × seed × sweep
//! value of a `train` or `graph` experiment, or a group of training runs of
//! a `population` (one run, or a fork group); a population whose runs start
//! from a pretrained encoder has a unit per architecture that pretrains it,
//! which that architecture's runs need first. A variant's reduce step
//! (population metrics) runs in `collect`, once all its units are done.

use std::path::{Path, PathBuf};

use crate::error::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::Session;
use crate::confined::Confined;
use crate::manifest::{ExperimentKind, Variant};
use crate::population::RunSpec;

/// The plan of a run folder (`plan.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The format of this file.
    pub schema: u32,
    /// The experiment's name.
    pub experiment: String,
    /// The manifest as given (relative to `cwd`); its folder resolves the
    /// manifest's relative paths.
    pub manifest: PathBuf,
    /// When the run started (RFC 3339).
    pub started: String,
    /// The folder `tessera run` ran in; every unit runs there.
    pub cwd: PathBuf,
    /// The `--set` overrides, as written.
    pub overrides: Vec<String>,
    /// The plugin libraries the run loaded; units load the same.
    pub plugins: Vec<PathBuf>,
    /// The largest `experiment.threads` of its variants, if any sets it.
    #[serde(default)]
    pub threads: Option<usize>,
    /// `experiment.reproducible`: the kernels every unit runs with.
    #[serde(default = "native")]
    pub reproducible: crate::manifest::Reproducible,
    /// The selected variants, in manifest order.
    pub variants: Vec<PlannedVariant>,
    /// Every unit; a unit's id is its index.
    pub units: Vec<Unit>,
}

fn native() -> crate::manifest::Reproducible {
    crate::manifest::Reproducible::Native
}

/// A variant of the plan and its units.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedVariant {
    /// Its name, e.g. `digits@2`.
    pub name: String,
    /// What it runs.
    pub kind: ExperimentKind,
    /// Its units' ids, in the order their results join.
    pub units: Vec<usize>,
}

/// One unit of work: runs anywhere, writes only `units/<id>/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unit {
    /// Its id: its index in the plan, and its Slurm array index.
    pub id: usize,
    /// The variant it belongs to.
    pub variant: String,
    /// What it does.
    pub work: Work,
    /// Its estimated cost (see `cost_unit`); `None` where unknown before the data is read.
    pub cost: Option<f64>,
    /// What `cost` counts.
    pub cost_unit: String,
    /// Units that must be done before it starts (lower ids: plan order is a
    /// valid order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<usize>,
}

/// What a unit does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Work {
    /// A whole `train` or `graph` variant (one seed and sweep value).
    Variant,
    /// Some training runs of a population, in row order.
    PopulationRuns {
        /// The runs.
        runs: Vec<RunSpec>,
        /// Whether they train as one batched model (`population.batch`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        batched: bool,
    },
    /// Seeds of a `train` variant (`experiment.batch`) trained as one
    /// batched model: each of these variants (one per seed, in seed order)
    /// lists this unit, and its results come from it.
    Seeds {
        /// The variants.
        variants: Vec<String>,
    },
    /// A population architecture's encoder, pretrained without labels for
    /// the runs that start from it.
    Pretrain {
        /// Index into the population's distinct architectures.
        architecture: usize,
        /// Its description, e.g. `cnn[16-32]`.
        model: String,
    },
}

impl Plan {
    /// Expands `session`'s variants (those `selected`) into units.
    pub fn new(session: &Session, selected: impl Fn(&Variant) -> bool) -> Result<Plan> {
        let mut plan = Plan {
            schema: 1,
            experiment: session.manifest.name(),
            manifest: session.manifest.path.clone(),
            started: chrono::Local::now().to_rfc3339(),
            cwd: std::env::current_dir().context("the current folder")?,
            overrides: session.overrides.clone(),
            plugins: session.registry.plugins().iter().map(|p| p.path.clone()).collect(),
            threads: session.variants.iter().map(|v| v.settings.experiment.threads).max().filter(|&t| t > 0),
            reproducible: super::kernels::mode_of(&session.variants).unwrap_or(crate::manifest::Reproducible::Native),
            variants: vec![],
            units: vec![],
        };
        let mut previous: Option<&Variant> = None;
        for variant in session.variants.iter().filter(|v| selected(v)) {
            if let Some(id) = plan.joins_seed_batch((session, variant), previous.replace(variant)) {
                let (name, kind) = (variant.name.clone(), ExperimentKind::Train);
                plan.variants.push(PlannedVariant { name, kind, units: vec![id] });
                continue;
            }
            let works = match variant.settings.experiment.kind {
                ExperimentKind::Population if variant.settings.population.load.is_some() => vec![],
                ExperimentKind::Population => super::population::works(variant)?,
                ExperimentKind::Train if seeds_per_unit(session, variant) > 1 => {
                    vec![(Work::Seeds { variants: vec![variant.name.clone()] }, None)]
                }
                _ => vec![(Work::Variant, None)],
            };
            let mut ids: Vec<usize> = vec![];
            for (work, needs) in works {
                let (cost, cost_unit) = estimated_cost(variant, &work);
                let needs = needs.map(|i| vec![ids[i]]).unwrap_or_default();
                ids.push(plan.units.len());
                let id = plan.units.len();
                plan.units.push(Unit { id, variant: variant.name.clone(), work, cost, cost_unit, needs });
            }
            let kind = variant.settings.experiment.kind;
            plan.variants.push(PlannedVariant { name: variant.name.clone(), kind, units: ids });
        }
        plan.lone_seeds_alone();
        Ok(plan)
    }

    /// Adds `variant` to the batch of seeds the last unit is, if that holds
    /// `previous`, a seed of the same group, and has room left
    /// (`experiment.batch`); that unit's id.
    fn joins_seed_batch(
        &mut self,
        (session, variant): (&Session, &Variant),
        previous: Option<&Variant>,
    ) -> Option<usize> {
        let base = |v: &Variant| v.seed_group.as_ref().map(|g| g.base.clone());
        let previous = previous.filter(|p| base(p).is_some() && base(p) == base(variant))?;
        let last = self.units.last_mut()?;
        let Work::Seeds { variants } = &mut last.work else { return None };
        if variants.last() != Some(&previous.name) || variants.len() >= seeds_per_unit(session, variant) {
            return None;
        }
        variants.push(variant.name.clone());
        let n = variants.len() as f64;
        last.cost = last.cost.map(|c| c / (n - 1.0) * n);
        Some(last.id)
    }

    /// A batch of seeds of one seed is a unit of its variant alone.
    fn lone_seeds_alone(&mut self) {
        for unit in &mut self.units {
            if matches!(&unit.work, Work::Seeds { variants } if variants.len() == 1) {
                unit.work = Work::Variant;
            }
        }
    }

    /// Whether a variant trains with libtorch (any but `graph`).
    pub fn has_training(&self) -> bool {
        self.variants.iter().any(|v| v.kind != ExperimentKind::Graph)
    }

    /// Writes `plan.json` into `dir`, atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        Confined::new(dir).write_atomic("plan.json", &serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }

    /// Reads `dir/plan.json`.
    pub fn load(dir: &Path) -> Result<Plan> {
        let path = dir.join("plan.json");
        let text = Confined::new(dir)
            .read("plan.json")
            .with_context(|| format!("reading {} (is {} a run folder?)", path.display(), dir.display()))?;
        let plan: Plan = serde_json::from_slice(&text).with_context(|| format!("{}: not a plan", path.display()))?;
        if plan.schema != 1 {
            bail!("{}: plan schema {} (this tessera reads 1)", path.display(), plan.schema);
        }
        plan.check().with_context(|| {
            format!("{}: a damaged plan (Tessera writes it once, at the start of the run)", path.display())
        })?;
        Ok(plan)
    }

    /// That each unit's id is its index, and each variant's units exist,
    /// belong to it and to no other variant.
    fn check(&self) -> Result<()> {
        if let Some((i, u)) = self.units.iter().enumerate().find(|(i, u)| u.id != *i) {
            bail!("unit {i} has id {} (ids are the units' places, each once)", u.id);
        }
        let mut owner = vec![None; self.units.len()];
        for v in &self.variants {
            for &id in &v.units {
                let unit = self.unit(id).with_context(|| format!("variant `{}`", v.name))?;
                if !unit.serves(&v.name) {
                    bail!("variant `{}` lists unit {id}, which belongs to `{}`", v.name, unit.variant);
                }
                if let Some(other) = owner[id].replace(&v.name).filter(|_| !matches!(unit.work, Work::Seeds { .. })) {
                    bail!("unit {id} is listed twice (by `{other}` and `{}`)", v.name);
                }
                if let Some(&need) = unit.needs.iter().find(|&&n| n >= id || !v.units.contains(&n)) {
                    bail!("unit {id} needs unit {need}, which is not an earlier unit of `{}`", v.name);
                }
            }
        }
        Ok(())
    }

    /// `pending` in waves: each unit after the pending units it needs, so a
    /// wave's units can run at once once the waves before it are done.
    pub fn waves(&self, pending: &[usize]) -> Vec<Vec<usize>> {
        let mut wave_of: std::collections::BTreeMap<usize, usize> = std::collections::BTreeMap::new();
        for &id in pending {
            let after = self.units[id].needs.iter().filter_map(|n| wave_of.get(n)).max().map_or(0, |w| w + 1);
            wave_of.insert(id, after);
        }
        let mut waves: Vec<Vec<usize>> = vec![];
        for &id in pending {
            let wave = wave_of[&id];
            waves.resize_with(waves.len().max(wave + 1), Vec::new);
            waves[wave].push(id);
        }
        waves
    }

    /// The unit with id `id`.
    pub fn unit(&self, id: usize) -> Result<&Unit> {
        self.units.get(id).with_context(|| format!("no unit {id} (the plan has {})", self.units.len()))
    }

    /// A human-readable listing: each variant, its units and their cost.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "plan of {} ({}): {} units in {} variants; collect runs after all of them\n",
            self.experiment,
            self.manifest.display(),
            self.units.len(),
            self.variants.len()
        );
        for v in &self.variants {
            out += &format!("{} ({}): ", v.name, kind_name(v.kind));
            if v.units.is_empty() {
                out += "no units (population.load: collect reads it)\n";
                continue;
            }
            out += &format!("{} unit(s), then {}\n", v.units.len(), reduce_step(v.kind));
            for &id in &v.units {
                out += &format!("  {}\n", self.units[id].describe());
            }
        }
        out
    }
}

/// The most seeds of `variant`'s seed group one unit trains as a batch
/// (`experiment.batch`, `"auto"` resolved: 1 where the variant cannot
/// batch by its settings and components); 1 for a variant without seeds.
pub fn seeds_per_unit(session: &Session, variant: &Variant) -> usize {
    let s = &variant.settings;
    if s.experiment.kind != ExperimentKind::Train || variant.seed_group.is_none() || !s.experiment.batch.batches() {
        return 1;
    }
    let refused = variant.finetuner.is_some()
        || crate::population::seeds_batch_refused(&s.model).is_some()
        || selects_per_step(session, variant);
    s.experiment.batch.unit_runs(refused)
}

/// Whether `variant`'s sampler selects per step (asked of a new instance).
fn selects_per_step(session: &Session, variant: &Variant) -> bool {
    let Some(spec) = &variant.sampler else { return false };
    let sampler = session.registry.new_sampler(&spec.id, &spec.params_text());
    sampler.is_ok_and(|s| s.candidates().ok().flatten().is_some())
}

/// `train`, `graph` or `population`.
fn kind_name(kind: ExperimentKind) -> &'static str {
    match kind {
        ExperimentKind::Train => "train",
        ExperimentKind::Graph => "graph",
        ExperimentKind::Population => "population",
    }
}

/// What collect does for a variant of `kind` once its units are done.
fn reduce_step(kind: ExperimentKind) -> &'static str {
    match kind {
        ExperimentKind::Population => "collect joins the parts and runs the metrics",
        _ => "collect merges its results",
    }
}

impl Unit {
    /// Whether variant `name`'s results come from this unit: its own, or a
    /// seed of the batch it trains.
    pub fn serves(&self, name: &str) -> bool {
        match &self.work {
            Work::Seeds { variants } => variants.iter().any(|v| v == name),
            _ => self.variant == name,
        }
    }

    /// One line: id, what it does, its cost.
    pub fn describe(&self) -> String {
        let what = match &self.work {
            Work::Variant => "the whole variant".to_string(),
            Work::PopulationRuns { runs, batched } => match (runs.as_slice(), batched) {
                ([one], _) => format!("population run {}", one.run),
                ([], _) => "no runs".into(),
                (_, false) => format!("population runs {}", crate::population::run_ranges(runs, 0)),
                (_, true) => format!("population runs {} as one batched model", crate::population::run_ranges(runs, 0)),
            },
            Work::Pretrain { model, .. } => format!("pretrains the encoder of {model}"),
            Work::Seeds { variants } => format!("{} as one batched model", variants.join(", ")),
        };
        let cost = self.cost.map_or("cost unknown".into(), |c| format!("~{c:.3e} {}", self.cost_unit));
        let needs = match self.needs.as_slice() {
            [] => String::new(),
            needs => format!(", after unit {}", needs.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
        };
        format!("unit {:>4}: {what} ({cost}{needs})", self.id)
    }
}

/// A rough cost of `work`: example visits for training, edge visits for graphs.
fn estimated_cost(variant: &Variant, work: &Work) -> (Option<f64>, String) {
    let s = &variant.settings;
    let examples = (s.data.examples > 0).then_some(s.data.examples as f64);
    match (s.experiment.kind, work) {
        (ExperimentKind::Graph, _) => {
            let budgets = 1 + s.graph.budgets.len();
            let g = &s.graph;
            let edges = match g.edges {
                0 => g.nodes as f64 * g.attach.max(g.neighbors).max(1) as f64,
                m => m as f64,
            };
            let evaluations = budgets as f64 * s.graph.evaluation_thetas.max(1) as f64 * s.graph.simulations as f64;
            (Some(edges * evaluations), "edge visits (simulations)".into())
        }
        (_, Work::Pretrain { .. }) => (examples.map(|n| n * s.pretrain.epochs as f64), "example visits".into()),
        (_, Work::PopulationRuns { runs, .. }) => {
            let epochs = s.population.epochs.iter().copied().max().unwrap_or(s.train.epochs) as f64;
            (examples.map(|n| n * epochs * runs.len() as f64), "example visits".into())
        }
        _ => (examples.map(|n| n * s.train.epochs as f64), "example visits".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_describes_its_runs() {
        let run = |run| RunSpec { run, architecture: 0, seed_index: run, setting: 0 };
        let unit = Unit {
            id: 3,
            variant: "p".into(),
            work: Work::PopulationRuns { runs: vec![run(4), run(5)], batched: false },
            cost: Some(1000.0),
            cost_unit: "example visits".into(),
            needs: vec![1],
        };
        assert!(unit.describe().contains("population runs 4–5") && unit.describe().contains("after unit 1"));
        let json = serde_json::to_string(&unit).unwrap();
        assert!(!json.contains("batched"), "plans of unbatched runs read as before: {json}");
        let back: Unit = serde_json::from_str(&json).unwrap();
        assert_eq!(back.work, unit.work);
        let spread =
            Unit { work: Work::PopulationRuns { runs: vec![run(1), run(4), run(5)], batched: true }, ..unit.clone() };
        assert!(spread.describe().contains("population runs 1, 4–5 as one batched model"), "{}", spread.describe());
        let batched = Unit { work: Work::PopulationRuns { runs: vec![run(4), run(5)], batched: true }, ..unit };
        assert!(batched.describe().contains("population runs 4–5 as one batched model"));
        let back: Unit = serde_json::from_str(&serde_json::to_string(&batched).unwrap()).unwrap();
        assert_eq!(back.work, batched.work);
    }

    #[test]
    fn a_batch_of_seeds_serves_each_of_its_seeds() {
        let seeds = Work::Seeds { variants: vec!["mlp@1".into(), "mlp@2".into()] };
        let unit = Unit {
            id: 0,
            variant: "mlp@1".into(),
            work: seeds,
            cost: None,
            cost_unit: "example visits".into(),
            needs: vec![],
        };
        assert!(unit.serves("mlp@1") && unit.serves("mlp@2") && !unit.serves("mlp@3"));
        assert!(unit.describe().contains("mlp@1, mlp@2 as one batched model"), "{}", unit.describe());
        let json = serde_json::to_string(&unit).unwrap();
        assert!(json.contains(r#""kind":"seeds""#), "{json}");
        let planned = |name: &str| PlannedVariant { name: name.into(), kind: ExperimentKind::Train, units: vec![0] };
        let plan = Plan {
            schema: 1,
            experiment: "e".into(),
            manifest: "m.toml".into(),
            started: String::new(),
            cwd: ".".into(),
            overrides: vec![],
            plugins: vec![],
            threads: None,
            reproducible: native(),
            variants: vec![planned("mlp@1"), planned("mlp@2")],
            units: vec![unit.clone()],
        };
        plan.check().expect("each seed lists the unit that trains it");
        let stranger = Plan { variants: vec![planned("mlp@1"), planned("other")], ..plan.clone() };
        assert!(stranger.check().unwrap_err().to_string().contains("which belongs to `mlp@1`"));
        let alone = Plan { units: vec![Unit { work: Work::Variant, ..unit }], ..plan };
        assert!(alone.check().unwrap_err().to_string().contains("which belongs to"), "a plain unit serves one variant");
    }
}
