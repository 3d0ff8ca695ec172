//! A `train` unit: one variant × seed × sweep value. Its phases, in order:
//! the data, the stored shards, the reference classifier, the model
//! (pretrained or not), the sampler's offline pass, the finetuner's layer
//! selection (before the offline pass with `train.oracle_order = "shuffle"`),
//! training with the metrics observing, and the engine's report.
//!
//! With `storage.mode = "shards"` the training split is never read into
//! memory whole unless a component asks for it (the reference classifier,
//! pretraining, a finetuner, a metric observing the `train` split): it is
//! streamed from its source into shards (or is a shard folder already), and
//! training reads it back through the block loader.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::error::{bail, invalid, Result};
use tch::Device;
use tessera_sdk::StorageLayout;

mod finetune;
mod fit;
pub(in crate::run) mod resume;
pub(in crate::run) mod seeds;

use super::metrics::finish_metrics;
use super::setup::{progress_bar, role_seed, set_up_libtorch};
use super::{RunOptions, Session};
use crate::data::{self, Splits};
use crate::manifest::{Settings, Variant};
use crate::model::Model;
use crate::plugin::{CallContext, MetricHandle, SamplerHandle};
use crate::report::{self, ReportJson, SeriesJson};
use crate::storage::{
    Access, BlockLoader, CostModel, IoStats, LruPolicy, ShardSet, ShardWriter, StoreCounts, StoreOutput,
};
use crate::train::{self, CurvePoint, FitSummary, TensorData};

/// Runs one `train` unit; its reports by role.
pub(super) fn run_train(
    session: &Session,
    variant: &Variant,
    options: &RunOptions,
    unit_dir: &Path,
    resuming: resume::Resuming,
) -> Result<BTreeMap<String, ReportJson>> {
    let mut job = TrainJob::new(session, variant, options, unit_dir)?;
    job.resuming = Some(resuming);
    let mut prepared = Prepared::new(job)?;
    let fitted = prepared.fit_alone()?;
    prepared.finish(fitted)
}

/// A `train` unit up to training (phases 0–5): its data stored, its
/// reference classifier trained, its model made, the sampler's offline pass
/// and the finetuner's selection done.
struct Prepared<'a> {
    job: TrainJob<'a>,
    storage: Stored,
    reference: Option<Model>,
    model: Model,
}

impl<'a> Prepared<'a> {
    /// Phases 1–5 of `job`.
    fn new(mut job: TrainJob<'a>) -> Result<Self> {
        let mut storage = job.store_shards()?;
        let reference = job.train_reference(&storage)?;
        let mut model = job.initial_model(&storage)?;
        if job.s.train.oracle_order == crate::choice::OracleOrder::Sampler {
            job.offline_pass(&mut storage)?;
            job.select_layers(&mut model, &storage)?;
        } else {
            job.select_layers(&mut model, &storage)?;
            job.offline_pass(&mut storage)?;
        }
        Ok(Prepared { job, storage, reference, model })
    }

    /// Phase 6 alone: the summary and the test curve.
    fn fit_alone(&mut self) -> Result<(FitSummary, Vec<CurvePoint>)> {
        self.job.fit(&mut self.model, &self.storage, self.reference.as_ref())
    }

    /// The phases after training: the pooled part, the shards released, the
    /// metrics', the sampler's, the finetuner's and the engine's reports.
    fn finish(self, (summary, curve): (FitSummary, Vec<CurvePoint>)) -> Result<BTreeMap<String, ReportJson>> {
        let Prepared { mut job, storage, model, .. } = self;
        job.pooled_part(&model, &storage, &summary)?;
        job.release_shards(storage)?;
        finish_metrics(&mut job.metrics, &job.metric_ctx, &mut job.reports, (job.unit_dir, &job.variant.name))?;
        job.finish_sampler()?;
        job.finish_finetuner()?;
        job.engine_report(&model, &summary, &curve)?;
        Ok(job.reports)
    }
}

/// What the phases of a `train` unit share.
struct TrainJob<'a> {
    session: &'a Session,
    variant: &'a Variant,
    options: &'a RunOptions,
    unit_dir: &'a Path,
    /// The settings, with paths resolved against the manifest's folder.
    s: Settings,
    device: Device,
    splits: Splits,
    sampler: SamplerHandle,
    metrics: Vec<MetricHandle>,
    metric_ctx: Vec<CallContext>,
    layout: StorageLayout,
    reports: BTreeMap<String, ReportJson>,
    /// Where the training split is before it is stored.
    train_source: TrainSource,
    /// Whether `splits.train` lacks its features (they are in the shards).
    train_on_disk: bool,
    /// The finetuner after its selection, kept to revise it and report.
    finetuner: Option<finetune::Finetuning>,
    /// Where training saves its state and continues from (taken by the fit).
    resuming: Option<resume::Resuming>,
    /// The shard sets in an object store this unit read (the user's, and
    /// its own copies with `storage.dir = "s3://…"`), for their counts.
    store_sets: Vec<Arc<ShardSet>>,
    /// What the unit wrote to an object store (its own shards), once done.
    store_written: Option<StoreCounts>,
    /// What reading the held-out splits of a shard source took from a store.
    holdout_read: Option<StoreCounts>,
    /// Whether other seeds share its unit (`experiment.batch`): its pooled
    /// part then goes into a folder of its name.
    shares_unit: bool,
}

/// Where the training split comes from.
enum TrainSource {
    /// Memory: `splits.train` holds it.
    Memory,
    /// Its source, read example by example into shards (then dropped).
    Planned(Box<dyn data::ExampleSource>, data::SplitPlan),
    /// A shard folder of the user's, trained in place and never written
    /// (and what reading its held-out splits took from a store).
    Folder(Arc<ShardSet>, Option<StoreCounts>),
    /// Already stored.
    Stored,
}

/// The stored training data: shards (with the folder Tessera owns, and the
/// store prefix it claimed for them with `storage.dir = "s3://…"`) or none.
struct Stored {
    set: Option<Arc<ShardSet>>,
    root: std::path::PathBuf,
    owned: Option<crate::owned::OwnedDir>,
    output: Option<StoreOutput>,
}

impl Drop for Stored {
    /// A unit that failed or stopped before [`TrainJob::release_shards`]
    /// removes the shard folder it created (whatever `storage.keep` says):
    /// left, a `storage.dir` outside the run would refuse the rerun, since
    /// Tessera never writes into a folder it finds. (Its store prefix's
    /// objects go the same way, by [`StoreOutput`]'s own drop.)
    fn drop(&mut self) {
        let Some(owned) = self.owned.take() else { return };
        let path = owned.path().to_path_buf();
        match owned.remove() {
            Ok(()) => log::info!("{}: removed, since the unit that wrote it did not finish", path.display()),
            Err(e) => log::warn!("{}: left in place after the unit failed: {}", path.display(), e.chain()),
        }
    }
}

impl<'a> TrainJob<'a> {
    /// Phase 0: settings, device, data and components.
    fn new(session: &'a Session, variant: &'a Variant, options: &'a RunOptions, unit_dir: &'a Path) -> Result<Self> {
        let s = resolved_settings(&variant.settings, &session.manifest.dir());
        let seed = s.experiment.seed;
        let device = set_up_libtorch(&s.experiment)?;
        let (splits, train_source) = training_data(&s, seed, &session.manifest.dir())?;
        let registry = &session.registry;
        let sampler_spec = variant.sampler.as_ref().ok_or_else(|| invalid!("no sampler"))?;
        let sampler = registry.new_sampler(&sampler_spec.id, &sampler_spec.params_text())?;
        let metrics = variant
            .own_metrics()
            .map(|spec| registry.new_metric(&spec.id, &spec.params_text()))
            .collect::<Result<Vec<_>, _>>()?;
        let metric_ctx = super::metrics::metric_contexts(&metrics, seed, &options.cancel);
        let layout = match &train_source {
            TrainSource::Folder(set, _) => set.index.layout(),
            _ => StorageLayout {
                examples: splits.train.len() as u64,
                block_size: s.storage.block_size.max(1),
                bytes_per_example: (splits.train.dim() * 4 + 8) as u64,
            },
        };
        let train_on_disk = !matches!(train_source, TrainSource::Memory);
        Ok(TrainJob {
            session,
            variant,
            options,
            unit_dir,
            s,
            device,
            splits,
            sampler,
            metrics,
            metric_ctx,
            layout,
            reports: BTreeMap::new(),
            train_source,
            train_on_disk,
            finetuner: None,
            resuming: None,
            store_sets: Vec::new(),
            store_written: None,
            holdout_read: None,
            shares_unit: false,
        })
    }

    /// Reads the stored training split into memory for `why`, once.
    fn train_in_memory(&mut self, stored: &Stored, why: &str) -> Result<()> {
        if !self.train_on_disk {
            return Ok(());
        }
        let set = stored.set.as_ref().ok_or_else(|| invalid!("the training split is neither in memory nor stored"))?;
        log::info!(
            "{}: reading the training split into memory for {why} ({} MB)",
            self.variant.name,
            (set.index.examples * set.index.record_bytes) >> 20
        );
        let mut train = set.read_all()?;
        train.classes = self.splits.train.classes;
        self.splits.train = train;
        self.train_on_disk = false;
        Ok(())
    }

    pub(super) fn ctx(&self, role: &str) -> CallContext {
        CallContext::new(role_seed(self.s.experiment.seed, role), self.options.cancel.clone())
    }

    /// Phase 2: the reference classifier L, trained on the stored training
    /// split before any sampler reorders it, so every variant compares with the same L.
    fn train_reference(&mut self, stored: &Stored) -> Result<Option<Model>> {
        let on_train = self.s.reference.data == crate::choice::ReferenceData::Train;
        if self.s.reference.model.kind != crate::choice::ModelKind::None && on_train {
            self.train_in_memory(stored, "the reference classifier")?;
        }
        let seed = role_seed(self.s.experiment.seed, "reference");
        let data = if on_train { &self.splits.train } else { &self.splits.validation };
        let trained = train::train_reference(&self.s.reference, data, &self.splits.test, self.device, seed)?;
        Ok(trained.map(|train::TrainedReference { model, figures }| {
            let mut report = ReportJson::default();
            report.scalars.extend(figures.into_iter().map(|(k, v)| (k.to_string(), v)));
            log::info!(
                "{}: reference classifier trained ({} test accuracy)",
                self.variant.name,
                report.scalars["test_accuracy"]
            );
            self.reports.insert("reference".to_string(), report);
            model
        }))
    }

    /// Phase 3: the model, pretrained without labels when `[pretrain]` says
    /// so (its encoder saved under `pretrained/`).
    fn initial_model(&mut self, stored: &Stored) -> Result<Model> {
        if self.s.pretrain.method != crate::choice::PretrainMethod::None {
            self.train_in_memory(stored, "pretraining")?;
        }
        let (s, splits) = (&self.s, &self.splits);
        let seed = s.experiment.seed;
        let model = Model::new(
            &s.model,
            &splits.train.shape,
            splits.train.classes as i64,
            self.device,
            role_seed(seed, "model"),
        )?;
        if s.pretrain.method == crate::choice::PretrainMethod::None {
            return Ok(model);
        }
        let data = TensorData::new(&splits.train, self.device);
        let summary = crate::pretrain::pretrain(&s.pretrain, &model, &data, self.device, role_seed(seed, "pretrain"))?;
        let stem = report::file_stem_safe(&self.variant.name);
        let path = self.unit_dir.join("pretrained").join(format!("{stem}.safetensors"));
        std::fs::create_dir_all(path.parent().expect("a folder"))?;
        model.save(&path)?;
        let mut report = ReportJson::default();
        report.scalars.insert("first_epoch_loss".into(), summary.epoch_loss.first().copied().unwrap_or(f64::NAN));
        report.scalars.insert("final_loss".into(), summary.epoch_loss.last().copied().unwrap_or(f64::NAN));
        report.scalars.insert("seconds".into(), summary.seconds);
        report.series.push(SeriesJson {
            name: "pretrain_loss".into(),
            x_label: "epoch".into(),
            y_label: format!("{} loss", s.pretrain.method),
            x: (1..=summary.epoch_loss.len()).map(|e| e as f64).collect(),
            y: summary.epoch_loss,
        });
        log::info!("{}: {} pretraining done, encoder saved", self.variant.name, s.pretrain.method);
        self.reports.insert("pretrain".to_string(), report);
        Ok(model)
    }

    /// Phase 1: with `storage.mode = "shards"`, the training split written
    /// as shards, streamed from its source (or a shard folder, as it is).
    /// With `storage.dir = "s3://…"` they are written in the unit's folder,
    /// then uploaded under the variant's prefix (which must be empty) and
    /// read from there.
    fn store_shards(&mut self) -> Result<Stored> {
        let storage = &self.s.storage;
        let prefix = super::session::shards_prefix(self.variant)?;
        let root = super::session::shards_root_outside_run(self.variant, &self.session.manifest.dir())
            .unwrap_or_else(|| self.unit_dir.join("shards").join(report::file_stem_safe(&self.variant.name)));
        if storage.mode != crate::choice::StorageMode::Shards {
            return Ok(Stored { set: None, root, owned: None, output: None });
        }
        let output = prefix.map(|url| StoreOutput::claim(&url, data::stored::store_options(&self.s.data))).transpose();
        let output = output.map_err(|e| invalid!("storage.dir: {e}"))?;
        let owned = crate::owned::OwnedDir::create(&root, "shards")?;
        let mut stored = Stored { set: None, root, owned: Some(owned), output };
        let set = match std::mem::replace(&mut self.train_source, TrainSource::Stored) {
            TrainSource::Folder(set, holdout) => {
                self.store_sets.extend(set.store_counts().map(|_| set.clone()));
                self.holdout_read = holdout;
                set
            }
            TrainSource::Planned(source, plan) => {
                let folder = stored.root.join("stored");
                self.write_stored(&folder, |writer, progress| {
                    Ok(plan.write_train(source.as_ref(), writer, progress)?)
                })?;
                self.open_written(&folder, &mut stored)?
            }
            TrainSource::Memory | TrainSource::Stored => bail!("the training split has no source to store it from"),
        };
        stored.set = Some(set);
        Ok(stored)
    }

    /// Opens the shard folder `folder` this unit wrote: where it is, or
    /// (with a store prefix claimed) once uploaded under the prefix.
    fn open_written(&mut self, folder: &Path, stored: &mut Stored) -> Result<Arc<ShardSet>> {
        let Some(output) = stored.output.as_mut() else { return Ok(Arc::new(ShardSet::open(folder)?)) };
        let name = folder.file_name().and_then(|n| n.to_str()).expect("a folder this unit named");
        let at = output.upload(folder, name)?;
        let set = Arc::new(ShardSet::open_at(&at, data::stored::store_options(&self.s.data))?);
        log::info!("{}: shards uploaded to {at}", self.variant.name);
        self.store_sets.push(set.clone());
        Ok(set)
    }

    /// The end of the unit's shards: the store's counts noted; the local
    /// folder removed unless `storage.keep` (always, when it only staged an
    /// upload); the objects written removed unless `storage.keep`.
    fn release_shards(&mut self, mut stored: Stored) -> Result<()> {
        let keep = self.s.storage.keep;
        if let Some(owned) = stored.owned.take().filter(|_| !keep || stored.output.is_some()) {
            owned.remove()?;
        }
        let Some(output) = stored.output.take() else { return Ok(()) };
        self.store_written = Some(output.counts());
        if keep {
            output.keep();
            return Ok(());
        }
        Ok(output.remove()?)
    }

    /// Writes the shard folder `stored` with `write`, which pushes every
    /// training example (and reports progress).
    fn write_stored(
        &self,
        stored: &Path,
        write: impl FnOnce(&mut ShardWriter, &mut dyn FnMut(usize)) -> Result<()>,
    ) -> Result<()> {
        let started = Instant::now();
        let train = &self.splits.train;
        let bar = progress_bar(self.options, self.layout.examples, format!("{}: writing shards", self.variant.name));
        let mut writer = ShardWriter::create(
            stored,
            &train.shape,
            train.classes,
            self.layout.block_size,
            self.s.storage.blocks_per_shard,
        )?;
        write(&mut writer, &mut |i| {
            if let Some(bar) = &bar {
                bar.set_position(i as u64)
            }
        })?;
        writer.finish()?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        log::info!(
            "{}: wrote {} examples as shards in {:.1}s",
            self.variant.name,
            self.layout.examples,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Phase 4 (5 with `train.oracle_order = "shuffle"`): the sampler's
    /// offline order, if it has one: the stored data rewritten in that order
    /// (or, in memory, reordered and its I/O counted).
    fn offline_pass(&mut self, stored: &mut Stored) -> Result<()> {
        let sampler_ctx = self.ctx("sampler");
        let Some(offline) = self.sampler.offline_order(&self.layout, &sampler_ctx)? else { return Ok(()) };
        let started = Instant::now();
        let buffer = self.s.storage.offline_buffer_blocks.unwrap_or(self.s.storage.buffer_blocks);
        let (read, written) = match stored.set.clone() {
            Some(set) => self.rewrite_shards(&set, stored, offline, buffer)?,
            None => self.reorder_in_memory(offline, buffer)?,
        };
        let cost = CostModel::preset(self.s.storage.preset);
        let mut report = ReportJson::default();
        report.scalars.insert("offline_blocks_read".into(), read.requests as f64);
        report.scalars.insert("offline_bytes_read".into(), read.bytes as f64);
        report.scalars.insert("offline_blocks_written".into(), written.requests as f64);
        report.scalars.insert("offline_bytes_written".into(), written.bytes as f64);
        report
            .scalars
            .insert("offline_modeled_seconds".into(), read.modeled_seconds(&cost) + written.modeled_seconds(&cost));
        report.scalars.insert("offline_seconds".into(), started.elapsed().as_secs_f64());
        self.reports.insert("sampler".to_string(), report);
        Ok(())
    }

    /// Reads the stored shards in the offline order and writes new ones.
    fn rewrite_shards(
        &mut self,
        set: &Arc<ShardSet>,
        stored: &mut Stored,
        offline: crate::plugin::OrderStream,
        buffer: usize,
    ) -> Result<(IoStats, IoStats)> {
        let (layout, storage) = (self.layout, &self.s.storage);
        let loader = BlockLoader::new(set.clone(), buffer, Access::Block, storage.prefetch);
        let mut reader = loader.start(Box::new(offline));
        let target = stored.root.join("offline");
        let mut writer = ShardWriter::create(
            &target,
            &set.index.shape,
            set.index.classes,
            layout.block_size,
            storage.blocks_per_shard,
        )?;
        let dim = set.index.dim();
        let mut seen = vec![false; layout.examples as usize];
        let mut new_order = Vec::with_capacity(layout.examples as usize);
        loop {
            let mut features = Vec::new();
            let examples = reader.next_examples(4096, &mut features)?;
            if examples.is_empty() {
                break;
            }
            for (k, e) in examples.iter().enumerate() {
                if std::mem::replace(&mut seen[e.id as usize], true) {
                    bail!("{}: the offline order visits example {} twice", self.sampler.id, e.id);
                }
                writer.push(e.label, &features[k * dim..(k + 1) * dim])?;
                new_order.push(e.id as usize);
            }
        }
        let read = reader.finish()?;
        if let Some(missing) = seen.iter().position(|&v| !v) {
            bail!("{}: the offline order leaves out example {missing}", self.sampler.id);
        }
        let (_, written) = writer.finish()?;
        let new_set = self.open_written(&target, stored)?;
        if !self.train_on_disk {
            self.splits.train = new_set.read_all()?;
        }
        self.splits.noised = renumber(&self.splits.noised, &new_order);
        self.splits.reorder_train_bookkeeping(&new_order);
        stored.set = Some(new_set);
        Ok((read, written))
    }

    /// Reorders the in-memory training split; counts what the pass would read and write.
    fn reorder_in_memory(
        &mut self,
        mut offline: crate::plugin::OrderStream,
        buffer: usize,
    ) -> Result<(IoStats, IoStats)> {
        let layout = self.layout;
        let mut order = Vec::with_capacity(layout.examples as usize);
        let mut policy = LruPolicy::new(buffer);
        let mut read = IoStats::default();
        while let Some(chunk) = offline.next_chunk()? {
            for &id in chunk.iter() {
                let block = id / layout.block_size;
                if id < layout.examples && !policy.touch(block) {
                    policy.insert(block, ());
                    read.requests += 1;
                    read.bytes += layout.block_range(block).count() as u64 * layout.bytes_per_example;
                }
                order.push(id as usize);
            }
        }
        let n = self.splits.train.len();
        let mut seen = vec![false; n];
        for &id in &order {
            if id >= n || std::mem::replace(&mut seen[id], true) {
                bail!(
                    "{}: the offline order is not a permutation of the {n} stored examples (id {id})",
                    self.sampler.id
                );
            }
        }
        if order.len() != n {
            bail!("{}: the offline order has {} ids for {n} stored examples", self.sampler.id, order.len());
        }
        self.splits.train = self.splits.train.subset(&order);
        self.splits.noised = renumber(&self.splits.noised, &order);
        self.splits.reorder_train_bookkeeping(&order);
        let written = IoStats {
            requests: layout.blocks(),
            bytes: layout.examples * layout.bytes_per_example,
            ..Default::default()
        };
        Ok((read, written))
    }

    /// Phase 6b: with `pool = "seeds"` metrics, the final model's
    /// predictions on the splits they ask for, kept for collect to stack.
    fn pooled_part(&mut self, model: &Model, stored: &Stored, summary: &FitSummary) -> Result<()> {
        if !super::pooled::pools(self.variant) {
            return Ok(());
        }
        let wanted = super::pooled::wanted(self.session, self.variant)?;
        if wanted.0.iter().any(|s| s == "train") {
            self.train_in_memory(stored, "a pooled metric")?;
        }
        let at = (model, &self.splits, self.device);
        let mut part = self.unit_dir.join(super::pooled::PART);
        if self.shares_unit {
            part.push(report::file_stem_safe(&self.variant.name));
        }
        super::pooled::save_part(self.variant, &wanted, at, summary, &part)
    }

    /// The sampler's own report, under its id (empty: none), checked
    /// against the report contract like a metric's.
    fn finish_sampler(&mut self) -> Result<()> {
        let report = self.sampler.finish(&self.ctx("sampler"))?;
        let id = self.sampler.id.clone();
        let role = if self.reports.contains_key(&id) { format!("sampler:{id}") } else { id.clone() };
        let kept = super::arrays::kept_report(self.unit_dir, &self.variant.name, &role, &id, &report)?;
        if kept != ReportJson::default() {
            self.reports.insert(role, kept);
        }
        Ok(())
    }

    /// Phase 7: the engine's report (accuracy, I/O, time, curves) and, when
    /// finetuned or asked, the model under `models/`.
    fn engine_report(&mut self, model: &Model, summary: &FitSummary, curve: &[CurvePoint]) -> Result<()> {
        let s = &self.s;
        let cost = CostModel::preset(s.storage.preset);
        let mut engine = ReportJson::default();
        if let Some(last) = curve.last() {
            engine.scalars.insert("final_test_accuracy".into(), last.test_accuracy);
            engine.scalars.insert("final_test_loss".into(), last.test_loss);
        }
        engine.scalars.insert("examples_per_second".into(), summary.examples_per_second);
        engine.scalars.insert("trainable_parameters".into(), model.trainable_parameters() as f64);
        engine.scalars.insert("steps".into(), summary.steps as f64);
        if s.train.label_noise > 0.0 {
            engine.scalars.insert("noised_labels".into(), self.splits.noised.len() as f64);
        }
        let epochs = summary.epoch_io.len().max(1) as f64;
        let total = summary.epoch_io.iter().fold(IoStats::default(), |mut total, io| {
            total.add(io);
            total
        });
        engine.scalars.insert("io_requests_per_epoch".into(), total.requests as f64 / epochs);
        engine.scalars.insert("io_bytes_per_epoch".into(), total.bytes as f64 / epochs);
        engine.scalars.insert("io_modeled_seconds_per_epoch".into(), total.modeled_seconds(&cost) / epochs);
        if s.storage.mode == crate::choice::StorageMode::Shards {
            engine.scalars.insert("io_seconds_per_epoch".into(), total.io_seconds / epochs);
            engine.scalars.insert("io_wait_seconds_per_epoch".into(), total.wait_seconds / epochs);
            // Read from storage, what the reads cost is what the run is about.
            engine.headline.extend(["io_requests_per_epoch".into(), "io_modeled_seconds_per_epoch".into()]);
        }
        store_figures(&mut engine, &self.store_sets, (self.holdout_read, self.store_written));
        engine.scalars.insert("epoch_seconds".into(), summary.epoch_seconds.iter().sum::<f64>() / epochs);
        engine.scalars.insert("train_seconds".into(), summary.epoch_seconds.iter().sum::<f64>());
        if self.variant.finetuner.is_some() {
            // A finetuner trades accuracy for training cost.
            engine.headline.push("train_seconds".into());
        }
        engine.scalars.insert("train_examples".into(), self.layout.examples as f64);
        if self.sampler.sampling() != tessera_sdk::Sampling::Permutation {
            visit_figures(&mut engine, summary);
        }
        let peak = summary.epoch_peak_memory_mb.iter().copied().fold(f64::NAN, f64::max);
        engine.scalars.insert("peak_memory_mb".into(), peak);
        if self.variant.finetuner.is_some() || s.train.save_model {
            let stem = report::file_stem_safe(&self.variant.name);
            let path = self.unit_dir.join("models").join(format!("{stem}.safetensors"));
            std::fs::create_dir_all(path.parent().expect("a folder"))?;
            model.save(&path)?;
        }
        if let Some(selection) = &summary.selection {
            self.selection_figures(&mut engine, selection)?;
        }
        engine.series.push(accuracy_by_modeled_io(summary, curve, &cost, s.storage.preset));
        engine.tables.push(io_table(summary, &cost));
        engine.series.extend(curve_series(curve));
        engine.tables.push(checkpoint_table(curve));
        self.reports.insert("engine".to_string(), engine);
        Ok(())
    }
}

impl TrainJob<'_> {
    /// Per-step selection's cost (the extra forward passes) and what it
    /// chose: each trained example's step and id (as `example-ids` gives
    /// it), as the arrays `selected_steps` and `selected_ids`.
    fn selection_figures(&self, engine: &mut ReportJson, selection: &train::SelectionLog) -> Result<()> {
        let s = &mut engine.scalars;
        s.insert("selection_forward_examples".into(), selection.forward_examples as f64);
        s.insert("selection_forward_seconds".into(), selection.forward_seconds);
        s.insert("selected_examples".into(), selection.ids.len() as f64);
        let train_ids = &self.splits.train_ids;
        let original = |i: u64| train_ids.get(i as usize).copied().unwrap_or(i) as i64;
        let k = selection.ids.len() as u64;
        let mut arrays = tessera_sdk::Report::new();
        arrays.array(
            "selected_steps",
            tessera_sdk::Array::i64(vec![k], selection.steps.iter().map(|&t| t as i64).collect()),
        );
        arrays.array(
            "selected_ids",
            tessera_sdk::Array::i64(vec![k], selection.ids.iter().map(|&i| original(i)).collect()),
        );
        let kept = super::arrays::kept_report(self.unit_dir, &self.variant.name, "engine", "engine", &arrays)?;
        engine.arrays.extend(kept.arrays);
        Ok(())
    }
}

/// The splits, and where the training split comes from: with shards, it
/// stays in its source (or its shard folder) until it is stored.
fn training_data(s: &Settings, seed: u64, base: &Path) -> Result<(Splits, TrainSource)> {
    let shards = s.storage.mode == crate::choice::StorageMode::Shards;
    match (shards, s.data.source) {
        (false, _) => Ok((data::load(&s.data, s.train.label_noise, seed, base)?, TrainSource::Memory)),
        (true, crate::choice::DataSource::Shards) => {
            let folders = data::stored::folders(&s.data, base)?;
            let set = Arc::new(data::stored::open_train(&s.data, &folders, base)?);
            let data::stored::Holdout { validation, test, store } = data::stored::holdout(&s.data, &folders, &set)?;
            let train = data::Dataset {
                features: vec![],
                shape: set.index.shape.clone(),
                labels: vec![],
                classes: test.classes,
            };
            let shifted = data::shifted(&s.data, &test, s.data.seed.unwrap_or(seed));
            let splits = Splits {
                train,
                validation,
                test,
                noised: vec![],
                shifted,
                train_ids: vec![],
                clean_train_labels: vec![],
            };
            Ok((splits, TrainSource::Folder(set, store)))
        }
        (true, _) => {
            let planned = data::plan(&s.data, s.train.label_noise, seed, base)?;
            Ok((planned.splits, TrainSource::Planned(planned.source, planned.plan)))
        }
    }
}

/// The settings with model weights and paths resolved against `base`.
fn resolved_settings(settings: &Settings, base: &Path) -> Settings {
    let mut s = settings.clone();
    let resolve = |p: &mut Option<String>| {
        if let Some(path) = p {
            *path = base.join(&*path).display().to_string();
        }
    };
    resolve(&mut s.model.weights);
    resolve(&mut s.model.path);
    resolve(&mut s.reference.model.weights);
    s
}

/// What the object store really served the unit, over every shard set it
/// trained from there (the user's and the unit's own copies): every request
/// (the indexes and each shard's size too), the ranged GETs of blocks or
/// records (the cost model's requests, less the cache's hits), bytes and
/// retries; apart, what reading the held-out splits took; the objects and
/// bytes the unit wrote; and the block cache's hits, misses and evictions.
fn store_figures(
    engine: &mut ReportJson,
    sets: &[Arc<ShardSet>],
    (holdout, written): (Option<StoreCounts>, Option<StoreCounts>),
) {
    let s = &mut engine.scalars;
    let counts: Vec<StoreCounts> = sets.iter().filter_map(|set| set.store_counts()).collect();
    if !counts.is_empty() {
        let read: StoreCounts = counts.into_iter().sum();
        s.insert("store_requests".into(), read.requests as f64);
        s.insert("store_range_requests".into(), read.range_requests as f64);
        s.insert("store_bytes".into(), read.bytes as f64);
        s.insert("store_retries".into(), read.retries as f64);
        // From a store, what it really served and what the reads cost in
        // waiting go beside the model's figures on the page.
        engine.headline.extend(["store_range_requests".into(), "io_wait_seconds_per_epoch".into()]);
    }
    if let Some(holdout) = holdout {
        s.insert("store_holdout_requests".into(), holdout.requests as f64);
        s.insert("store_holdout_bytes".into(), holdout.bytes as f64);
    }
    if let Some(written) = written {
        s.insert("store_objects_written".into(), written.puts as f64);
        s.insert("store_bytes_written".into(), written.bytes_written as f64);
    }
    if let Some(cache) = sets.iter().find_map(|set| set.cache_counts()) {
        s.insert("store_cache_hits".into(), cache.hits as f64);
        s.insert("store_cache_misses".into(), cache.misses as f64);
        s.insert("store_cache_evictions".into(), cache.evictions as f64);
    }
}

/// How a sampler that is not a permutation visited the examples: ids and
/// distinct examples per epoch (means), and examples no epoch visited.
fn visit_figures(engine: &mut ReportJson, summary: &FitSummary) {
    let mean = |xs: &[u64]| xs.iter().sum::<u64>() as f64 / xs.len().max(1) as f64;
    engine.scalars.insert("visits_per_epoch".into(), mean(&summary.epoch_visits));
    engine.scalars.insert("distinct_per_epoch".into(), mean(&summary.epoch_distinct));
    // How much of the data an adaptive sampler used is what it is about.
    engine.headline.push("distinct_per_epoch".into());
    engine.scalars.insert("examples_never_seen".into(), summary.never_seen as f64);
}

/// Accuracy against cumulative modeled I/O time, at the end of each epoch.
fn accuracy_by_modeled_io(
    summary: &FitSummary,
    curve: &[CurvePoint],
    cost: &CostModel,
    preset: crate::choice::StoragePreset,
) -> SeriesJson {
    let mut cumulative = 0.0;
    let (mut x, mut y) = (vec![], vec![]);
    for (i, io) in summary.epoch_io.iter().enumerate() {
        cumulative += io.modeled_seconds(cost);
        if let Some(p) = curve.iter().find(|p| p.epoch == (i + 1) as f64) {
            x.push(cumulative);
            y.push(p.test_accuracy);
        }
    }
    SeriesJson {
        name: "test_accuracy_by_modeled_io".into(),
        x_label: format!("cumulative modeled I/O seconds ({preset})"),
        y_label: "accuracy".into(),
        x,
        y,
    }
}

/// The `io_per_epoch` table: the modeled and the measured storage seconds
/// side by side (reading, and training waiting on the reads), with the
/// process's peak memory after each epoch.
fn io_table(summary: &FitSummary, cost: &CostModel) -> report::TableJson {
    let rows = summary.epoch_io.iter().zip(&summary.epoch_seconds).enumerate().map(|(i, (io, secs))| {
        vec![
            serde_json::json!(i + 1),
            serde_json::json!(io.requests),
            serde_json::json!(io.bytes),
            serde_json::json!(io.modeled_seconds(cost)),
            serde_json::json!(io.io_seconds),
            serde_json::json!(io.wait_seconds),
            serde_json::json!(secs),
            serde_json::json!(summary.epoch_peak_memory_mb.get(i)),
        ]
    });
    report::TableJson {
        name: "io_per_epoch".into(),
        columns: [
            "epoch",
            "requests",
            "bytes",
            "modeled_seconds",
            "io_seconds",
            "wait_seconds",
            "epoch_seconds",
            "peak_memory_mb",
        ]
        .map(String::from)
        .to_vec(),
        rows: rows.collect(),
    }
}

/// The results so far of unit `id` of `variant`, stopped with a saved
/// state: the step it continues from and the engine's curves up to there.
pub(in crate::run) fn results_so_far(
    variant: &Variant,
    run_dir: &Path,
    id: usize,
) -> Option<(u64, BTreeMap<String, ReportJson>)> {
    let store = crate::run::checkpoints::UnitCheckpoints::of(run_dir, id);
    let (state, _) = resume::Resuming::new(store, variant).load().ok()??;
    Some((state.fit.step, stopped_reports(state.fit.step, &state.curve)))
}

/// The engine's report of a run stopped at `step`: its curve so far.
fn stopped_reports(step: u64, curve: &[CurvePoint]) -> BTreeMap<String, ReportJson> {
    let mut engine = ReportJson::default();
    engine.scalars.insert("stopped_at_step".into(), step as f64);
    engine.series.extend(curve_series(curve));
    engine.tables.push(checkpoint_table(curve));
    BTreeMap::from([("engine".to_string(), engine)])
}

/// Test accuracy, test loss and training loss by epoch.
fn curve_series(curve: &[CurvePoint]) -> Vec<SeriesJson> {
    let xs: Vec<f64> = curve.iter().map(|p| p.epoch).collect();
    [
        ("test_accuracy", "accuracy", curve.iter().map(|p| p.test_accuracy).collect::<Vec<_>>()),
        ("test_loss", "cross-entropy", curve.iter().map(|p| p.test_loss).collect()),
        ("train_loss", "cross-entropy", curve.iter().map(|p| p.train_loss).collect()),
    ]
    .into_iter()
    .map(|(name, y_label, ys)| SeriesJson {
        name: name.into(),
        x_label: "epoch".into(),
        y_label: y_label.into(),
        x: xs.clone(),
        y: ys,
    })
    .collect()
}

/// The `checkpoints` table: where training stood at each checkpoint (step,
/// epoch, examples seen) with the engine's figures there, which is how a
/// reader puts a curve over steps on epochs or examples.
fn checkpoint_table(curve: &[CurvePoint]) -> report::TableJson {
    let columns = ["step", "epoch", "examples_seen", "train_loss", "test_loss", "test_accuracy"];
    let row = |p: &CurvePoint| {
        let numbers = [p.epoch, p.train_loss, p.test_loss, p.test_accuracy].map(|x| serde_json::json!(x));
        vec![serde_json::json!(p.step), numbers[0].clone(), serde_json::json!(p.examples_seen)]
            .into_iter()
            .chain(numbers[1..].iter().cloned())
            .collect()
    };
    report::TableJson {
        name: "checkpoints".into(),
        columns: columns.map(String::from).to_vec(),
        rows: curve.iter().map(row).collect(),
    }
}

/// Where `positions` of the old stored order sit after reordering by
/// `order` (new position p holds old example `order[p]`), sorted.
fn renumber(positions: &[usize], order: &[usize]) -> Vec<usize> {
    let marked: std::collections::HashSet<usize> = positions.iter().copied().collect();
    order.iter().enumerate().filter(|(_, old)| marked.contains(old)).map(|(new, _)| new).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renumbering_follows_the_new_order() {
        assert_eq!(renumber(&[0, 3], &[3, 1, 0, 2]), vec![0, 2]);
    }
}
