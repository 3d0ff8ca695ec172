//! A `graph` unit: one variant × seed × sweep value. Builds (or reads) the
//! graph, lets the objective choose seed sets at each budget, and evaluates
//! them at θ_c and over the grid of θs, against the per-θ reference. The
//! objective's own report goes under its id, the host's evaluation under
//! `objective`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::error::{bail, invalid, Result};
use tessera_sdk::SeedRng;

use super::setup::{peak_rss_mb, progress_bar, role_seed};
use super::{RunOptions, Session};
use crate::graph;
use crate::manifest::Variant;
use crate::plugin::CallContext;
use crate::report::{self, ReportJson, SeriesJson};

/// Runs one `graph` unit (snapshots under `graphs/` of `unit_dir`); its report.
pub(super) fn run_graph(
    session: &Session,
    variant: &Variant,
    options: &RunOptions,
    unit_dir: &std::path::Path,
) -> Result<BTreeMap<String, ReportJson>> {
    let job = GraphJob::new(session, variant, options, unit_dir)?;
    let spec = variant.objective.as_ref().ok_or_else(|| invalid!("no objective"))?;
    let mut objective = session.registry.new_graph_objective(&spec.id, &spec.params_text())?;
    let (mut plugin, mut host) = (ReportJson::default(), ReportJson::default());
    let mut by_k: Vec<BudgetFigures> = Vec::new();
    for k in job.budgets()? {
        let (figures, at_budget) = job.evaluate_budget(&mut objective, &spec.id, k)?;
        by_k.push(figures);
        if let Some(at_budget) = at_budget {
            (plugin, host) = at_budget;
        }
    }
    host.series.extend(job.by_budget_series(&by_k).series);
    Ok([(spec.id.clone(), plugin), ("objective".to_string(), host)].into())
}

/// A budget's figures: k, spread at the model, worst case over the grid, worst ratio.
struct BudgetFigures {
    k: f64,
    spread: f64,
    worst_case: f64,
    worst_ratio: f64,
}

/// What the phases of a `graph` unit share: the graph and the θ grid.
struct GraphJob<'a> {
    session: &'a Session,
    variant: &'a Variant,
    options: &'a RunOptions,
    /// The unit's work folder (graph snapshots, the objective's arrays).
    unit_dir: &'a std::path::Path,
    graph: Arc<graph::Graph>,
    graph_seed: u64,
    grid_probabilities: Vec<Vec<f32>>,
}

impl<'a> GraphJob<'a> {
    /// Phase 1: the graph (its snapshot written when asked) and the grid's
    /// edge probabilities.
    fn new(
        session: &'a Session,
        variant: &'a Variant,
        options: &'a RunOptions,
        unit_dir: &'a std::path::Path,
    ) -> Result<Self> {
        let g = &variant.settings.graph;
        let graph_seed = g.seed.unwrap_or(variant.settings.experiment.seed);
        let graph = shared_graph(session, g, graph_seed, &variant.name)?;
        if g.write_snap {
            write_snapshot(&graph, g, graph_seed, &unit_dir.join("graphs"), &variant.name)?;
        }
        let grid = evaluation_grid(&graph, g.evaluation_thetas, graph_seed);
        let grid_probabilities = grid.iter().map(|t| graph.view().probabilities_at(t)).collect();
        Ok(GraphJob { session, variant, options, unit_dir, graph, graph_seed, grid_probabilities })
    }

    fn seed(&self) -> u64 {
        self.variant.settings.experiment.seed
    }

    /// The budgets: `graph.budget` and `graph.budgets`, sorted, each at most the nodes.
    fn budgets(&self) -> Result<Vec<u32>> {
        let g = &self.variant.settings.graph;
        let mut budgets: Vec<u32> = std::iter::once(g.budget).chain(g.budgets.iter().copied()).collect();
        if let Some(k) = budgets.iter().find(|&&k| k > self.graph.nodes()) {
            bail!(
                "graph.budget: a seed set of {k} nodes in a graph of {} nodes; use a budget of at most the graph's nodes",
                self.graph.nodes()
            );
        }
        budgets.sort_unstable();
        budgets.dedup();
        Ok(budgets)
    }

    /// Phase 2, per budget: the objective's choice, checked, and its spread
    /// at the model and over the grid against the per-θ reference. At
    /// `graph.budget`, also the report (the plugin's, with the host's figures).
    fn evaluate_budget(
        &self,
        objective: &mut crate::plugin::GraphObjectiveHandle,
        id: &str,
        k: u32,
    ) -> Result<(BudgetFigures, Option<(ReportJson, ReportJson)>)> {
        let (g, graph) = (&self.variant.settings.graph, &self.graph);
        let started = Instant::now();
        let mut ctx = CallContext::new(role_seed(self.seed(), "objective"), self.options.cancel.clone());
        ctx.progress = progress_bar(self.options, 0, format!("{}: {id} (k = {k})", self.variant.name));
        let choice = objective.choose(&graph.view(), k, &ctx)?;
        if let Some(bar) = ctx.progress.take() {
            bar.finish_and_clear();
        }
        let choose_seconds = started.elapsed().as_secs_f64();
        let peak_memory_mb = peak_rss_mb();
        crate::contract::seed_choice(id, &choice, k, graph.nodes())?;
        crate::contract::plugin_report(id, &choice.report)?;
        // E_S[σ(S)] of the chosen distribution under `probabilities`.
        let evaluation_seed = role_seed(self.seed(), "evaluation");
        let expected = |probabilities: graph::EdgeProbabilities| {
            let sets = choice.sets.iter().map(|set| (set.weight, set.seeds.as_slice()));
            graph::expected_spread(graph, probabilities, sets, g.simulations, evaluation_seed)
        };
        let at_model = expected(graph.probabilities());
        let grid: Vec<graph::SpreadEstimate> =
            self.grid_probabilities.iter().map(|p| expected(graph::EdgeProbabilities::PerEdge(p))).collect();
        let references = reference_values(
            self.session,
            g,
            self.graph_seed,
            graph,
            &self.grid_probabilities,
            k,
            self.options,
            self.seed(),
        )?;
        let worst = grid.iter().copied().min_by(|a, b| a.mean.total_cmp(&b.mean));
        let ratios: Vec<f64> =
            grid.iter().zip(&references).map(|(s, r)| if r.mean > 0.0 { s.mean / r.mean } else { 1.0 }).collect();
        let worst_ratio = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let figures = BudgetFigures {
            k: k as f64,
            spread: at_model.mean,
            worst_case: worst.map_or(f64::NAN, |w| w.mean),
            worst_ratio,
        };
        if k != g.budget {
            return Ok((figures, None));
        }
        let mut host = ReportJson::default();
        host.scalars.insert("expected_spread".into(), at_model.mean);
        host.scalars.insert("expected_spread_ci95".into(), at_model.ci95);
        host.scalars.insert("choose_seconds".into(), choose_seconds);
        host.scalars.insert("peak_memory_mb".into(), peak_memory_mb);
        self.graph_scalars(&mut host);
        host.scalars.insert("seed_sets".into(), choice.sets.len() as f64);
        host.tables.push(seed_sets_table(&choice));
        if let Some(worst) = worst {
            add_grid_figures(&mut host, worst, &grid, &references, &ratios);
        }
        let plugin_report = super::arrays::kept_report(self.unit_dir, &self.variant.name, id, id, &choice.report)?;
        Ok((figures, Some((plugin_report, host))))
    }

    /// The graph's size and what reading it dropped.
    fn graph_scalars(&self, host: &mut ReportJson) {
        let graph = &self.graph;
        host.scalars.insert("graph_nodes".into(), graph.nodes() as f64);
        host.scalars.insert("graph_edges".into(), graph.edges() as f64);
        host.scalars.insert("graph_self_loops_dropped".into(), graph.dropped.self_loops as f64);
        host.scalars.insert("graph_duplicate_edges_dropped".into(), graph.dropped.duplicates as f64);
    }

    /// Phase 3: spread, worst case and worst ratio against k, with several budgets.
    fn by_budget_series(&self, by_k: &[BudgetFigures]) -> ReportJson {
        let mut host = ReportJson::default();
        if by_k.len() < 2 {
            return host;
        }
        let series = |name: &str, y_label: &str, f: fn(&BudgetFigures) -> f64| SeriesJson {
            name: name.into(),
            x_label: "budget k".into(),
            y_label: y_label.into(),
            x: by_k.iter().map(|r| r.k).collect(),
            y: by_k.iter().map(f).collect(),
        };
        host.series.push(series("spread_by_k", "expected spread", |r| r.spread));
        if !self.grid_probabilities.is_empty() {
            host.series.push(series("worst_case_spread_by_k", "worst-case spread over the grid", |r| r.worst_case));
            if !self.variant.settings.graph.reference.is_empty() {
                host.series.push(series("worst_case_ratio_by_k", "worst-case ratio to the per-θ reference", |r| {
                    r.worst_ratio
                }));
            }
        }
        host
    }
}

/// The graph `g` at `graph_seed`, built (with its in-edges) or taken from
/// the session's cache: variants with the same `[graph]` share one.
fn shared_graph(
    session: &Session,
    g: &crate::manifest::GraphConfig,
    graph_seed: u64,
    name: &str,
) -> Result<Arc<graph::Graph>> {
    let key = graph_key(g, graph_seed);
    let mut cache = session.graph_cache.lock().expect("graph cache lock");
    if let Some((_, graph)) = cache.as_ref().filter(|(k, _)| *k == key) {
        log::info!("{name}: the graph of an earlier variant, shared");
        return Ok(graph.clone());
    }
    *cache = None; // drop the last graph before building the next
    let started = Instant::now();
    let graph = Arc::new(graph::build(g, graph_seed, &session.manifest.dir())?);
    log::info!(
        "{name}: graph with {} nodes and {} edges ready in {:.1}s",
        graph.nodes(),
        graph.edges(),
        started.elapsed().as_secs_f64()
    );
    *cache = Some((key, graph.clone()));
    Ok(graph)
}

/// What makes a graph: `[graph]` but the keys that only say how to
/// evaluate on it (budgets, simulations, reference, grid, snapshot), and the seed.
fn graph_key(g: &crate::manifest::GraphConfig, graph_seed: u64) -> String {
    let mut graph_only = g.clone();
    (graph_only.budget, graph_only.simulations, graph_only.evaluation_thetas) = (0, 0, 0);
    graph_only.budgets.clear();
    graph_only.reference.clear();
    graph_only.write_snap = false;
    format!("{}|{graph_seed}", toml::to_string(&graph_only).unwrap_or_default())
}

/// The graph as a SNAP edge list under `dir`, its `[graph]` in a comment.
fn write_snapshot(
    graph: &graph::Graph,
    g: &crate::manifest::GraphConfig,
    graph_seed: u64,
    dir: &std::path::Path,
    name: &str,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let comment = format!(
        "tessera {}: [graph] {} (seed {graph_seed})",
        env!("CARGO_PKG_VERSION"),
        toml::to_string(g).unwrap_or_default().replace('\n', "; ")
    );
    Ok(graph::write_snap(graph, &dir.join(format!("{}.txt", report::file_stem_safe(name))), &comment)?)
}

/// The evaluation grid: θ_c, then draws from the box (hyperparametric only).
fn evaluation_grid(graph: &graph::Graph, thetas: u32, graph_seed: u64) -> Vec<Vec<f32>> {
    if graph.theta_center.is_empty() {
        return vec![];
    }
    let mut rng = SeedRng::derive(graph_seed, 0x7E7A);
    let b = graph.theta_radius;
    std::iter::once(graph.theta_center.clone())
        .chain(
            (1..thetas.max(1))
                .map(|_| graph.theta_center.iter().map(|&c| c + ((2.0 * rng.next_f64() - 1.0) * b) as f32).collect()),
        )
        .collect()
}

/// The `seed_sets` table: each set, its weight and its nodes.
fn seed_sets_table(choice: &tessera_sdk::SeedChoice) -> report::TableJson {
    let rows = choice.sets.iter().enumerate().map(|(i, set)| {
        let seeds: Vec<String> = set.seeds.iter().map(u32::to_string).collect();
        vec![serde_json::json!(i), serde_json::json!(set.weight), serde_json::json!(seeds.join(" "))]
    });
    report::TableJson {
        name: "seed_sets".into(),
        columns: ["set", "weight", "seeds"].map(String::from).to_vec(),
        rows: rows.collect(),
    }
}

/// The worst case, the mean over the grid, the ratio, the `theta_grid` table and the spread per θ.
fn add_grid_figures(
    host: &mut ReportJson,
    worst: graph::SpreadEstimate,
    grid: &[graph::SpreadEstimate],
    references: &[graph::SpreadEstimate],
    ratios: &[f64],
) {
    host.scalars.insert("worst_case_spread".into(), worst.mean);
    host.scalars.insert("worst_case_spread_ci95".into(), worst.ci95);
    host.scalars.insert("mean_spread_over_grid".into(), grid.iter().map(|s| s.mean).sum::<f64>() / grid.len() as f64);
    if !references.is_empty() {
        host.scalars.insert("worst_case_ratio".into(), ratios.iter().copied().fold(f64::INFINITY, f64::min));
    }
    let rows = grid.iter().enumerate().map(|(i, s)| {
        let reference = references.get(i);
        vec![
            serde_json::json!(i),
            serde_json::json!(s.mean),
            serde_json::json!(s.ci95),
            serde_json::json!(reference.map(|r| r.mean)),
            serde_json::json!(ratios.get(i)),
        ]
    });
    host.tables.push(report::TableJson {
        name: "theta_grid".into(),
        columns: ["theta", "spread", "ci95", "reference_spread", "ratio"].map(String::from).to_vec(),
        rows: rows.collect(),
    });
    host.series.push(SeriesJson {
        name: "spread_by_theta".into(),
        x_label: "θ of the evaluation grid (0 = θ_c)".into(),
        y_label: "expected spread".into(),
        x: (0..grid.len()).map(|i| i as f64).collect(),
        y: grid.iter().map(|s| s.mean).collect(),
    });
}

/// The reference objective's spread at each θ of the grid for budget `k`
/// (cached: variants on the same graph share them); empty without a reference.
#[allow(clippy::too_many_arguments)]
fn reference_values(
    session: &Session,
    g: &crate::manifest::GraphConfig,
    graph_seed: u64,
    graph: &graph::Graph,
    grid_probabilities: &[Vec<f32>],
    k: u32,
    options: &RunOptions,
    seed: u64,
) -> Result<Vec<graph::SpreadEstimate>> {
    if g.reference.is_empty() || grid_probabilities.is_empty() {
        return Ok(vec![]);
    }
    let key = format!("{}|{graph_seed}|{seed}|{k}", toml::to_string(g).unwrap_or_default());
    if let Some(hit) = session.reference_cache.lock().expect("cache lock").get(&key) {
        return Ok(hit.clone());
    }
    let mut reference = session.registry.new_graph_objective(&g.reference, "")?;
    let mut values = Vec::new();
    for (i, probabilities) in grid_probabilities.iter().enumerate() {
        let in_probabilities = graph.in_order(probabilities);
        let ctx = CallContext::new(role_seed(seed, &format!("reference-{i}")), options.cancel.clone());
        let choice = reference.choose(&graph.fixed_view(probabilities, &in_probabilities), k, &ctx)?;
        let sets = choice.sets.iter().map(|set| (set.weight, set.seeds.as_slice()));
        let probabilities = graph::EdgeProbabilities::PerEdge(probabilities);
        values.push(graph::expected_spread(graph, probabilities, sets, g.simulations, role_seed(seed, "evaluation")));
    }
    log::info!("per-θ reference `{}` at k = {k}: {} models", g.reference, values.len());
    session.reference_cache.lock().expect("cache lock").insert(key, values.clone());
    Ok(values)
}
