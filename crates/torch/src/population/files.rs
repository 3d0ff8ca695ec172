//! A population on disk (`population.json` and the members' prediction
//! matrices as `.npy`), and the observations metrics ask of it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{bail, Context, Result};
use tessera_sdk::{observation, Array, Observation, ObservationRequest};

use crate::data::readers::{npy, write_npy};

use super::*;

impl Population {
    /// Number of members m.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the population has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Writes `members.json` and, per split, `<split>.correct.npy` (u8, m × n),
    /// `<split>.true-probability.npy` (f32, m × n), `<split>.labels.npy`
    /// (i64, n) and, when kept, `<split>.probabilities.npy` (f32, m × n ×
    /// classes) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        crate::report::write_atomic(&dir.join("members.json"), &serde_json::to_vec_pretty(&self.members)?)?;
        let m = self.members.len();
        if let Some(first) = self.train_labels.first() {
            let bytes: Vec<u8> = self.train_labels.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
            write_npy(&dir.join("train-labels.npy"), "<i8", &[self.train_labels.len(), first.len()], &bytes)?;
        }
        for (split, matrix) in &self.splits {
            let n = matrix.labels.len();
            write_npy(&dir.join(format!("{split}.correct.npy")), "|u1", &[m, n], &matrix.correct)?;
            let bytes: Vec<u8> = matrix.true_probability.iter().flat_map(|v| v.to_le_bytes()).collect();
            write_npy(&dir.join(format!("{split}.true-probability.npy")), "<f4", &[m, n], &bytes)?;
            let bytes: Vec<u8> = matrix.labels.iter().flat_map(|v| v.to_le_bytes()).collect();
            write_npy(&dir.join(format!("{split}.labels.npy")), "<i8", &[n], &bytes)?;
            let bytes: Vec<u8> = matrix.predictions.iter().flat_map(|v| v.to_le_bytes()).collect();
            write_npy(&dir.join(format!("{split}.predictions.npy")), "<i4", &[m, n], &bytes)?;
            if !matrix.probabilities.is_empty() {
                let bytes: Vec<u8> = matrix.probabilities.iter().flat_map(|v| v.to_le_bytes()).collect();
                write_npy(&dir.join(format!("{split}.probabilities.npy")), "<f4", &[m, n, matrix.classes], &bytes)?;
            }
        }
        Ok(())
    }

    /// Reads a population that [`Population::save`] wrote, checking that the
    /// matrices agree with `members.json` and with each other.
    pub fn load(dir: &Path) -> Result<Population> {
        let members_path = dir.join("members.json");
        let text = std::fs::read(&members_path).with_context(|| {
            format!(
                "reading {} (population.load names the `population/<variant>` folder of a run)",
                members_path.display()
            )
        })?;
        let members: Vec<Member> =
            serde_json::from_slice(&text).with_context(|| format!("{}: not a member list", members_path.display()))?;
        let m = members.len();
        let mut splits = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let file = entry?.file_name().to_string_lossy().to_string();
            let Some(split) = file.strip_suffix(".labels.npy") else { continue };
            let labels = npy(&dir.join(&file))?;
            let n = labels.values.len();
            let matrix_of = |kind: &str| -> Result<Vec<f64>> {
                let path = dir.join(format!("{split}.{kind}.npy"));
                let a = npy(&path)?;
                if a.shape != [m, n] {
                    bail!(
                        "{}: shape {:?}, but members.json has {m} members and the labels {n} points",
                        path.display(),
                        a.shape
                    );
                }
                Ok(a.values)
            };
            let correct = matrix_of("correct")?.into_iter().map(|v| (v != 0.0) as u8).collect();
            let true_probability = matrix_of("true-probability")?.into_iter().map(|v| v as f32).collect();
            let predictions = matrix_of("predictions")?.into_iter().map(|v| v as i32).collect();
            let labels: Vec<i64> = labels.values.into_iter().map(|v| v as i64).collect();
            let mut classes = labels.iter().max().map_or(0, |&c| c as usize + 1);
            let mut probabilities = vec![];
            let path = dir.join(format!("{split}.probabilities.npy"));
            if path.exists() {
                let a = npy(&path)?;
                if a.shape.len() != 3 || a.shape[..2] != [m, n] {
                    bail!("{}: shape {:?}, not [{m}, {n}, classes]", path.display(), a.shape);
                }
                classes = a.shape[2];
                probabilities = a.values.into_iter().map(|v| v as f32).collect();
            }
            splits.insert(
                split.to_string(),
                SplitMatrix { labels, correct, true_probability, probabilities, predictions, classes },
            );
        }
        if splits.is_empty() {
            bail!("{}: no `<split>.labels.npy` in the folder", dir.display());
        }
        let path = dir.join("train-labels.npy");
        let train_labels = if path.exists() {
            let a = npy(&path)?;
            let width = a.shape.get(1).copied().unwrap_or(0).max(1);
            a.values.chunks(width).map(|row| row.iter().map(|&v| v as i64).collect()).collect()
        } else {
            vec![]
        };
        Ok(Population { members, splits, train_labels })
    }

    /// The observations `requests` asks for: the matrices, the members' runs,
    /// the labels and the point ids.
    pub fn observations(&self, requests: &[ObservationRequest]) -> Result<Vec<Observation>> {
        let m = self.members.len() as u64;
        let mut out = Vec::new();
        for r in requests {
            let (split, kind) = (r.split.as_str(), r.kind.as_str());
            if out.iter().any(|o: &Observation| o.split.as_str() == split && o.kind.as_str() == kind) {
                continue;
            }
            let matrix = self.splits.get(split).with_context(|| {
                let known: Vec<&str> = self.splits.keys().map(String::as_str).collect();
                format!(
                    "the population was not evaluated on split `{split}` (evaluated: {}); add it to population.splits",
                    known.join(", ")
                )
            })?;
            let n = matrix.labels.len() as u64;
            let array = match kind {
                observation::POPULATION_CORRECT => {
                    Array::f32(vec![m, n], matrix.correct.iter().map(|&c| c as f32).collect())
                }
                observation::POPULATION_TRUE_PROBABILITY => Array::f32(vec![m, n], matrix.true_probability.clone()),
                observation::POPULATION_RUN => Array::i64(vec![m], self.members.iter().map(|x| x.run as i64).collect()),
                observation::POPULATION_MEMBERS => Array::i64(
                    vec![m, 6],
                    self.members
                        .iter()
                        .flat_map(|x| {
                            [x.run, x.setting, x.seed as usize, x.step as usize, x.examples_seen as usize, x.batch_size]
                                .map(|v| v as i64)
                        })
                        .collect(),
                ),
                observation::POPULATION_PREDICTIONS => {
                    Array::i64(vec![m, n], matrix.predictions.iter().map(|&p| p as i64).collect())
                }
                observation::POPULATION_TRAIN_LABELS if self.train_labels.is_empty() => {
                    bail!("observation `{kind}` needs label noise in some population setting (every run trains on the clean labels)")
                }
                observation::POPULATION_TRAIN_LABELS => {
                    let width = self.train_labels[0].len() as u64;
                    Array::i64(
                        vec![m, width],
                        self.members.iter().flat_map(|x| self.train_labels[x.run].clone()).collect(),
                    )
                }
                observation::POPULATION_PROBABILITIES if matrix.probabilities.is_empty() => {
                    bail!("observation `{kind}` needs `population.probabilities = true` (softmax outputs are kept only then)")
                }
                observation::POPULATION_PROBABILITIES => {
                    Array::f32(vec![m, n, matrix.classes as u64], matrix.probabilities.clone())
                }
                observation::LABELS => Array::i64(vec![n], matrix.labels.clone()),
                observation::EXAMPLE_IDS => Array::i64(vec![n], (0..n as i64).collect()),
                other => bail!(
                    "observation `{other}` does not exist in a population experiment (known: {})",
                    observation::POPULATION_KINDS.join(", ")
                ),
            };
            out.push(Observation { split: split.into(), kind: kind.into(), array });
        }
        Ok(out)
    }
}
