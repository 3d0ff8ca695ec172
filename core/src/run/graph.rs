//! A `graph` unit: one variant × seed × sweep value. Builds (or reads) the
//! graph, lets the objective choose seed sets at each budget, and evaluates
//! them at θ_c and over the grid of θs, against the per-θ reference.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
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
    let s = &variant.settings;
    let g = &s.graph;
    let seed = s.experiment.seed;
    let graph_seed = g.seed.unwrap_or(seed);
    let started = Instant::now();
    let graph = graph::build(g, graph_seed, &session.manifest.dir())?;
    log::info!(
        "{}: graph with {} nodes and {} edges ready in {:.1}s",
        variant.name,
        graph.nodes(),
        graph.edges(),
        started.elapsed().as_secs_f64()
    );
    if g.write_snap {
        let dir = unit_dir.join("graphs");
        std::fs::create_dir_all(&dir)?;
        let comment = format!(
            "tessera {}: [graph] {} (seed {graph_seed})",
            env!("CARGO_PKG_VERSION"),
            toml::to_string(g).unwrap_or_default().replace('\n', "; ")
        );
        graph::write_snap(&graph, &dir.join(format!("{}.txt", report::file_stem_safe(&variant.name))), &comment)?;
    }
    let spec = variant.objective.as_ref().ok_or_else(|| anyhow!("no objective"))?;
    let mut objective = session.registry.new_graph_objective(&spec.id, &spec.params_text())?;
    let evaluation_seed = role_seed(seed, "evaluation");
    // The evaluation grid: θ_c, then draws from the box (hyperparametric only).
    let grid: Vec<Vec<f32>> =
        if graph.theta_center.is_empty() {
            vec![]
        } else {
            let mut rng = SeedRng::derive(graph_seed, 0x7E7A);
            let b = graph.theta_radius;
            std::iter::once(graph.theta_center.clone())
                .chain((1..g.evaluation_thetas.max(1)).map(|_| {
                    graph.theta_center.iter().map(|&c| c + ((2.0 * rng.next_f64() - 1.0) * b) as f32).collect()
                }))
                .collect()
        };
    let grid_probabilities: Vec<Vec<f32>> = grid.iter().map(|t| graph.view().probabilities_at(t)).collect();
    let mut budgets: Vec<u32> = std::iter::once(g.budget).chain(g.budgets.iter().copied()).collect();
    if let Some(k) = budgets.iter().find(|&&k| k > graph.nodes()) {
        bail!(
            "graph.budget: a seed set of {k} nodes in a graph of {} nodes; use a budget of at most the graph's nodes",
            graph.nodes()
        );
    }
    budgets.sort_unstable();
    budgets.dedup();
    let mut report = ReportJson::default();
    let mut by_k: Vec<(f64, f64, f64, f64)> = Vec::new(); // k, spread, worst case, worst ratio
    for &k in &budgets {
        let started = Instant::now();
        let mut ctx = CallContext::new(role_seed(seed, "objective"), options.cancel.clone());
        ctx.progress = progress_bar(options, 0, format!("{}: {} (k = {k})", variant.name, spec.id));
        let choice = objective.choose(&graph.view(), k, &ctx)?;
        if let Some(bar) = ctx.progress.take() {
            bar.finish_and_clear();
        }
        let choose_seconds = started.elapsed().as_secs_f64();
        let peak_memory_mb = peak_rss_mb();
        crate::contract::seed_choice(&spec.id, &choice, k, graph.nodes())?;
        let plugin_report = crate::contract::plugin_report(&spec.id, &choice.report)?;
        // E_S[σ(S)] of the chosen distribution under `probabilities`.
        let expected = |probabilities: &[f32]| {
            let sets = choice.sets.iter().map(|set| (set.weight, set.seeds.as_slice()));
            graph::expected_spread(&graph, probabilities, sets, g.simulations, evaluation_seed)
        };
        let at_model = expected(&graph.probabilities);
        let grid_spreads: Vec<graph::SpreadEstimate> = grid_probabilities.iter().map(|p| expected(p)).collect();
        let references = reference_values(session, g, graph_seed, &graph, &grid_probabilities, k, options, seed)?;
        let worst = grid_spreads.iter().copied().min_by(|a, b| a.mean.total_cmp(&b.mean));
        let ratios: Vec<f64> = grid_spreads
            .iter()
            .zip(&references)
            .map(|(s, r)| if r.mean > 0.0 { s.mean / r.mean } else { 1.0 })
            .collect();
        let worst_ratio = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        by_k.push((k as f64, at_model.mean, worst.map_or(f64::NAN, |w| w.mean), worst_ratio));
        if k != g.budget {
            continue;
        }
        report = plugin_report;
        let mut host = ReportJson::default();
        host.scalars.insert("expected_spread".into(), at_model.mean);
        host.scalars.insert("expected_spread_ci95".into(), at_model.ci95);
        host.scalars.insert("choose_seconds".into(), choose_seconds);
        host.scalars.insert("peak_memory_mb".into(), peak_memory_mb);
        host.scalars.insert("graph_nodes".into(), graph.nodes() as f64);
        host.scalars.insert("graph_edges".into(), graph.edges() as f64);
        host.scalars.insert("graph_self_loops_dropped".into(), graph.dropped.self_loops as f64);
        host.scalars.insert("graph_duplicate_edges_dropped".into(), graph.dropped.duplicates as f64);
        host.scalars.insert("seed_sets".into(), choice.sets.len() as f64);
        let rows = choice.sets.iter().enumerate().map(|(i, set)| {
            let seeds: Vec<String> = set.seeds.iter().map(u32::to_string).collect();
            vec![serde_json::json!(i), serde_json::json!(set.weight), serde_json::json!(seeds.join(" "))]
        });
        host.tables.push(report::TableJson {
            name: "seed_sets".into(),
            columns: ["set", "weight", "seeds"].map(String::from).to_vec(),
            rows: rows.collect(),
        });
        if let Some(worst) = worst {
            host.scalars.insert("worst_case_spread".into(), worst.mean);
            host.scalars.insert("worst_case_spread_ci95".into(), worst.ci95);
            host.scalars.insert(
                "mean_spread_over_grid".into(),
                grid_spreads.iter().map(|s| s.mean).sum::<f64>() / grid_spreads.len() as f64,
            );
            if !references.is_empty() {
                host.scalars.insert("worst_case_ratio".into(), worst_ratio);
            }
            let rows = grid_spreads.iter().enumerate().map(|(i, s)| {
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
                x: (0..grid_spreads.len()).map(|i| i as f64).collect(),
                y: grid_spreads.iter().map(|s| s.mean).collect(),
            });
        }
        crate::contract::merge_host(&spec.id, &mut report, host)?;
    }
    let mut host = ReportJson::default();
    if budgets.len() > 1 {
        let series = |name: &str, y_label: &str, f: fn(&(f64, f64, f64, f64)) -> f64| SeriesJson {
            name: name.into(),
            x_label: "budget k".into(),
            y_label: y_label.into(),
            x: by_k.iter().map(|r| r.0).collect(),
            y: by_k.iter().map(f).collect(),
        };
        host.series.push(series("spread_by_k", "expected spread", |r| r.1));
        if !grid.is_empty() {
            host.series.push(series("worst_case_spread_by_k", "worst-case spread over the grid", |r| r.2));
            if !g.reference.is_empty() {
                host.series.push(series("worst_case_ratio_by_k", "worst-case ratio to the per-θ reference", |r| r.3));
            }
        }
    }
    crate::contract::merge_host(&spec.id, &mut report, host)?;
    Ok([("objective".to_string(), report)].into())
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
    let mut fixed = graph.clone();
    fixed.theta_center.clear();
    let mut values = Vec::new();
    for (i, probabilities) in grid_probabilities.iter().enumerate() {
        fixed.probabilities.clone_from(probabilities);
        let ctx = CallContext::new(role_seed(seed, &format!("reference-{i}")), options.cancel.clone());
        let choice = reference.choose(&fixed.view(), k, &ctx)?;
        let sets = choice.sets.iter().map(|set| (set.weight, set.seeds.as_slice()));
        values.push(graph::expected_spread(graph, probabilities, sets, g.simulations, role_seed(seed, "evaluation")));
    }
    log::info!("per-θ reference `{}` at k = {k}: {} models", g.reference, values.len());
    session.reference_cache.lock().expect("cache lock").insert(key, values.clone());
    Ok(values)
}
