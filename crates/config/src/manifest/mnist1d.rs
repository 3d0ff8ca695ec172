//! `[data.mnist1d]`'s own rules: the arguments the authors' generator
//! would fail on or misread, and the memory a data set of them takes.

use super::Mnist1dArgs;

/// The longest sequence (`final_seq_length`, `template_len` + padding) the
/// generator makes: far beyond the package's 40 and 72, and small enough
/// that one sequence's working arrays stay in the megabytes.
pub const MAX_SEQUENCE: usize = 1 << 20;

impl Mnist1dArgs {
    /// Every argument the package would fail on or misread, and every
    /// length past [`MAX_SEQUENCE`]: `(key under data.mnist1d, what is wrong)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let [low, high] = self.padding;
        if low > high {
            problems.push(("padding", format!("low {low} above high {high}")));
        }
        for (key, value) in [("template_len", self.template_len), ("final_seq_length", self.final_seq_length)] {
            if value < 2 {
                problems.push((key, format!("must be at least 2 (it is {value})")));
            }
        }
        let longest = [self.final_seq_length, self.template_len.saturating_add(high)];
        if longest.iter().any(|&n| n > MAX_SEQUENCE) {
            let key = if self.final_seq_length > MAX_SEQUENCE { "final_seq_length" } else { "padding" };
            problems.push((
                key,
                format!(
                    "sequences of {} points are more than Tessera makes ({MAX_SEQUENCE})",
                    longest.iter().max().unwrap_or(&0)
                ),
            ));
        }
        if self.max_translation == 0 {
            problems.push((
                "max_translation",
                "must be at least 1 (the package draws from 0..max_translation; 1 = none)".into(),
            ));
        }
        if self.num_samples < 10 {
            problems.push(("num_samples", format!("must be at least 10, one per digit (it is {})", self.num_samples)));
        }
        if !(self.train_split > 0.0 && self.train_split < 1.0) {
            problems.push(("train_split", format!("must be in (0, 1) (it is {})", self.train_split)));
        }
        let scales = [
            ("scale_coeff", self.scale_coeff),
            ("corr_noise_scale", self.corr_noise_scale),
            ("iid_noise_scale", self.iid_noise_scale),
            ("shear_scale", self.shear_scale),
        ];
        for (key, value) in scales.into_iter().filter(|(_, v)| !v.is_finite()) {
            problems.push((key, format!("must be a finite number (it is {value})")));
        }
        problems
    }

    /// The bytes generating the data set takes at its peak: every sequence
    /// twice in f64 (made, then reordered) and once in f32, with its label.
    pub fn memory_bytes(&self) -> f64 {
        self.num_samples as f64 * (self.final_seq_length as f64 * 20.0 + 16.0)
    }
}
