//! A model exported from PyTorch (`torch.jit.save`, made here with the torch
//! wheel the set-up installs) loads, lists its blocks, and trains block by block.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use tch::{Device, Kind, Tensor};
use tessera_engine::manifest::ModelConfig;
use tessera_engine::model::Model;

const SCRIPT: &str = r#"
import sys, torch, torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.block2 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Linear(8, 10)
    @torch.jit.export
    def features(self, x):
        return self.block2(torch.relu(self.conv1(x))).mean((2, 3))
    def forward(self, x):
        return self.head(self.features(x))
torch.manual_seed(0)
torch.jit.script(Net()).save(sys.argv[1])
"#;

fn exported_model(dir: &Path) -> PathBuf {
    let path = dir.join("net.pt");
    // torch.jit.script reads the class's source: it must live in a file.
    let script = dir.join("export.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let out =
        Command::new(tessera_engine::plugin::libtorch_python()).arg(&script).arg(&path).output().expect("python runs");
    assert!(out.status.success(), "torch.jit.save failed:\n{}", String::from_utf8_lossy(&out.stderr));
    path
}

#[test]
fn a_torchscript_model_lists_its_blocks_and_trains_the_chosen_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = exported_model(dir.path());
    let config = ModelConfig {
        kind: tessera_engine::manifest::ModelKind::Torchscript,
        path: Some(path.display().to_string()),
        ..ModelConfig::default()
    };
    let model = Model::new(&config, &[1, 8, 8], 10, Device::Cpu, 0).unwrap();
    let layers = model.layers();
    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["conv1", "block2", "head"]);
    let params: Vec<u64> = layers.iter().map(|l| l.parameters).collect();
    assert_eq!(params, [8 * 9 + 8, 8 * 8 * 9 + 8 + 8 + 8, 8 * 10 + 10]);
    let x = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
    assert_eq!(model.forward(&x).size(), [4, 10]);
    assert_eq!(model.features(&x).size(), [4, 8]);

    // Train the head only: nothing else moves.
    model.set_trainable(&[2]).unwrap();
    assert_eq!(model.trainable_parameters(), 90);
    let before: Vec<(String, Tensor)> = model.vs.variables().into_iter().map(|(n, v)| (n, v.copy())).collect();
    let mut opt = tch::nn::OptimizerConfig::build(tch::nn::Sgd::default(), &model.vs, 0.5).unwrap();
    let y = Tensor::from_slice(&[1i64, 2, 3, 4]);
    for _ in 0..3 {
        opt.backward_step(&model.forward_train(&x).cross_entropy_for_logits(&y));
    }
    let after = model.vs.variables();
    for (name, old) in before {
        assert_eq!(!after[&name].equal(&old), name.starts_with("script.head_"), "{name}");
    }
}

#[test]
fn a_manifest_trains_a_torchscript_model_on_digits() {
    let dir = tempfile::tempdir().unwrap();
    exported_model(dir.path());
    let body = "[data]\nsource = \"digits\"\n\n[model]\nkind = \"torchscript\"\npath = \"net.pt\"\n\n[train]\nepochs = 10\noptimizer = \"adam\"\nlr = 0.01\n\n[sampler]\nuse = \"baselines.full-shuffle\"\n";
    let m = common::write_manifest(dir.path(), &[&common::baselines()], body);
    let outcome = common::run_into(&common::prepare(&m).unwrap(), dir.path());
    assert!(outcome.all_ok(), "{:?}", outcome.results.variants[0].error);
    let accuracy = outcome.results.variants[0].results["engine"].scalars["final_test_accuracy"];
    assert!(accuracy > 0.5, "{accuracy}"); // 0.81 with these settings
}
