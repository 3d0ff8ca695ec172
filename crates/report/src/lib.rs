//! Tessera's results layer: what a run folder says and how it shows it.
//! [`report`] is the `results.json` schema with its tables, CSVs and plots;
//! [`html`] the self-contained `report.html` (its templates in `pages`); [`compare`] several runs side
//! by side; [`figures`] the expected-figures files that `make figures`
//! checks; [`table`] Markdown tables of a run folder; [`system`] the machine
//! and build a run came from; [`settings`] each variant's settings and
//! which differ. Builds and tests
//! without libtorch.

pub mod compare;
pub mod error;
pub mod figures;
pub mod html;
mod pages;
pub mod report;
pub mod settings;
pub mod system;
pub mod table;

pub use error::{ReportError, Result};
use tessera_util::confined;
