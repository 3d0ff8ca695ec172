//! The two ends of finetuning: train only a new head, or train everything.

use tessera_sdk::{Component, Finetuner, Host, LayerInfo, NoParams, Oracle, Report, Result, Selection};

/// Trains only the last layer (the head); the backbone stays frozen.
pub struct LinearProbe;

impl Component for LinearProbe {
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
        Ok(Selection { trainable: head.into_iter().collect::<Vec<_>>().into(), report })
    }
}

/// Trains every layer.
pub struct FullFinetuning;

impl Component for FullFinetuning {
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
        Ok(Selection { trainable: layers.iter().map(|l| l.position).collect::<Vec<_>>().into(), report })
    }
}
