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
//! - [`RhoLoss`]: per-step selection (SDK 0.3) by reducible holdout loss
//!   (Mindermann et al., 2022): each step scores a large candidate batch and
//!   trains on the points with the highest training loss minus the loss of
//!   a model trained on held-out data; or by loss alone, or at random.
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
mod rho_loss;
mod self_paced;

pub use forgetting::Forgetting;
pub use importance::Importance;
pub use loss_rank::LossRank;
pub use rho_loss::{RhoLoss, Score};
pub use self_paced::SelfPaced;

use tessera_sdk::prelude::*;

/// The per-example training loss, the one observation both samplers need.
fn loss_request() -> Vec<ObservationRequest> {
    vec![ObservationRequest::new("train", observation::LOSS)]
}

export_plugin! {
    name: "adaptive",
    samplers: [LossRank, SelfPaced, Importance, RhoLoss],
    metrics: [Forgetting],
}
