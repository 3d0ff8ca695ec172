//! For self-supervised learning, rationality implies generalization,
//! provably (Bansal, Kaplun, Barak; ICLR 2021).
//!
//! A simple classifier g on a frozen representation r trains twice: on the
//! clean labels, and on labels where a fraction η was flipped to a random
//! other class. With Train and Test the clean run's accuracies, Train_η the
//! noisy run's accuracy on the whole training set and NTrain_η on the flipped
//! points (both against the clean labels),
//!
//! Train − Test = (Train − Train_η) + (Train_η − NTrain_η) + (NTrain_η − Test)
//!              =   robustness      +   memorization      +   rationality,
//!
//! and RRM = robustness + memorization + max(0, rationality) bounds the
//! generalization gap. Theorem II bounds the memorization gap by the
//! complexity C — the mutual information between the classifier's error
//! (pred − y) mod C and the noise (ỹ − y) mod C — as √(C/2)/η (C in nats).
//!
//! - [`gaps`]: the four accuracies, the gaps and the complexity estimators.
//! - `rrm-bound.rrm`: the metric on a population of clean and noisy runs.

pub mod gaps;
mod metric;

pub use metric::Rrm;

tessera_sdk::export_plugin! {
    name: "rrm-bound",
    metrics: [Rrm],
}
