//! Phase 5 of a `train` unit and its sequel: the finetuner's selection of
//! layers (or of per-tensor learning-rate multipliers) with the host's
//! oracle, its revisions before each epoch from the observations it asks
//! for, and its report after training.

use std::time::Instant;

use tessera_sdk::{LayerInfo, Selection};

use super::{Stored, TrainJob};
use crate::error::{bail, invalid, Result};
use crate::finetune::{CandidateOrder, CandidateSampler};
use crate::model::Model;
use crate::plugin::{CallContext, FinetunerHandle};
use crate::report::{self, ReportJson};
use crate::run::setup::{progress_bar, role_seed};
use crate::storage::CostModel;

/// A finetuner kept through training: it revises its selection before
/// each epoch when it asks for observations.
pub(super) struct Finetuning {
    pub(super) handle: FinetunerHandle,
    pub(super) ctx: CallContext,
    /// The model's layers, as the finetuner was shown them.
    pub(super) layers: Vec<LayerInfo>,
    /// The observations it asks for before each epoch.
    pub(super) requests: Vec<tessera_sdk::ObservationRequest>,
    /// Each selection in force: (the epoch it started at, its multiplier per tensor).
    pub(super) revisions: Vec<(f64, Vec<f32>)>,
    /// The selection in force now, as given.
    pub(super) in_force: InForce,
}

/// A selection as a finetuner gave it: a multiplier per tensor, or (none
/// given) the layers that train.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct InForce {
    /// The multiplier of each tensor (empty: by layers).
    pub multipliers: Vec<f32>,
    /// The positions of the layers that train (the head always does).
    pub trainable: Vec<u32>,
}

impl InForce {
    fn of(selection: &Selection) -> Self {
        InForce { multipliers: selection.multipliers.to_vec(), trainable: selection.trainable.to_vec() }
    }
}

impl Finetuning {
    /// Hands the finetuner its observations before `checkpoint`'s epoch and
    /// applies a new selection, if it gives one, to `model`.
    pub(super) fn revise(
        &mut self,
        model: &Model,
        checkpoint: &tessera_sdk::Checkpoint,
        observations: &[tessera_sdk::Observation],
    ) -> tessera_torch::Result<()> {
        let revised = self.handle.revise(checkpoint, observations, &self.layers, &self.ctx)?;
        if let Some(selection) = revised {
            self.in_force = InForce::of(&selection);
            apply(model, &self.in_force, &self.layers)?;
            self.revisions.push(revision(checkpoint.epoch, &selection, &self.layers));
        }
        Ok(())
    }

    /// The finetuner, its revisions and the selection in force as a saved
    /// state left them, that selection put in force on `model`.
    pub(super) fn restore(
        &mut self,
        model: &Model,
        saved: &super::resume::FinetunerState,
    ) -> tessera_torch::Result<()> {
        if let Some(bytes) = saved.kept.bytes() {
            self.handle.load_state(bytes)?;
        }
        (self.revisions, self.in_force) = (saved.revisions.clone(), saved.in_force.clone());
        apply(model, &self.in_force, &self.layers)?;
        Ok(())
    }
}

impl<'a> TrainJob<'a> {
    /// Phase 5 (4 with `train.oracle_order = "shuffle"`): the finetuner's
    /// choice of trainable layers (the head always trains) or of a
    /// learning-rate multiplier per tensor. Its own report goes under its
    /// id; the host's (the oracle's figures, the layers chosen) under
    /// `finetuner`. The finetuner is kept to revise its choice before each
    /// epoch if it asks for observations.
    pub(super) fn select_layers(&mut self, model: &mut Model, stored: &Stored) -> Result<()> {
        let Some(spec) = self.variant.finetuner.clone() else { return Ok(()) };
        self.train_in_memory(stored, "the finetuner's oracle")?;
        let layers: Vec<LayerInfo> = model.layers();
        let mut handle = self.session.registry.new_finetuner(&spec.id, &spec.params_text())?;
        let order = self.candidate_order()?;
        let mut oracle = crate::finetune::FinetuneOracle::new(model, self.oracle_setup(), order);
        let mut ctx = self.ctx("finetuner");
        ctx.progress = progress_bar(self.options, 0, format!("{}: {}", self.variant.name, spec.id));
        let started = Instant::now();
        let selection = handle.select(&layers, &mut oracle, &ctx)?;
        let search_seconds = started.elapsed().as_secs_f64();
        if let Some(bar) = ctx.progress.take() {
            bar.finish_and_clear();
        }
        let plugin_report =
            crate::run::arrays::kept_report(self.unit_dir, &self.variant.name, &spec.id, &spec.id, &selection.report)?;
        let mut report = ReportJson::default();
        report.scalars.insert("search_seconds".into(), search_seconds);
        oracle.add_to_report(&mut report, &layers, &CostModel::preset(self.s.storage.preset));
        drop(oracle);
        let in_force = InForce::of(&selection);
        let trainable = apply(model, &in_force, &layers)?;
        report.scalars.insert("trainable_blocks".into(), (trainable.len().saturating_sub(1)) as f64);
        report.scalars.insert("trainable_parameters".into(), model.trainable_parameters() as f64);
        // What the chosen layers cost: parameters trained, and the search for them.
        report.headline.extend(["trainable_parameters".into(), "search_seconds".into()]);
        report.tables.push(trainable_layers_table(&trainable, &layers));
        self.reports.insert(spec.id.clone(), plugin_report);
        self.reports.insert("finetuner".to_string(), report);
        let names: Vec<&str> =
            trainable.iter().filter_map(|&p| layers.get(p as usize)).map(|l| l.name.as_str()).collect();
        log::info!("{}: training {} ({} of {} layers)", spec.id, names.join(" "), trainable.len(), layers.len());
        let requests = handle.requires()?;
        let revisions = vec![revision(0.0, &selection, &layers)];
        self.finetuner = Some(Finetuning { handle, ctx, layers, requests, revisions, in_force });
        Ok(())
    }

    /// After training: the finetuner's own figures, added to its report
    /// (a name its selection's report used already fails the variant), and
    /// the host's table of its revisions.
    pub(super) fn finish_finetuner(&mut self) -> Result<()> {
        let Some(mut finetuning) = self.finetuner.take() else { return Ok(()) };
        let id = finetuning.handle.id.clone();
        let report = finetuning.handle.finish(&finetuning.ctx)?;
        let kept = crate::run::arrays::kept_report(self.unit_dir, &self.variant.name, &id, &id, &report)?;
        let mine = self.reports.entry(id.clone()).or_default();
        merge_report(mine, kept).map_err(|name| {
            invalid!("{id}: its report after training repeats `{name}`, a name its selection's report has")
        })?;
        if finetuning.revisions.len() > 1 {
            let host = self.reports.entry("finetuner".to_string()).or_default();
            host.tables.push(revisions_table(&finetuning.revisions, &finetuning.layers));
            host.scalars.insert("revisions".into(), (finetuning.revisions.len() - 1) as f64);
        }
        Ok(())
    }

    /// How the oracle trains each candidate: the epochs, batch size and
    /// optimizer of `[train]` for `train.oracle_epochs`, no checkpoints.
    fn oracle_setup(&self) -> crate::finetune::OracleSetup<'_> {
        let s = &self.s;
        let config = crate::manifest::TrainConfig {
            epochs: s.train.oracle_epochs,
            checkpoint_every: 0,
            checkpoint_steps: vec![],
            checkpoint_log: 0,
            max_examples: None,
            ..s.train.clone()
        };
        crate::finetune::OracleSetup {
            model: &s.model,
            train: &self.splits.train,
            validation: &self.splits.validation,
            config,
            seed: role_seed(s.experiment.seed, "oracle"),
            device: self.device,
            cache_bytes: s.train.oracle_cache_mb << 20,
        }
    }

    /// The order oracle candidates train in (`train.oracle_order`): a fresh
    /// instance of the variant's sampler each, or the host's shuffle.
    fn candidate_order(&self) -> Result<CandidateOrder<'a>> {
        if self.s.train.oracle_order == crate::choice::OracleOrder::Shuffle {
            return Ok(CandidateOrder::Shuffle);
        }
        if !self.sampler.requires()?.is_empty() {
            bail!(
                "{}: the finetuner's oracle cannot train candidates with this sampler, which observes training \
                 (the oracle gives its candidates no observations): set train.oracle_order = \"shuffle\"",
                self.sampler.id
            );
        }
        let (session, spec) = (self.session, self.variant.sampler.as_ref().ok_or_else(|| invalid!("no sampler"))?);
        let (id, params) = (spec.id.clone(), spec.params_text());
        let storage = &self.s.storage;
        Ok(CandidateOrder::Sampler {
            make: Box::new(move || {
                Ok(Box::new(session.registry.new_sampler(&id, &params)?) as Box<dyn CandidateSampler>)
            }),
            layout: self.layout,
            access: storage.access,
            buffer_blocks: storage.buffer_blocks,
        })
    }
}

/// Puts `selection` in force on `model`: its multipliers, or its layers (and
/// the head) at full rate; the layers that train, by position.
fn apply(model: &Model, selection: &InForce, layers: &[LayerInfo]) -> tessera_torch::Result<Vec<u32>> {
    if !selection.multipliers.is_empty() {
        model.set_multipliers(&selection.multipliers)?;
        let mut at = 0;
        let mut trainable = Vec::new();
        for layer in layers {
            let of_layer = &selection.multipliers[at..at + layer.tensors.len()];
            at += layer.tensors.len();
            if of_layer.iter().any(|&m| m > 0.0) {
                trainable.push(layer.position);
            }
        }
        return Ok(trainable);
    }
    let head = layers.len() as u32 - 1;
    let mut trainable: Vec<u32> = selection.trainable.iter().copied().chain([head]).collect();
    trainable.sort_unstable();
    trainable.dedup();
    model.set_trainable(&trainable)?;
    Ok(trainable)
}

/// A selection as the multiplier of each tensor, from `epoch` on.
fn revision(epoch: f64, selection: &Selection, layers: &[LayerInfo]) -> (f64, Vec<f32>) {
    if !selection.multipliers.is_empty() {
        return (epoch, selection.multipliers.to_vec());
    }
    let head = layers.len() as u32 - 1;
    let trains = |p: u32| p == head || selection.trainable.contains(&p);
    (epoch, layers.iter().flat_map(|l| vec![f32::from(u8::from(trains(l.position))); l.tensors.len()]).collect())
}

/// `more` added to `report`; the first name both have, if any.
fn merge_report(report: &mut ReportJson, more: ReportJson) -> std::result::Result<(), String> {
    for (name, value) in more.scalars {
        if report.scalars.insert(name.clone(), value).is_some() {
            return Err(name);
        }
    }
    let clash = |names: Vec<&String>, new: &String| names.contains(&new);
    for series in more.series {
        if clash(report.series.iter().map(|s| &s.name).collect(), &series.name) {
            return Err(series.name);
        }
        report.series.push(series);
    }
    for table in more.tables {
        if clash(report.tables.iter().map(|t| &t.name).collect(), &table.name) {
            return Err(table.name);
        }
        report.tables.push(table);
    }
    report.arrays.extend(more.arrays);
    report.headline.extend(more.headline);
    Ok(())
}

/// The finetuner's revisions: a row per selection in force, from the epoch
/// it started at, with its multiplier of every tensor (a column per tensor,
/// by name).
fn revisions_table(revisions: &[(f64, Vec<f32>)], layers: &[LayerInfo]) -> report::TableJson {
    let mut columns = vec!["epoch".to_string()];
    columns.extend(LayerInfo::tensors_of(layers).map(|(_, t)| t.name.to_string()));
    let row = |(epoch, m): &(f64, Vec<f32>)| {
        std::iter::once(serde_json::json!(epoch)).chain(m.iter().map(|&v| serde_json::json!(v))).collect()
    };
    report::TableJson { name: "revisions".into(), columns, rows: revisions.iter().map(row).collect() }
}

/// The `trainable_layers` table of the finetuner's report.
fn trainable_layers_table(trainable: &[u32], layers: &[LayerInfo]) -> report::TableJson {
    report::TableJson {
        name: "trainable_layers".into(),
        columns: vec!["position".into(), "layer".into(), "parameters".into()],
        rows: trainable
            .iter()
            .filter_map(|&p| layers.get(p as usize))
            .map(|l| {
                vec![serde_json::json!(l.position), serde_json::json!(l.name.as_str()), serde_json::json!(l.parameters)]
            })
            .collect(),
    }
}
