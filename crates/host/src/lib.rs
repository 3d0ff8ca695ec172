//! Tessera's plugin host: [`plugin`] finds and loads plugin libraries,
//! refuses those built against another SDK, and wraps each component in a
//! handle whose calls catch panics and name the component; [`contract`]
//! checks what components return (orders, reports, selections) at the
//! boundary. Builds and tests without libtorch.

pub mod contract;
pub mod plugin;

use tessera_data::storage;
use tessera_report::report;
