//! Tessera's lowest layer, used by every other crate: [`confined`] (the one
//! way into run and shard folders), [`fs`] (atomic writes, safe file
//! stems), [`suggest`] (did-you-mean), [`text`], [`process`] facts, the
//! host's [`logger`] and [`store_url`] (object-store locations). It knows nothing of manifests, data or torch.

#![deny(missing_docs)]

pub mod confined;
pub mod error;
pub mod fs;
pub mod logger;
pub mod process;
pub mod store_url;
pub mod suggest;
pub mod text;
