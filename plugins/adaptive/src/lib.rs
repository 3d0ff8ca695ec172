//! Samplers that learn from training, written with the public SDK alone:
//! each asks for the per-example training loss before every epoch and
//! chooses that epoch's examples from it.
//!
//! - [`LossRank`]: online batch selection by loss rank (Loshchilov & Hutter,
//!   2015): examples are drawn with replacement, with probability decaying
//!   exponentially in their loss rank.
//! - [`Importance`]: importance sampling by loss (Katharopoulos & Fleuret,
//!   2018): examples drawn in proportion to their loss, each loss weighted
//!   by 1/(N·p) so that the gradient stays unbiased (SDK 0.3's loss weights).
//! - [`SelfPaced`]: self-paced learning (Kumar, Packer & Koller, 2010): each
//!   epoch trains on the easiest examples only, a share that grows to all.
//!
//! And a metric that follows every example through training with the
//! per-step observations: [`Forgetting`], forgetting events (Toneva et al.,
//! 2019).

#![deny(missing_docs)]

mod forgetting;
mod importance;
mod loss_rank;
mod self_paced;

pub use forgetting::Forgetting;
pub use importance::Importance;
pub use loss_rank::LossRank;
pub use self_paced::SelfPaced;

use tessera_sdk::prelude::*;

/// The per-example training loss, the one observation both samplers need.
fn loss_request() -> Vec<ObservationRequest> {
    vec![ObservationRequest::new("train", observation::LOSS)]
}

export_plugin! {
    name: "adaptive",
    samplers: [LossRank, SelfPaced, Importance],
    metrics: [Forgetting],
}
