//! Plain influence maximization at scale: `robust-im.greedy` (OPIM-C) with
//! k = 50 under weighted cascade on the R-MAT graph of `examples/im-scale.toml`
//! (10⁶ nodes, ~10⁷ edges), at ε = 0.5 and 0.1: wall time, RR sets, peak
//! memory and the spread (RR estimate, and Monte Carlo). Top degree, in the
//! same run, is the baseline.
//!
//! Run: `make bench` (or `cargo bench -p tessera-engine --bench im_scale`).
//! `BENCH_IM_NODES` shrinks the graph (edges = 10 × nodes).

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use tessera_engine::graph::{self, rmat};
use tessera_engine::plugin::{CallContext, Registry};
use tessera_engine::run::peak_rss_mb;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let nodes: u32 = std::env::var("BENCH_IM_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let mut registry = Registry::new();
    registry.load_file(&common::plugin_library("tessera_baselines")).unwrap();
    registry.load_file(&common::plugin_library("tessera_robust_im")).unwrap();
    let ctx = CallContext::new(1, Arc::new(AtomicBool::new(false)));
    let started = Instant::now();
    let mut g = rmat(nodes, 10 * nodes as u64, (0.57, 0.19, 0.19), 2026).unwrap();
    g.set_weighted_cascade();
    g.index_in_edges(); // as the host does: objectives borrow the in-edges
    println!(
        "R-MAT graph: {} nodes, {} edges, weighted cascade, generated in {:.1} s; peak memory {:.0} MB",
        g.nodes(),
        g.edges(),
        started.elapsed().as_secs_f64(),
        peak_rss_mb()
    );
    println!(
        "{:<28} {:>9} {:>10} {:>12} {:>14} {:>16} {:>10}",
        "objective", "seconds", "RR sets", "RR entries", "RR estimate", "Monte Carlo (200)", "peak MB"
    );
    for (id, params) in
        [("baselines.degree", ""), ("robust-im.greedy", "epsilon = 0.5"), ("robust-im.greedy", "epsilon = 0.1")]
    {
        let mut objective = registry.new_graph_objective(id, params).unwrap();
        let started = Instant::now();
        let choice = objective.choose(&g.view(), 50, &ctx).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let scalar =
            |name: &str| choice.report.scalars.iter().find(|s| s.name.as_str() == name).map_or(f64::NAN, |s| s.value);
        let mc = graph::spread(&g, choice.sets[0].seeds.as_slice(), 200, 7);
        println!(
            "{:<28} {seconds:>9.2} {:>10.0} {:>12.0} {:>14.0} {:>10.0} ± {:<5.0} {:>10.0}",
            format!("{id} {params}"),
            scalar("rr_sets"),
            scalar("rr_entries"),
            scalar("estimated_spread"),
            mc.mean,
            mc.ci95,
            peak_rss_mb()
        );
    }
}
