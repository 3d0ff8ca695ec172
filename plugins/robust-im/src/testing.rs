//! Test helpers: graphs as borrowed views.

use tessera_sdk::GraphView;

/// A view of a CSR graph with fixed probabilities.
pub fn view<'a>(offsets: &'a [u64], targets: &'a [u32], p: &'a [f32]) -> GraphView<'a> {
    GraphView {
        nodes: offsets.len() as u64 - 1,
        offsets: offsets.into(),
        targets: targets.into(),
        probabilities: p.into(),
        feature_dim: 0,
        features: (&[][..]).into(),
        theta_center: (&[][..]).into(),
        theta_radius: 0.0,
    }
}
