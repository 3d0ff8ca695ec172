//! Finetuning baselines: train only a new head, everything, or the last k blocks.

use tessera_sdk::{params, Component, Finetuner, Host, LayerInfo, NoParams, Oracle, Report, Result, Selection, State};

/// Trains only the last layer (the head); the backbone stays frozen.
pub struct LinearProbe;

impl Component for LinearProbe {
    /// It chooses once, before training, and keeps nothing after: a new
    /// instance continues as well.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "linear-probe";
    const SUMMARY: &'static str = "Train only the head; every other layer frozen.";
    type Params = NoParams;

    fn new(_: NoParams) -> Result<Self> {
        Ok(LinearProbe)
    }
}

impl Finetuner for LinearProbe {
    fn select(&mut self, layers: &[LayerInfo], _oracle: &mut Oracle, _host: &Host) -> Result<Selection> {
        let head = layers.iter().map(|l| l.position).max();
        let mut report = Report::new();
        report.scalar("trainable_layers", head.is_some() as u8 as f64);
        Ok(Selection::layers(head.into_iter().collect(), report))
    }
}

/// Trains every layer.
pub struct FullFinetuning;

impl Component for FullFinetuning {
    /// It chooses once, before training, and keeps nothing after: a new
    /// instance continues as well.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "full-finetuning";
    const SUMMARY: &'static str = "Train every layer.";
    type Params = NoParams;

    fn new(_: NoParams) -> Result<Self> {
        Ok(FullFinetuning)
    }
}

impl Finetuner for FullFinetuning {
    fn select(&mut self, layers: &[LayerInfo], _oracle: &mut Oracle, _host: &Host) -> Result<Selection> {
        let mut report = Report::new();
        report.scalar("trainable_layers", layers.len() as f64);
        Ok(Selection::layers(layers.iter().map(|l| l.position).collect(), report))
    }
}

params! {
    /// Parameters of [`LastK`].
    pub struct LastKParams {
        /// How many of the last blocks with parameters train (with the head).
        pub k: u64 = 1,
    }
}

/// Trains the last `k` blocks that have parameters, plus the head: the usual
/// "finetune the top of the network" baseline.
pub struct LastK {
    k: usize,
}

impl Component for LastK {
    /// It chooses once, before training, and keeps nothing after: a new
    /// instance continues as well.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "last-k";
    const SUMMARY: &'static str = "Train the last k blocks with parameters and the head; the rest frozen.";
    type Params = LastKParams;

    fn new(params: LastKParams) -> Result<Self> {
        Ok(LastK { k: params.k as usize })
    }
}

impl Finetuner for LastK {
    fn select(&mut self, layers: &[LayerInfo], _oracle: &mut Oracle, _host: &Host) -> Result<Selection> {
        let head = layers.iter().map(|l| l.position).max();
        let mut trainable: Vec<u32> = layers
            .iter()
            .rev()
            .filter(|l| Some(l.position) != head && l.parameters > 0)
            .take(self.k)
            .map(|l| l.position)
            .chain(head)
            .collect();
        trainable.sort_unstable();
        let mut report = Report::new();
        report.scalar("trainable_layers", trainable.len() as f64);
        Ok(Selection::layers(trainable, report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::testing::{ScriptedOracle, TestHost};

    #[test]
    fn last_k_skips_parameter_free_blocks_and_keeps_the_head() {
        let layer = |p: u32, parameters| LayerInfo::new(&format!("l{p}"), parameters, 0, p);
        let layers = [layer(0, 5), layer(1, 5), layer(2, 5), layer(3, 0), layer(4, 3)];
        let mut oracle = ScriptedOracle::new(|_, _| panic!("last-k needs no oracle"));
        let host = TestHost::new(0);
        let chosen = oracle.with_oracle(|o| LastK { k: 2 }.select(&layers, o, &host.host())).unwrap();
        assert_eq!(chosen.trainable.to_vec(), vec![1, 2, 4]);
    }
}
