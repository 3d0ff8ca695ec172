//! Auto-RGN (Lee et al. 2023, section 5): surgical fine-tuning without
//! choosing the layers by hand.
//!
//! For each weight tensor θ_t, its relative gradient norm on the target data
//!
//! ```text
//! RGN_t = ‖∇θ_t L‖₂ / ‖θ_t‖₂
//! ```
//!
//! says how much the loss wants that tensor to move for its size. Every
//! tensor trains at the base learning rate times m_t = RGN_t / max_u RGN_u,
//! so the tensors that matter most for this shift train fastest and the
//! rest barely move. The paper recomputes RGN at every step on the current
//! minibatch; here the host computes it before every epoch on the whole
//! training split (the `gradient-norms` and `weight-norms` observations),
//! and the multipliers are revised then.
//!
//! Its report: each block's mean multiplier before each epoch (the
//! `multipliers` table, and a series per block), and over the run.

use tessera_sdk::prelude::*;

params! {
    /// Parameters of [`AutoRgn`].
    pub struct AutoRgnParams {
        /// Multipliers below this are set to 0 (the tensor is frozen for the
        /// epoch); 0 keeps every tensor training.
        pub floor: f64 = 0.0,
    }
}

/// Trains each tensor at a rate proportional to its relative gradient norm,
/// re-estimated before every epoch.
pub struct AutoRgn {
    floor: f32,
    /// The model's layers, as `select` saw them.
    layers: Vec<LayerInfo>,
    /// Each epoch's mean multiplier per layer.
    history: Vec<Vec<f64>>,
}

impl Component for AutoRgn {
    /// The multipliers of the epochs so far (its layers come again from `select`).
    fn save_state(&self) -> Result<State> {
        State::encode(&self.history)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        self.history = State::decode(bytes)?;
        Ok(())
    }

    const NAME: &'static str = "auto-rgn";
    const SUMMARY: &'static str =
        "Auto-RGN (Lee et al. 2023): each tensor's learning rate scaled by its relative gradient norm over the largest, every epoch.";
    type Params = AutoRgnParams;

    fn new(params: AutoRgnParams) -> Result<Self> {
        if !(0.0..=1.0).contains(&params.floor) {
            return Err(Error::invalid_param("floor", "must be between 0 and 1"));
        }
        Ok(AutoRgn { floor: params.floor as f32, layers: Vec::new(), history: Vec::new() })
    }
}

/// m_t = RGN_t / max RGN, RGN_t = ‖g_t‖ / ‖θ_t‖ (0 for a zero tensor);
/// below `floor`, 0.
pub fn multipliers(gradient_norms: &[f32], weight_norms: &[f32], floor: f32) -> Vec<f32> {
    let rgn: Vec<f32> =
        gradient_norms.iter().zip(weight_norms).map(|(&g, &w)| if w > 0.0 { g / w } else { 0.0 }).collect();
    let largest = rgn.iter().copied().fold(0.0f32, f32::max);
    if largest <= 0.0 || !largest.is_finite() {
        return vec![1.0; rgn.len()];
    }
    rgn.iter().map(|&r| r / largest).map(|m| if m < floor { 0.0 } else { m }).collect()
}

impl AutoRgn {
    /// Each layer's mean multiplier (layers without tensors: 0).
    fn per_layer(&self, multipliers: &[f32]) -> Vec<f64> {
        let mut at = 0;
        self.layers
            .iter()
            .map(|l| {
                let of_layer = &multipliers[at..at + l.tensors.len()];
                at += l.tensors.len();
                of_layer.iter().map(|&m| f64::from(m)).sum::<f64>() / of_layer.len().max(1) as f64
            })
            .collect()
    }
}

impl Finetuner for AutoRgn {
    fn select(&mut self, layers: &[LayerInfo], _oracle: &mut Oracle, _host: &Host) -> Result<Selection> {
        self.layers = layers.to_vec();
        // Every tensor at the base rate until the first estimate, before epoch 1.
        Ok(Selection::block_multipliers(layers, &vec![1.0; layers.len()], Report::new()))
    }

    fn requires(&self) -> Vec<ObservationRequest> {
        [observation::GRADIENT_NORMS, observation::WEIGHT_NORMS]
            .into_iter()
            .map(|kind| ObservationRequest::new("train", kind))
            .collect()
    }

    fn revise(&mut self, _: &Checkpoint, observations: &Observations, _: &Host) -> Result<Option<Selection>> {
        let gradients = observations.f32("train", observation::GRADIENT_NORMS)?;
        let weights = observations.f32("train", observation::WEIGHT_NORMS)?;
        let m = multipliers(gradients, weights, self.floor);
        self.history.push(self.per_layer(&m));
        Ok(Some(Selection::multipliers(m, Report::new())))
    }

    fn finish(&mut self, _: &Host) -> Result<Report> {
        let mut report = Report::new();
        // Layers with weights only (a pooling layer has none).
        let (positions, names): (Vec<usize>, Vec<&str>) = self
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.tensors.is_empty())
            .map(|(i, l)| (i, l.name.as_str()))
            .unzip();
        let x: Vec<f64> = (1..=self.history.len()).map(|e| e as f64).collect();
        for (&i, name) in positions.iter().zip(&names) {
            let y: Vec<f64> = self.history.iter().map(|h| h[i]).collect();
            let mean = y.iter().sum::<f64>() / y.len().max(1) as f64;
            report.scalar(&format!("mean_multiplier_{name}"), mean);
            report.series(&format!("multiplier_{name}"), "epoch", "mean learning-rate multiplier", x.clone(), y);
        }
        let mut columns = vec!["epoch"];
        columns.extend(names.iter().copied());
        let rows = self
            .history
            .iter()
            .enumerate()
            .map(|(e, h)| {
                let of_layers = positions.iter().map(|&i| Cell::Number(h[i]));
                std::iter::once(Cell::Integer(e as i64 + 1)).chain(of_layers).collect()
            })
            .collect();
        report.table("multipliers", &columns, rows);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::testing::{self, ScriptedOracle, TestHost};

    #[test]
    fn the_largest_relative_gradient_trains_at_the_base_rate() {
        let m = multipliers(&[2.0, 1.0, 0.5, 3.0], &[1.0, 4.0, 0.0, 6.0], 0.0);
        assert_eq!(m, vec![1.0, 0.125, 0.0, 0.25]);
        assert_eq!(multipliers(&[2.0, 1.0], &[1.0, 4.0], 0.2), vec![1.0, 0.0], "below the floor: frozen");
        assert_eq!(multipliers(&[0.0, 0.0], &[1.0, 1.0], 0.0), vec![1.0, 1.0], "no gradient: all at the base rate");
    }

    #[test]
    fn it_revises_before_every_epoch_and_reports_each_layer_s_multiplier() {
        let mut layers = crate::block::tests::layers();
        layers.push(LayerInfo::new("pool", 0, 0, 3)); // no weights: not in the report
        let host = TestHost::new(1);
        let mut rgn = AutoRgn::new(AutoRgnParams::default()).unwrap();
        let mut oracle = ScriptedOracle::new(|_, _| panic!("no oracle"));
        let first = oracle.with_oracle(|o| rgn.select(&layers, o, &host.host())).unwrap();
        assert_eq!(first.multipliers.as_slice(), &[1.0; 6]);
        let items = [
            testing::f32_observation("train", observation::GRADIENT_NORMS, vec![4.0, 4.0, 1.0, 1.0, 2.0, 2.0]),
            testing::f32_observation("train", observation::WEIGHT_NORMS, vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
        ];
        let checkpoint = Checkpoint { step: 0, epoch: 0.0, examples_seen: 0, is_final: false };
        let revised = rgn.revise(&checkpoint, &testing::observations(&items), &host.host()).unwrap().unwrap();
        assert_eq!(revised.multipliers.as_slice(), &[1.0, 1.0, 0.25, 0.25, 0.5, 0.5]);
        let report = rgn.finish(&host.host()).unwrap();
        let scalar = |name: &str| report.scalars.iter().find(|s| s.name.as_str() == name).unwrap().value;
        assert_eq!((scalar("mean_multiplier_layer0"), scalar("mean_multiplier_head")), (1.0, 0.5));
        assert!(report.scalars.iter().all(|s| s.name.as_str() != "mean_multiplier_pool"));
        assert_eq!(report.tables[0].columns.len(), 4, "epoch and the three layers with weights");
    }
}
