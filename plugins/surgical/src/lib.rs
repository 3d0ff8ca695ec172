//! Surgical fine-tuning (Lee, Chen, Tajwar, Kumar, Yao, Liang & Finn, 2023):
//! under a distribution shift, fine-tuning a *subset* of the layers matches
//! or beats fine-tuning all of them, and which subset depends on the shift:
//! the first block for input-level shifts (corruptions), the last layers for
//! output-level shifts (relabelled classes).
//!
//! - [`Block`]: tune the listed blocks only, every other tensor frozen (the
//!   head too, unless listed): the paper's manual surgical fine-tuning.
//! - [`AutoRgn`]: tune every tensor at its own learning rate, the base rate
//!   times its relative gradient norm RGN_t = ‖∇θ_t L‖ / ‖θ_t‖ over the
//!   largest, re-estimated before every epoch (SDK 0.3's per-tensor
//!   multipliers, gradient and weight norms, and revisions).

#![deny(missing_docs)]

mod auto_rgn;
mod block;

pub use auto_rgn::AutoRgn;
pub use block::Block;

tessera_sdk::export_plugin! {
    name: "surgical",
    finetuners: [Block, AutoRgn],
}
