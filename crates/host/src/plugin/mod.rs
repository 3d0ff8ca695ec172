//! Finding, loading and calling plugins.
//!
//! Every library is opened with `lib_header_from_path(..)?.init_root_module()`
//! and kept by canonical path: `RootModule::load_from_file` would cache one
//! module per type and silently hand back the first plugin for every file.
//! Calls into plugins go through the handles here, which turn the boundary's
//! `RResult`s into [`ComponentError`]s that name the component.

mod context;
mod errors;
mod handles;
mod load;
mod registry;

pub use context::*;
pub use errors::*;
pub use handles::*;
pub use load::*;
pub use registry::*;
pub use tessera_util::suggest::closest;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_file_names() {
        assert!(is_plugin_file_name(&library_file_name("tessera_baselines")));
        assert!(!is_plugin_file_name(&library_file_name("faulty_fixture")));
        assert!(!is_plugin_file_name("tessera_baselines.txt"));
    }

    #[test]
    fn suggestions_are_close_names_only() {
        let names = ["baselines.sequential", "baselines.full-shuffle"];
        assert_eq!(closest("baselines.sequentail", names.iter().copied()), Some("baselines.sequential"));
        assert_eq!(closest("corgi2.corgipile", names.iter().copied()), None);
    }

    #[test]
    fn sdk_compatibility_follows_abi_stable() {
        assert!(sdk_compatible("0.1.0", "0.1.0"));
        assert!(sdk_compatible("0.1.0", "0.1.3"));
        assert!(!sdk_compatible("0.1.2", "0.1.0"));
        assert!(!sdk_compatible("0.1.0", "0.2.0"));
        assert!(sdk_compatible("1.2.0", "1.3.0"));
        assert!(!sdk_compatible("1.2.0", "2.0.0"));
    }

    #[test]
    fn libtorch_must_match_only_for_plugins_that_link_it() {
        assert!(libtorch_compatible("2.13.0", ""));
        assert!(libtorch_compatible("2.13.0", "2.13.0"));
        assert!(!libtorch_compatible("2.13.0", "2.12.1"));
        // The engine's torch feature turns on the host's, which records it.
        if cfg!(feature = "torch") {
            assert_eq!(host_libtorch_version(), "2.13.0");
        }
    }

    #[test]
    fn layout_summary_keeps_error_lines() {
        let dump = "blah\n  Error: field a differs\nmore\n  Error: field a differs\nError: size differs\n";
        assert_eq!(layout_summary(dump), vec!["Error: field a differs", "Error: size differs"]);
    }
}
