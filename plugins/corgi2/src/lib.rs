//! CorgiPile (Xu et al., SIGMOD 2022) and Corgi² (Livne, Kaplun, Malach,
//! Shalev-Shwartz, 2023): shuffling for SGD when data lives in blocks that
//! are cheap to read whole and expensive to read at random.
//!
//! - `corgi2.corgipile`: each epoch, a random order of the N blocks, read n
//!   at a time into a buffer whose b·n examples are shuffled uniformly; every
//!   block is read once per epoch.
//! - `corgi2.corgi2`: first an offline pass — CorgiPile once with a buffer of
//!   n_offline blocks, which the host writes out as new blocks — then online
//!   CorgiPile on the rewritten blocks. The offline pass shrinks the block
//!   heterogeneity h_D to roughly 1 + h_D/n_offline.
//! - `corgi2.order-quality`: how shuffled an order is — h_D of the stored
//!   blocks, entropies of the gaps between consecutive ids and blocks,
//!   Kendall τ against the stored order, label entropy per window.

mod quality;
mod samplers;

pub use quality::{block_heterogeneity, gap_entropy, kendall_tau, window_label_entropy, OrderQuality};
pub use samplers::{Corgi2, CorgiPile, CorgiPileOrder};

tessera_sdk::export_plugin! {
    name: "corgi2",
    samplers: [CorgiPile, Corgi2],
    metrics: [OrderQuality],
}
