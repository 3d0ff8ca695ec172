//! Seeded generators for sizes no shipped data set reaches.

use anyhow::{bail, Result};
use tessera_sdk::SeedRng;

use super::{normal, Dataset};

/// The ten 12-point templates of MNIST-1D (Greydanus 2020), one per digit
/// (values reconstructed from the paper's figure and reference code).
const MNIST1D_TEMPLATES: [[f64; 12]; 10] = [
    [5.0, 6.0, 6.5, 6.75, 7.0, 7.0, 7.0, 7.0, 6.75, 6.5, 6.0, 5.0],
    [5.0, 3.0, 3.0, 3.4, 3.8, 4.2, 4.6, 5.0, 5.4, 5.8, 5.0, 5.0],
    [5.0, 6.0, 6.5, 6.5, 6.0, 5.25, 4.75, 4.0, 3.5, 3.5, 4.0, 5.0],
    [5.0, 6.0, 6.5, 6.5, 6.0, 5.0, 5.0, 6.0, 6.5, 6.5, 6.0, 5.0],
    [5.0, 4.4, 3.8, 3.2, 2.6, 2.6, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0],
    [5.0, 3.0, 3.0, 3.0, 3.0, 5.0, 6.0, 6.5, 6.5, 6.0, 4.5, 5.0],
    [5.0, 4.0, 3.5, 3.25, 3.0, 3.0, 3.0, 3.0, 3.25, 3.5, 4.0, 5.0],
    [5.0, 7.0, 7.0, 6.6, 6.2, 5.8, 5.4, 5.0, 4.6, 4.2, 5.0, 5.0],
    [5.0, 4.0, 3.5, 3.5, 4.0, 5.0, 5.0, 4.0, 3.5, 3.5, 4.0, 5.0],
    [5.0, 4.0, 3.5, 3.5, 4.0, 5.0, 5.0, 5.0, 5.0, 4.7, 4.3, 5.0],
];

/// MNIST-1D's transformations, with its defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mnist1dParams {
    /// Output length (40).
    pub length: usize,
    /// Padding drawn uniformly from this range before the other transforms ([36, 60]).
    pub padding: (usize, usize),
    /// Largest circular shift, in padded points (48).
    pub max_translation: usize,
    /// Time stretch: factor 1 + U(−s, s) (0.4).
    pub scale: f64,
    /// Shear: a ramp of slope U(−s, s) added (0.75).
    pub shear: f64,
    /// Smoothed (correlated) noise amplitude (0.25).
    pub correlated_noise: f64,
    /// Independent noise amplitude after resampling (0.02).
    pub iid_noise: f64,
}

impl Default for Mnist1dParams {
    fn default() -> Self {
        Mnist1dParams {
            length: 40,
            padding: (36, 60),
            max_translation: 48,
            scale: 0.4,
            shear: 0.75,
            correlated_noise: 0.25,
            iid_noise: 0.02,
        }
    }
}

/// `examples` MNIST-1D-style sequences (shape `[length]`, labels 0..9, in
/// turn): each digit's template is normalized, padded, shifted, stretched,
/// sheared, given correlated noise, resampled to `length` points and given
/// independent noise. Costs O(examples × length): millions are quick.
pub fn mnist1d(examples: usize, params: &Mnist1dParams, seed: u64) -> Result<Dataset> {
    if params.length < 2 || params.padding.0 > params.padding.1 {
        bail!("mnist1d: length must be at least 2 and padding a range (low <= high)");
    }
    let templates: Vec<Vec<f64>> = MNIST1D_TEMPLATES
        .iter()
        .map(|t| {
            let mean = t.iter().sum::<f64>() / 12.0;
            let std = (t.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 12.0).sqrt();
            t.iter().map(|v| (v - mean) / std).collect()
        })
        .collect();
    let kernel: Vec<f64> = (-3..=3).map(|i: i32| (-(i * i) as f64 / 4.0).exp()).collect();
    let kernel_sum: f64 = kernel.iter().sum();
    let mut rng = SeedRng::derive(seed, 0x1D);
    let mut features = Vec::with_capacity(examples * params.length);
    let mut labels = Vec::with_capacity(examples);
    let mut padded = Vec::new();
    let mut noise = Vec::new();
    for i in 0..examples {
        let label = i % 10;
        let pad = params.padding.0 + rng.below((params.padding.1 - params.padding.0 + 1) as u64) as usize;
        let len = 12 + pad;
        padded.clear();
        padded.resize(len, 0.0);
        let left = pad / 2;
        padded[left..left + 12].copy_from_slice(&templates[label]);
        let shift = rng.below(2 * params.max_translation as u64 + 1) as i64 - params.max_translation as i64;
        padded.rotate_right(shift.rem_euclid(len as i64) as usize);
        noise.clear();
        noise.extend((0..len).map(|_| normal(&mut rng)));
        for (t, value) in padded.iter_mut().enumerate() {
            let smooth: f64 = (0..kernel.len())
                .map(|k| kernel[k] * noise[(t as i64 + k as i64 - 3).rem_euclid(len as i64) as usize])
                .sum::<f64>()
                / kernel_sum;
            *value += params.correlated_noise * smooth;
        }
        let stretch = 1.0 + params.scale * (2.0 * rng.next_f64() - 1.0);
        let slope = params.shear * (2.0 * rng.next_f64() - 1.0);
        for j in 0..params.length {
            let u = j as f64 / (params.length - 1) as f64; // 0..1
            let centre = (len - 1) as f64 / 2.0;
            let pos = (centre + (u * (len - 1) as f64 - centre) * stretch).clamp(0.0, (len - 1) as f64);
            let (a, frac) = (pos.floor() as usize, pos.fract());
            let b = (a + 1).min(len - 1);
            let value = padded[a] * (1.0 - frac)
                + padded[b] * frac
                + slope * (2.0 * u - 1.0)
                + params.iid_noise * normal(&mut rng);
            features.push(value as f32);
        }
        labels.push(label as i64);
    }
    Ok(Dataset { features, shape: vec![params.length], labels, classes: 10 })
}

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
    fn mnist1d_is_reproducible_balanced_and_class_dependent() {
        let a = mnist1d(2000, &Mnist1dParams::default(), 3).unwrap();
        assert_eq!(a, mnist1d(2000, &Mnist1dParams::default(), 3).unwrap());
        assert_eq!((a.shape.clone(), a.classes, a.len()), (vec![40], 10, 2000));
        assert!(a.features.iter().all(|v| v.is_finite()));
        for c in 0..10 {
            assert_eq!(a.labels.iter().filter(|&&y| y == c).count(), 200);
        }
        // Without the shifts (which by design defeat linear models), a
        // nearest-class-mean classifier does far better than chance: the
        // templates carry the label through the other transformations.
        let a = mnist1d(2000, &Mnist1dParams { max_translation: 0, ..Mnist1dParams::default() }, 3).unwrap();
        let mean = |c: i64| -> Vec<f32> {
            let rows: Vec<&[f32]> =
                (0..a.len()).filter(|&i| a.labels[i] == c).map(|i| &a.features[i * 40..(i + 1) * 40]).collect();
            (0..40).map(|j| rows.iter().map(|r| r[j]).sum::<f32>() / rows.len() as f32).collect()
        };
        let means: Vec<Vec<f32>> = (0..10).map(mean).collect();
        let correct = (0..a.len())
            .filter(|&i| {
                let x = &a.features[i * 40..(i + 1) * 40];
                let dist = |m: &Vec<f32>| x.iter().zip(m).map(|(u, v)| (u - v).powi(2)).sum::<f32>();
                let best = (0..10).min_by(|&p, &q| dist(&means[p]).total_cmp(&dist(&means[q]))).unwrap();
                best as i64 == a.labels[i]
            })
            .count();
        assert!(correct as f64 / a.len() as f64 > 0.5, "{correct} of 2000");
    }

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
