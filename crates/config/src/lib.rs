//! Tessera's configuration layer: what a manifest may say and what it means,
//! before any data is read or any plugin is loaded. [`manifest`] parses a
//! file into variants with every error located at `file:line:col`;
//! [`choice`] holds the settings that take one of a fixed set of names;
//! [`validate`] checks ranges, cross-field rules and the memory a variant's
//! settings imply. Builds and tests without libtorch.

pub mod choice;
pub mod manifest;
pub mod population;
pub mod validate;
