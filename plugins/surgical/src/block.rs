//! Manual surgical fine-tuning: only the chosen blocks train.

use tessera_sdk::prelude::*;
#[cfg(test)]
use tessera_sdk::TensorInfo;

params! {
    /// Parameters of [`Block`].
    pub struct BlockParams {
        /// Positions of the blocks to tune: 0 is the first block, −1 the
        /// head, −2 the block before it.
        pub blocks: Vec<i64> = vec![0],
    }
}

/// Tunes the listed blocks only; every other tensor, the head's included,
/// keeps its pretrained weights bit for bit.
pub struct Block {
    blocks: Vec<i64>,
}

impl Component for Block {
    /// It chooses once, before training, and keeps nothing after: a new
    /// instance continues as well.
    fn save_state(&self) -> Result<State> {
        Ok(State::Stateless)
    }

    const NAME: &'static str = "block";
    const SUMMARY: &'static str =
        "Surgical fine-tuning (Lee et al. 2023): only the listed blocks train (0 = first, -1 = head).";
    type Params = BlockParams;

    fn new(params: BlockParams) -> Result<Self> {
        if params.blocks.is_empty() {
            return Err(Error::invalid_param("blocks", "name at least one block (0 = first, -1 = head)"));
        }
        Ok(Block { blocks: params.blocks })
    }
}

impl Block {
    /// The positions among `count` layers, or the first that does not exist.
    fn positions(&self, count: usize) -> Result<Vec<u32>> {
        let n = count as i64;
        self.blocks
            .iter()
            .map(|&b| {
                let at = if b < 0 { n + b } else { b };
                if !(0..n).contains(&at) {
                    bail!("block {b} does not exist: the model has {n} layers (0..{n}, or -1 for the head)");
                }
                Ok(at as u32)
            })
            .collect()
    }
}

impl Finetuner for Block {
    fn select(&mut self, layers: &[LayerInfo], _oracle: &mut Oracle, _host: &Host) -> Result<Selection> {
        let chosen = self.positions(layers.len())?;
        let per_layer: Vec<f32> = layers.iter().map(|l| f32::from(u8::from(chosen.contains(&l.position)))).collect();
        let mut report = Report::new();
        let names: Vec<&str> =
            layers.iter().filter(|l| chosen.contains(&l.position)).map(|l| l.name.as_str()).collect();
        report.scalar("tuned_blocks", names.len() as f64);
        log::info!("surgical.block: tuning {}", names.join(", "));
        Ok(Selection::block_multipliers(layers, &per_layer, report))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tessera_sdk::testing::{ScriptedOracle, TestHost};

    pub(crate) fn layers() -> Vec<LayerInfo> {
        let tensor = |name: String| TensorInfo { name: name.into(), elements: 4 };
        ["layer0", "layer1", "head"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut layer = LayerInfo::new(name, 8, 8, i as u32);
                layer.tensors = vec![tensor(format!("{name}.bias")), tensor(format!("{name}.weight"))].into();
                layer
            })
            .collect()
    }

    #[test]
    fn only_the_listed_blocks_train_the_head_included_when_listed() {
        let mut oracle = ScriptedOracle::new(|_, _| panic!("no oracle"));
        let host = TestHost::new(1);
        let mut select = |blocks: Vec<i64>| {
            oracle.with_oracle(|o| Block::new(BlockParams { blocks })?.select(&layers(), o, &host.host()))
        };
        assert_eq!(select(vec![0]).unwrap().multipliers.as_slice(), &[1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(select(vec![-1, 1]).unwrap().multipliers.as_slice(), &[0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
        let error = select(vec![3]).unwrap_err();
        assert!(error.to_string().contains("block 3 does not exist"), "{error}");
    }
}
