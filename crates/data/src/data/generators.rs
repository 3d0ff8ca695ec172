//! Seeded generators for sizes no shipped data set reaches (MNIST-1D, the
//! authors' generator, is in `mnist1d`).

use crate::error::{bail, Result};
use tessera_sdk::SeedRng;

use super::{normal, Dataset};

/// A teacher-network stream: inputs x ~ N(0, I_d) labelled by the argmax of a
/// fixed random ReLU network d → `width` → `classes` (weights N(0, 1/fan_in)),
/// so that a student can learn it online from fresh examples.
pub fn teacher(examples: usize, dim: usize, width: usize, classes: usize, seed: u64) -> Result<Dataset> {
    if dim == 0 || width == 0 || classes < 2 {
        bail!("teacher: features and teacher_width must be positive, classes at least 2");
    }
    let mut weights_rng = SeedRng::derive(seed, 0x7EAC4E5);
    let w1: Vec<f64> = (0..width * dim).map(|_| normal(&mut weights_rng) / (dim as f64).sqrt()).collect();
    let w2: Vec<f64> = (0..classes * width).map(|_| normal(&mut weights_rng) / (width as f64).sqrt()).collect();
    let mut rng = SeedRng::derive(seed, 0x57AEA);
    let mut features = Vec::with_capacity(examples * dim);
    let mut labels = Vec::with_capacity(examples);
    let (mut x, mut h) = (vec![0.0; dim], vec![0.0; width]);
    for _ in 0..examples {
        x.iter_mut().for_each(|v| *v = normal(&mut rng));
        for (j, hj) in h.iter_mut().enumerate() {
            *hj = w1[j * dim..(j + 1) * dim].iter().zip(&x).map(|(w, v)| w * v).sum::<f64>().max(0.0);
        }
        let label = (0..classes)
            .map(|c| w2[c * width..(c + 1) * width].iter().zip(&h).map(|(w, v)| w * v).sum::<f64>())
            .enumerate()
            .fold((0, f64::MIN), |best, (c, v)| if v > best.1 { (c, v) } else { best })
            .0;
        features.extend(x.iter().map(|&v| v as f32));
        labels.push(label as i64);
    }
    Ok(Dataset { features, shape: vec![dim], labels, classes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teacher_labels_are_a_fixed_function_of_the_inputs() {
        let a = teacher(3000, 8, 32, 4, 1).unwrap();
        assert_eq!(a, teacher(3000, 8, 32, 4, 1).unwrap());
        // Every class occurs, none dominates completely.
        for c in 0..4 {
            let count = a.labels.iter().filter(|&&y| y == c).count();
            assert!(count > 100, "class {c}: {count}");
        }
        // The same input gets the same label: a bigger stream starts with this one.
        let b = teacher(3500, 8, 32, 4, 1).unwrap();
        assert_eq!(&b.labels[..3000], &a.labels[..]);
    }
}
