//! Manifests: one TOML file describes an experiment — shared settings plus
//! the `[[variant]]`s to compare. Every error points at `file:line:col` with
//! the offending key and, where it can, a hint.
//!
//! Merging: a variant's tables are merged key by key onto the base; the
//! component tables (`sampler`, `finetuner`, `objective`) and the `metric`
//! array are replaced whole, since another component takes other parameters.
//! `--set KEY=VALUE` overrides apply last, to every variant.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use tessera_sdk::ComponentKind;

pub use crate::choice::{
    DataSource, DeviceChoice, EdgeDirection, EdgeListFormat, GraphCache, GraphGenerator, MetricPool, ModelKind,
    Optimizer, OracleOrder, PretrainMethod, ProbabilityModel, Reproducible, Schedule, Split, StorageAccess,
    StorageMode, StoragePreset, StoredOrder,
};
use tessera_util::suggest::closest;

mod member_batch;
mod mnist1d;
pub mod reference;
mod settings;

pub use member_batch::MemberBatch;
pub use mnist1d::MAX_SEQUENCE;

pub use settings::{
    DataConfig, ExecutorConfig, ExperimentConfig, ExperimentKind, GraphConfig, Mnist1dArgs, Mnist1dSplit, ModelConfig,
    PopulationConfig, PretrainConfig, ReferenceConfig, ScalarPlot, Settings, ShiftConfig, SlurmConfig, StorageConfig,
    SweepConfig, TrainConfig,
};

/// Keys of the tables that name one component each.
pub const COMPONENT_TABLES: [(&str, ComponentKind); 3] = [
    ("sampler", ComponentKind::Sampler),
    ("finetuner", ComponentKind::Finetuner),
    ("objective", ComponentKind::GraphObjective),
];

/// A problem in a manifest, located in its file.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The manifest file.
    pub file: PathBuf,
    /// 1-based line and column, when the place is known.
    pub location: Option<(usize, usize)>,
    /// The dotted key at fault, e.g. `variant[1].train.lr`.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.location {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": error: {}", self.message)?;
        if let Some(key) = &self.key {
            write!(f, "\n  key: {key}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// Several diagnostics, shown one after another.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// A component named in a manifest, with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentSpec {
    /// `plugin.component`.
    pub id: String,
    /// The parameters (the table without `use`).
    pub params: toml::Table,
    /// The dotted key of its table, e.g. `sampler` or `metric[0]`.
    pub key: String,
    /// A metric's `pool`: each run, or a `train` variant's seeds together.
    pub pool: MetricPool,
}

impl ComponentSpec {
    /// The parameters as TOML text, as the plugin receives them.
    pub fn params_text(&self) -> String {
        toml::to_string(&self.params).unwrap_or_default()
    }
}

/// One variant, resolved: settings with defaults, and its components.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// The variant's name.
    pub name: String,
    /// Its index among `[[variant]]`s (None for a manifest without variants).
    pub index: Option<usize>,
    /// The settings.
    pub settings: Settings,
    /// The sampler, if any.
    pub sampler: Option<ComponentSpec>,
    /// The finetuner, if any.
    pub finetuner: Option<ComponentSpec>,
    /// The graph objective, if any.
    pub objective: Option<ComponentSpec>,
    /// The metrics.
    pub metrics: Vec<ComponentSpec>,
    /// Where `experiment.seeds` made this run: the variant's name without
    /// `@seed`, and every seed in the list (None for a run of its own).
    pub seed_group: Option<SeedGroup>,
}

/// The runs `experiment.seeds` makes of one variant (or one sweep value).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedGroup {
    /// The name the runs share before `@seed`.
    pub base: String,
    /// The seeds, in manifest order: run `base@seeds[i]` is member `i`.
    pub seeds: Vec<u64>,
}

impl SeedGroup {
    /// The name of the results entry that pools the group's seeds
    /// (`pool = "seeds"` metrics): `<base>+seeds`.
    pub fn pooled_name(&self) -> String {
        format!("{}+seeds", self.base)
    }

    /// The index of `seed` in the group's seeds.
    pub fn index(&self, seed: u64) -> usize {
        self.seeds.iter().position(|&s| s == seed).unwrap_or(0)
    }
}

impl Variant {
    /// The metrics that observe this run itself (not `pool = "seeds"`).
    pub fn own_metrics(&self) -> impl Iterator<Item = &ComponentSpec> {
        self.metrics.iter().filter(|m| m.pool == MetricPool::Each)
    }

    /// The metrics that pool the seeds of its group (`pool = "seeds"`).
    pub fn pooled_metrics(&self) -> impl Iterator<Item = &ComponentSpec> {
        self.metrics.iter().filter(|m| m.pool == MetricPool::Seeds)
    }

    /// Every component of the variant with its kind.
    pub fn components(&self) -> Vec<(ComponentKind, &ComponentSpec)> {
        let mut all = Vec::new();
        if let Some(c) = &self.sampler {
            all.push((ComponentKind::Sampler, c));
        }
        if let Some(c) = &self.finetuner {
            all.push((ComponentKind::Finetuner, c));
        }
        if let Some(c) = &self.objective {
            all.push((ComponentKind::GraphObjective, c));
        }
        all.extend(self.metrics.iter().map(|c| (ComponentKind::Metric, c)));
        all
    }
}

/// One `--set KEY=VALUE` override.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The dotted key, e.g. `train.lr`.
    pub key: Vec<String>,
    /// The value (TOML; bare words are strings).
    pub value: toml::Value,
    /// As the user wrote it.
    pub text: String,
}

/// A `--set` that is not `KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadOverride {
    /// No `=`.
    #[error("--set {0}: expected KEY=VALUE, e.g. train.lr=0.1")]
    NoValue(String),
    /// `a..b` or a leading or trailing dot.
    #[error("--set {0}: empty key segment")]
    EmptySegment(String),
}

impl Override {
    /// Parses `KEY=VALUE`.
    pub fn parse(text: &str) -> Result<Self, BadOverride> {
        let (key, value) = text.split_once('=').ok_or_else(|| BadOverride::NoValue(text.to_string()))?;
        let key: Vec<String> = key.trim().split('.').map(|s| s.trim().to_string()).collect();
        if key.iter().any(String::is_empty) {
            return Err(BadOverride::EmptySegment(text.to_string()));
        }
        let value_text = value.trim();
        let value = toml::from_str::<toml::Table>(&format!("v = {value_text}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value_text.to_string()));
        Ok(Override { key, value, text: text.to_string() })
    }
}

/// A parsed manifest file.
pub struct Manifest {
    /// The file.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
    document: toml_edit::ImDocument<String>,
    base: toml::Table,
    variants: Vec<(String, toml::Table)>,
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn key_path_text(steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        match s {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.chars().count(), |i| before[i + 1..].chars().count()) + 1;
    (line, col)
}

/// The span of the key (or element) at `steps` in a spanned document.
fn span_in(item: &toml_edit::Item, steps: &[Step]) -> Option<Range<usize>> {
    use toml_edit::{Item, Value};
    let Some((first, rest)) = steps.split_first() else {
        return item.span();
    };
    match (item, first) {
        (Item::Table(t), Step::Key(k)) => {
            let (key, child) = t.get_key_value(k)?;
            if rest.is_empty() {
                key.span().or_else(|| child.span())
            } else {
                span_in(child, rest)
            }
        }
        (Item::Value(Value::InlineTable(t)), Step::Key(k)) => {
            let (key, child) = t.get_key_value(k)?;
            if rest.is_empty() {
                key.span().or_else(|| child.span())
            } else {
                span_in(child, rest)
            }
        }
        (Item::ArrayOfTables(a), Step::Index(i)) => {
            let t = a.get(*i)?;
            if rest.is_empty() {
                t.span()
            } else {
                span_in(&Item::Table(t.clone()), rest)
            }
        }
        (Item::Value(Value::Array(a)), Step::Index(i)) => {
            let v = a.get(*i)?;
            if rest.is_empty() {
                v.span()
            } else {
                span_in(&Item::Value(v.clone()), rest)
            }
        }
        _ => None,
    }
}

fn merge_into(base: &mut toml::Table, over: &toml::Table) {
    for (key, value) in over {
        let replace_whole = COMPONENT_TABLES.iter().any(|(k, _)| k == key) || key == "metric";
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) if !replace_whole => merge_into(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// A `--set` key that runs through a value that is not a table.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a table")]
struct NotATable(String);

fn set_path(table: &mut toml::Table, key: &[String], value: toml::Value) -> Result<(), NotATable> {
    let (last, parents) = key.split_last().expect("non-empty key");
    let mut current = table;
    for part in parents {
        let entry = current.entry(part.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(NotATable(part.clone())),
        };
    }
    current.insert(last.clone(), value);
    Ok(())
}

/// The key a settings error is under, and a hint, both from the declared
/// schema and the value given (never read back from serde's message): a key
/// no table declares gets the closest declared one, a choice's unknown name
/// the closest name.
fn settings_hint(given: &toml::Table, path: &serde_path_to_error::Path) -> (String, Option<String>) {
    let schema = reference::Nested::of::<Settings>();
    let at = path.to_string();
    let at = if at == "." { String::new() } else { at };
    let dotted = |table: &str, key: &str| if table.is_empty() { key.to_string() } else { format!("{table}.{key}") };
    if let Some(u) = reference::unknown_key(schema, given) {
        let key = dotted(&u.table, &u.key);
        if u.table == at || key == at {
            let hint = closest(&u.key, u.known.iter().copied())
                .map(|b| format!("did you mean `{b}`?"))
                .or_else(|| (!u.known.is_empty()).then(|| format!("known keys: {}", u.known.join(", "))));
            return (key, hint);
        }
    }
    let names = reference::choice_names(schema, &at);
    let hint = match value_at(given, path).and_then(toml::Value::as_str) {
        Some(name) if !names.is_empty() && !names.contains(&name) => closest(name, names.iter().copied())
            .map(|b| format!("did you mean `{b}`?"))
            .or_else(|| Some(format!("one of: {}", names.join(", ")))),
        _ => None,
    };
    (if at.is_empty() { ".".to_string() } else { at }, hint)
}

/// The value at `path` in `table`, if there is one.
fn value_at<'t>(table: &'t toml::Table, path: &serde_path_to_error::Path) -> Option<&'t toml::Value> {
    use serde_path_to_error::Segment;
    let mut segments = path.iter();
    let Some(Segment::Map { key }) = segments.next() else { return None };
    let mut value = table.get(key)?;
    for segment in segments {
        value = match segment {
            Segment::Map { key } => value.as_table()?.get(key)?,
            Segment::Seq { index } => value.as_array()?.get(*index)?,
            _ => return None,
        };
    }
    Some(value)
}

impl Manifest {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Manifest, Diagnostics> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![Diagnostic {
                file: path.to_path_buf(),
                location: None,
                key: None,
                message: format!("cannot read the manifest: {e}"),
                hint: None,
            }])
        })?;
        Manifest::parse(path, text)
    }

    /// Parses manifest `text`, reporting errors against `path`.
    pub fn parse(path: &Path, text: String) -> Result<Manifest, Diagnostics> {
        let diag = |location, key: Option<String>, message: String, hint: Option<String>| Diagnostic {
            file: path.to_path_buf(),
            location,
            key,
            message,
            hint,
        };
        let document = toml_edit::ImDocument::parse(text.clone()).map_err(|e| {
            let location = e.span().map(|s| line_col(&text, s.start));
            Diagnostics(vec![diag(location, None, format!("invalid TOML: {}", e.message().trim()), None)])
        })?;
        let mut base: toml::Table = toml::from_str(&text)
            .map_err(|e| Diagnostics(vec![diag(None, None, format!("invalid TOML: {}", e.message().trim()), None)]))?;
        let mut variants = Vec::new();
        let mut errors = Vec::new();
        let mut names = BTreeSet::new();
        match base.remove("variant") {
            None => {}
            Some(toml::Value::Array(items)) => {
                for (i, item) in items.into_iter().enumerate() {
                    let steps = [Step::Key("variant".into()), Step::Index(i)];
                    let location = span_in(document.as_item(), &steps).map(|s| line_col(&text, s.start));
                    let toml::Value::Table(mut table) = item else {
                        errors.push(diag(
                            location,
                            Some(key_path_text(&steps)),
                            "a variant must be a table".into(),
                            None,
                        ));
                        continue;
                    };
                    let name = match table.remove("name") {
                        Some(toml::Value::String(s)) if !s.trim().is_empty() => s,
                        _ => {
                            errors.push(diag(
                                location,
                                Some(key_path_text(&steps)),
                                "every [[variant]] needs a `name` (a non-empty string)".into(),
                                Some("add e.g. name = \"full-shuffle\"".into()),
                            ));
                            continue;
                        }
                    };
                    // A problem with this variant's `name`, located at it.
                    let name_problem = |message: String, hint: &str| {
                        let mut at = steps.to_vec();
                        at.push(Step::Key("name".into()));
                        let location = span_in(document.as_item(), &at).map(|s| line_col(&text, s.start));
                        diag(location, Some(key_path_text(&at)), message, Some(hint.into()))
                    };
                    if let Err(why) = check_variant_name(&name) {
                        errors.push(name_problem(
                            format!("variant name `{}` {why}", name.escape_debug()),
                            "a variant name names files in the run folder: use letters, digits, - _ . and spaces",
                        ));
                        continue;
                    }
                    if !names.insert(name.clone()) {
                        errors.push(name_problem(
                            format!("two variants are named `{name}`"),
                            "variant names must be unique: they name the results",
                        ));
                    }
                    variants.push((name, table));
                }
            }
            Some(_) => errors.push(diag(
                None,
                Some("variant".into()),
                "`variant` must be an array of tables: [[variant]]".into(),
                None,
            )),
        }
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        Ok(Manifest { path: path.to_path_buf(), text, document, base, variants })
    }

    /// The folder the manifest is in (relative paths resolve against it).
    pub fn dir(&self) -> PathBuf {
        self.path.parent().map(Path::to_path_buf).unwrap_or_default()
    }

    /// The experiment's name: `[experiment] name`, or the file stem.
    pub fn name(&self) -> String {
        self.base
            .get("experiment")
            .and_then(|e| e.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| {
                self.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "experiment".into())
            })
    }

    /// The plugin search paths of the base settings, resolved against the manifest's folder.
    pub fn plugin_paths(&self) -> Vec<PathBuf> {
        let dir = self.dir();
        self.base
            .get("experiment")
            .and_then(|e| e.get("plugin_paths"))
            .and_then(|p| p.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str()).map(|p| dir.join(p)).collect())
            .unwrap_or_default()
    }

    fn locate_steps(&self, steps: &[Step]) -> Option<(usize, usize)> {
        span_in(self.document.as_item(), steps).map(|s| line_col(&self.text, s.start))
    }

    /// The dotted key and location of `key` (e.g. `train.lr`) as variant
    /// `index` sees it: its own table if it sets the key, else the base's.
    pub fn locate(&self, index: Option<usize>, key: &str) -> (String, Option<(usize, usize)>) {
        let mut steps: Vec<Step> = Vec::new();
        for part in key.split('.') {
            match part.split_once('[') {
                Some((k, rest)) => {
                    steps.push(Step::Key(k.to_string()));
                    if let Ok(i) = rest.trim_end_matches(']').parse() {
                        steps.push(Step::Index(i));
                    }
                }
                None => steps.push(Step::Key(part.to_string())),
            }
        }
        if let Some(i) = index {
            let mut in_variant = vec![Step::Key("variant".into()), Step::Index(i)];
            in_variant.extend(steps.iter().cloned());
            // The key itself, then its nearest enclosing table, in the variant.
            for len in (3..=in_variant.len()).rev() {
                if let Some(loc) = self.locate_steps(&in_variant[..len]) {
                    if len == in_variant.len() || self.locate_steps(&steps[..len - 2]).is_none() {
                        return (key_path_text(&in_variant), Some(loc));
                    }
                    break;
                }
            }
        }
        for len in (1..=steps.len()).rev() {
            if let Some(loc) = self.locate_steps(&steps[..len]) {
                return (key_path_text(&steps), Some(loc));
            }
        }
        let fallback = index.and_then(|i| self.locate_steps(&[Step::Key("variant".into()), Step::Index(i)]));
        (key_path_text(&steps), fallback)
    }

    /// A diagnostic about `key` as variant `index` sees it; a key that a
    /// `--set` override wrote is blamed on the override, not the file.
    pub fn diagnostic(
        &self,
        index: Option<usize>,
        overrides: &[Override],
        key: &str,
        message: String,
        hint: Option<String>,
    ) -> Diagnostic {
        if let Some(o) =
            overrides.iter().find(|o| key == o.key.join(".") || key.starts_with(&format!("{}.", o.key.join("."))))
        {
            let message = format!("--set {}: {message}", o.text);
            return Diagnostic { file: self.path.clone(), location: None, key: Some(key.to_string()), message, hint };
        }
        let (key, location) = self.locate(index, key);
        Diagnostic { file: self.path.clone(), location, key: Some(key), message, hint }
    }

    /// The merged table of variant `index` with `overrides` applied.
    pub fn merged_table(&self, index: Option<usize>, overrides: &[Override]) -> Result<toml::Table, Diagnostic> {
        let mut table = self.base.clone();
        if let Some(i) = index {
            merge_into(&mut table, &self.variants[i].1);
        }
        for o in overrides {
            set_path(&mut table, &o.key, o.value.clone()).map_err(|m| Diagnostic {
                file: self.path.clone(),
                location: None,
                key: Some(o.key.join(".")),
                message: format!("--set {}: {m}", o.text),
                hint: None,
            })?;
        }
        Ok(table)
    }

    /// Resolves every variant; all problems are reported together.
    pub fn variants(&self, overrides: &[Override]) -> Result<Vec<Variant>, Diagnostics> {
        let indices: Vec<Option<usize>> =
            if self.variants.is_empty() { vec![None] } else { (0..self.variants.len()).map(Some).collect() };
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for index in indices {
            // A sweep: the variant again at each value of its swept setting.
            let swept = match self.variant(index, overrides) {
                Ok(v) => match v.settings.experiment.sweep.clone() {
                    None => vec![Ok(v)],
                    Some(sweep) => {
                        let key: Vec<String> = sweep.key.split('.').map(String::from).collect();
                        sweep
                            .values
                            .iter()
                            .map(|value| {
                                let mut with = overrides.to_vec();
                                let text = format!("experiment.sweep: {} = {value}", sweep.key);
                                with.push(Override { key: key.clone(), value: value.clone(), text });
                                self.variant(index, &with).map(|mut run| {
                                    // A resolved run is one point of the sweep.
                                    run.name = sweep.run_name(&v.name, value);
                                    run.settings.experiment.sweep = None;
                                    run
                                })
                            })
                            .collect()
                    }
                },
                Err(d) => vec![Err(d)],
            };
            for resolved in swept {
                match resolved {
                    Ok(v) if v.settings.experiment.seeds.is_empty() => out.push(v),
                    Ok(v) => {
                        for &seed in &v.settings.experiment.seeds {
                            let mut run = v.clone();
                            run.name = format!("{}@{seed}", v.name);
                            run.settings.experiment.seed = seed;
                            run.settings.experiment.seeds = vec![];
                            let seeds = v.settings.experiment.seeds.clone();
                            run.seed_group = Some(SeedGroup { base: v.name.clone(), seeds });
                            out.push(run);
                        }
                    }
                    Err(mut d) => errors.append(&mut d.0),
                }
            }
        }
        errors.extend(self.name_clashes(&out, overrides));
        if errors.is_empty() {
            Ok(out)
        } else {
            errors.dedup();
            Err(Diagnostics(errors))
        }
    }

    /// Whether variant `index` lists a seed twice.
    fn has_repeated_seeds(&self, index: Option<usize>, overrides: &[Override]) -> bool {
        let seeds = self.variant(index, overrides).map(|v| v.settings.experiment.seeds).unwrap_or_default();
        seeds.iter().collect::<BTreeSet<_>>().len() != seeds.len()
    }

    /// Runs whose names, or file names, are the same after seeds and sweep
    /// values are expanded: their results would overwrite each other.
    fn name_clashes(&self, runs: &[Variant], overrides: &[Override]) -> Vec<Diagnostic> {
        let mut seen: std::collections::BTreeMap<String, (&str, Option<usize>)> = Default::default();
        let mut errors = Vec::new();
        // The entries that pool seeds name files too (once per group: its first seed).
        let first_of_group =
            |r: &&Variant| r.seed_group.as_ref().is_some_and(|g| g.seeds[0] == r.settings.experiment.seed);
        let pooled: Vec<(String, Option<usize>)> = runs
            .iter()
            .filter(|r| r.pooled_metrics().next().is_some())
            .filter(first_of_group)
            .map(|r| (r.seed_group.as_ref().expect("filtered").pooled_name(), r.index))
            .collect();
        let names = runs.iter().map(|r| (r.name.as_str(), r.index));
        for (name, run_index) in names.chain(pooled.iter().map(|(n, i)| (n.as_str(), *i))) {
            let stem = tessera_util::fs::file_stem_safe(name);
            if let Some((first, index)) = seen.insert(stem.clone(), (name, run_index)) {
                let what = if first == name { "two runs are named".to_string() } else { format!("`{first}` and") };
                // One variant twice: a repeated seed or sweep value.
                let key = match (index == run_index, self.has_repeated_seeds(run_index, overrides)) {
                    (true, true) => "experiment.seeds",
                    (true, false) => "experiment.sweep",
                    (false, _) => "name",
                };
                errors.push(self.diagnostic(
                    run_index,
                    overrides,
                    key,
                    format!("{what} `{name}` (file name `{stem}`): their results would overwrite each other"),
                    Some("rename a variant, or remove a repeated seed or sweep value".into()),
                ));
            }
        }
        errors
    }

    /// Resolves variant `index` (None: the base alone).
    pub fn variant(&self, index: Option<usize>, overrides: &[Override]) -> Result<Variant, Diagnostics> {
        let name = match index {
            Some(i) => self.variants[i].0.clone(),
            None => self.name(),
        };
        let mut table = self.merged_table(index, overrides).map_err(|d| Diagnostics(vec![d]))?;
        let mut errors = Vec::new();
        let mut take_component = |table: &mut toml::Table, key: &str| -> Option<ComponentSpec> {
            let value = table.remove(key)?;
            let spec = component_spec(value, key);
            spec.map_err(|m| errors.push(self.diagnostic(index, overrides, key, m.to_string(), None))).ok()
        };
        let sampler = take_component(&mut table, "sampler");
        let finetuner = take_component(&mut table, "finetuner");
        let objective = take_component(&mut table, "objective");
        let mut metrics = Vec::new();
        match table.remove("metric") {
            None => {}
            Some(toml::Value::Array(items)) => {
                for (i, item) in items.into_iter().enumerate() {
                    let key = format!("metric[{i}]");
                    match component_spec(item, &key).and_then(metric_pool) {
                        Ok(spec) => metrics.push(spec),
                        Err(m) => errors.push(self.diagnostic(index, overrides, &key, m.to_string(), None)),
                    }
                }
            }
            Some(_) => errors.push(self.diagnostic(
                index,
                overrides,
                "metric",
                "`metric` must be an array of tables: [[metric]]".into(),
                None,
            )),
        }
        // The recorded provenance of a resolved manifest is not a setting.
        table.remove("plugin");
        let given = table.clone();
        let settings = match serde_path_to_error::deserialize::<_, Settings>(toml::Value::Table(table)) {
            Ok(s) => Some(s),
            Err(e) => {
                let (key, hint) = settings_hint(&given, e.path());
                let message = e.inner().message().trim().to_string();
                errors.push(self.diagnostic(index, overrides, &key, message, hint));
                None
            }
        };
        match settings {
            Some(settings) if errors.is_empty() => {
                Ok(Variant { name, index, settings, sampler, finetuner, objective, metrics, seed_group: None })
            }
            _ => Err(Diagnostics(errors)),
        }
    }
}

/// Why a name cannot name a folder (a variant's, or the run's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadName {
    /// Empty or blank.
    #[error("is empty")]
    Empty,
    /// `.` or `..`.
    #[error("is a relative folder, not a name")]
    RelativeFolder,
    /// Holds `/` or `\`.
    #[error("contains a path separator")]
    PathSeparator,
    /// Holds a control character.
    #[error("contains a control character")]
    ControlCharacter,
    /// Over 128 characters.
    #[error("is longer than 128 characters")]
    TooLong,
}

/// Why `name` cannot name a variant, if it cannot: it names files and
/// folders, so it must be one safe path component.
pub fn check_variant_name(name: &str) -> Result<(), BadName> {
    if name.trim().is_empty() {
        return Err(BadName::Empty);
    }
    if name == "." || name == ".." {
        return Err(BadName::RelativeFolder);
    }
    if name.contains(['/', '\\']) {
        return Err(BadName::PathSeparator);
    }
    if name.chars().any(char::is_control) {
        return Err(BadName::ControlCharacter);
    }
    if name.chars().count() > 128 {
        return Err(BadName::TooLong);
    }
    Ok(())
}

/// A component table (`[sampler]`, `[[metric]]`, …) that names no component.
#[derive(Debug, thiserror::Error)]
enum BadComponent {
    /// Not a table at all.
    #[error("`{0}` must be a table with `use = \"plugin.component\"`")]
    NotATable(String),
    /// A table without a `use` string.
    #[error("`{0}` needs `use = \"plugin.component\"`, e.g. use = \"baselines.accuracy\"")]
    NoUse(String),
    /// A metric's `pool` that is not one of its names.
    #[error("`{0}.pool` is `{1}`; it is one of: {names}", names = MetricPool::NAMES.join(", "))]
    Pool(String, String),
}

fn component_spec(value: toml::Value, key: &str) -> Result<ComponentSpec, BadComponent> {
    let toml::Value::Table(mut params) = value else {
        return Err(BadComponent::NotATable(key.to_string()));
    };
    match params.remove("use") {
        Some(toml::Value::String(id)) => Ok(ComponentSpec { id, params, key: key.to_string(), pool: MetricPool::Each }),
        _ => Err(BadComponent::NoUse(key.to_string())),
    }
}

/// A metric's host key `pool` taken out of its parameters.
fn metric_pool(mut spec: ComponentSpec) -> Result<ComponentSpec, BadComponent> {
    let Some(value) = spec.params.remove("pool") else { return Ok(spec) };
    let text = value.as_str().map_or_else(|| value.to_string(), str::to_string);
    spec.pool = text.parse().map_err(|_| BadComponent::Pool(spec.key.clone(), text))?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
[experiment]
seed = 3

[train]
epochs = 2
lr = 0.1

[sampler]
use = "baselines.sequential"

[[metric]]
use = "baselines.accuracy"

[[variant]]
name = "a"

[[variant]]
name = "b"
sampler = { use = "baselines.full-shuffle", chunk = 8 }
[variant.train]
lr = 0.5
"#;

    fn manifest(text: &str) -> Result<Manifest, Diagnostics> {
        Manifest::parse(Path::new("m.toml"), text.to_string())
    }

    #[test]
    fn variants_override_the_base() {
        let m = manifest(TEXT).unwrap();
        let vs = m.variants(&[]).unwrap();
        assert_eq!(vs.len(), 2);
        assert_eq!(vs[0].settings.train.lr, 0.1);
        assert_eq!(vs[1].settings.train.lr, 0.5);
        assert_eq!(vs[1].settings.train.epochs, 2, "untouched keys come from the base");
        assert_eq!(vs[0].sampler.as_ref().unwrap().id, "baselines.sequential");
        let b = vs[1].sampler.as_ref().unwrap();
        assert_eq!(
            (b.id.as_str(), b.params.get("chunk").and_then(|v| v.as_integer())),
            ("baselines.full-shuffle", Some(8))
        );
        assert_eq!(vs[1].metrics.len(), 1);
    }

    #[test]
    fn a_sweep_runs_each_variant_at_each_value_then_each_seed() {
        let text = format!("{TEXT}\n");
        let text = text.replacen(
            "[experiment]",
            "[experiment]\nseeds = [1, 2]\nsweep = { key = \"data.train_per_class\", values = [10, 0] }",
            1,
        );
        let m = manifest(&text).unwrap();
        let names: Vec<String> = m.variants(&[]).unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(
            names,
            [
                "a[train_per_class=10]@1",
                "a[train_per_class=10]@2",
                "a[train_per_class=0]@1",
                "a[train_per_class=0]@2",
                "b[train_per_class=10]@1",
                "b[train_per_class=10]@2",
                "b[train_per_class=0]@1",
                "b[train_per_class=0]@2",
            ]
        );
        let vs = m.variants(&[]).unwrap();
        assert_eq!((vs[0].settings.data.train_per_class, vs[3].settings.data.train_per_class), (10, 0));
        assert_eq!(vs[5].settings.train.lr, 0.5, "the variant's own settings stay");
        assert!(vs.iter().all(|v| v.settings.experiment.sweep.is_none()), "each run is one point");
        let bad = text.replace("data.train_per_class", "data.per_class");
        let err = manifest(&bad).unwrap().variants(&[]).unwrap_err().to_string();
        assert!(err.contains("per_class"), "{err}");
    }

    #[test]
    fn overrides_apply_to_every_variant() {
        let m = manifest(TEXT).unwrap();
        let vs = m
            .variants(&[
                Override::parse("train.lr=0.01").unwrap(),
                Override::parse("data.stored_order=sorted-by-label").unwrap(),
            ])
            .unwrap();
        assert!(vs.iter().all(|v| v.settings.train.lr == 0.01));
        assert_eq!(vs[0].settings.data.stored_order, StoredOrder::SortedByLabel);
    }

    #[test]
    fn a_misspelled_key_is_located_with_a_hint() {
        let text = TEXT.replace("lr = 0.5", "lrr = 0.5");
        let m = manifest(&text).unwrap();
        let err = m.variants(&[]).unwrap_err();
        let d = &err.0[0];
        assert_eq!(d.key.as_deref(), Some("variant[1].train.lrr"));
        let line = text.lines().position(|l| l.starts_with("lrr")).unwrap() + 1;
        assert_eq!(d.location, Some((line, 1)));
        assert_eq!(d.hint.as_deref(), Some("did you mean `lr`?"));
        assert!(d.to_string().starts_with(&format!("m.toml:{line}:1: error: unknown field `lrr`")), "{d}");
    }

    #[test]
    fn a_misspelled_choice_and_a_nested_key_get_hints_from_the_schema() {
        let hint = |from: &str, to: &str| {
            let text = TEXT.replace(from, to);
            let err = manifest(&text).unwrap().variants(&[]).unwrap_err();
            (err.0[0].key.clone(), err.0[0].hint.clone())
        };
        let (key, hint_text) = hint("seed = 3", "seed = 3\nkind = \"grph\"");
        assert_eq!((key.as_deref(), hint_text.as_deref()), (Some("experiment.kind"), Some("did you mean `graph`?")));
        let (key, hint_text) = hint("seed = 3", "seed = 3\nexecutor = \"zzzzzz\"");
        assert_eq!(key.as_deref(), Some("experiment.executor"));
        assert_eq!(hint_text.as_deref(), Some("one of: inline, processes, slurm"));
        let (key, hint_text) = hint("[sampler]", "[data.shift]\nnosie = 1.0\n\n[sampler]");
        assert_eq!((key.as_deref(), hint_text.as_deref()), (Some("data.shift.nosie"), Some("did you mean `noise`?")));
    }

    #[test]
    fn a_wrong_type_in_the_base_is_located() {
        let text = TEXT.replace("epochs = 2", "epochs = \"two\"");
        let err = manifest(&text).unwrap().variants(&[]).err().unwrap();
        let line = text.lines().position(|l| l.starts_with("epochs")).unwrap() + 1;
        assert_eq!(err.0[0].key.as_deref(), Some("train.epochs"));
        assert_eq!(err.0[0].location.map(|l| l.0), Some(line));
    }

    #[test]
    fn syntax_errors_and_bad_variants_are_reported() {
        let err = manifest("[train\nlr = 1").err().unwrap();
        assert_eq!(err.0[0].location.map(|l| l.0), Some(1));
        let err = manifest("[[variant]]\nname = \"x\"\n[[variant]]\nname = \"x\"\n").err().unwrap();
        assert!(err.0[0].message.contains("two variants are named `x`"));
        assert_eq!(err.0[0].location, Some((4, 1)));
        let err = manifest("[[variant]]\nseed = 1\n").err().unwrap();
        assert!(err.0[0].message.contains("needs a `name`"));
    }

    #[test]
    fn a_component_without_use_is_an_error() {
        let err = manifest("[sampler]\nchunk = 3\n").unwrap().variants(&[]).err().unwrap();
        assert!(err.0[0].message.contains("needs `use"));
        assert_eq!(err.0[0].location, Some((1, 2)));
    }

    #[test]
    fn seeds_repeat_every_variant() {
        let m = manifest(&TEXT.replace("seed = 3", "seeds = [1, 2]")).unwrap();
        let vs = m.variants(&[]).unwrap();
        let names: Vec<(&str, u64)> = vs.iter().map(|v| (v.name.as_str(), v.settings.experiment.seed)).collect();
        assert_eq!(names, [("a@1", 1), ("a@2", 2), ("b@1", 1), ("b@2", 2)]);
    }

    #[test]
    fn a_bad_override_is_blamed_on_the_override() {
        let m = manifest(TEXT).unwrap();
        let err = m.variants(&[Override::parse("train.lrr=3").unwrap()]).err().unwrap();
        assert_eq!(err.0[0].location, None);
        assert!(err.0[0].message.starts_with("--set train.lrr=3: unknown field `lrr`"), "{}", err.0[0]);
    }

    #[test]
    fn override_values_are_typed() {
        assert_eq!(Override::parse("train.lr=0.5").unwrap().value, toml::Value::Float(0.5));
        assert_eq!(Override::parse("train.epochs = 3").unwrap().value, toml::Value::Integer(3));
        assert_eq!(Override::parse("data.source=blobs").unwrap().value, toml::Value::String("blobs".into()));
        assert!(Override::parse("train.lr").is_err());
    }
}
