//! Tessera's training on libtorch (tch): [`model`] builds the networks
//! (MLP, CNN, ResNet, TorchScript) with named blocks; [`train`] is the
//! training loop that executes a sampler's order, feeds metrics their
//! observations and checks the plugins' contracts as batches are drawn;
//! [`finetune`] lets a finetuner choose which blocks train, with the oracle
//! and its activation cache; [`pretrain`] is SimCLR and autoencoder
//! pretraining; [`siamese`] answers several finetuned tasks as one model;
//! [`population`] trains and evaluates populations of models.

pub mod error;
pub mod finetune;
pub mod model;
pub mod optim;
pub mod population;
pub mod pretrain;
pub mod siamese;
pub mod train;

pub use error::{Result, TorchError};
use tessera_config::manifest;
use tessera_data::{data, storage};
use tessera_host::{contract, plugin};
use tessera_report::report;
