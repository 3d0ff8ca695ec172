//! `tessera plugins`: every plugin found, its components and parameters.

use std::process::ExitCode;

use tessera_engine::plugin::{Registry, HOST_SDK_VERSION};

use crate::args::{search, Cli};

pub(crate) fn print_load_failures(registry: &Registry, verbose: bool) {
    for failure in registry.failures.iter().chain(registry.conflicts()) {
        eprintln!("warning: {failure}");
        if let (true, Some(details)) = (verbose, failure.details()) {
            eprintln!("{details}");
        } else if failure.details().is_some() {
            eprintln!("  (run with -v for abi_stable's full report)");
        }
    }
}

fn plugins_json(registry: &Registry) -> serde_json::Value {
    let plugins: Vec<serde_json::Value> = registry
        .plugins()
        .iter()
        .map(|p| {
            let components: Vec<serde_json::Value> = p
                .info
                .components
                .iter()
                .map(|c| {
                    let params: Vec<serde_json::Value> = c
                        .params
                        .iter()
                        .map(|s| serde_json::json!({"name": s.name.as_str(), "type": s.type_name.as_str(), "default": s.default.as_str(), "doc": s.doc.as_str()}))
                        .collect();
                    serde_json::json!({
                        "kind": c.kind.as_str(),
                        "name": c.name.as_str(),
                        "id": format!("{}.{}", p.name(), c.name),
                        "summary": c.summary.as_str(),
                        "params": params,
                    })
                })
                .collect();
            serde_json::json!({
                "name": p.name(),
                "version": p.info.version.as_str(),
                "sdk_version": p.info.sdk_version.as_str(),
                "libtorch_version": p.info.libtorch_version.as_str(),
                "path": p.path.display().to_string(),
                "components": components,
            })
        })
        .collect();
    let failures: Vec<String> = registry.failures.iter().chain(registry.conflicts()).map(|f| f.to_string()).collect();
    serde_json::json!({
        "tessera_version": env!("CARGO_PKG_VERSION"),
        "sdk_version": HOST_SDK_VERSION,
        "libtorch_version": tessera_engine::plugin::host_libtorch_version(),
        "plugins": plugins,
        "failures": failures,
    })
}

fn print_plugins(registry: &Registry) {
    if registry.plugins().is_empty() {
        println!("no plugins found (searched --plugins, TESSERA_PLUGIN_PATH and the folder of this binary)");
    }
    for p in registry.plugins() {
        println!("{} {} (tessera-sdk {})  {}", p.name(), p.info.version, p.info.sdk_version, p.path.display());
        for c in p.info.components.iter() {
            let id = format!("{}.{}", p.name(), c.name);
            println!("  {:<16} {id:<32} {}", c.kind.as_str(), c.summary);
            for s in c.params.iter() {
                let default = if s.default.is_empty() { "none".to_string() } else { s.default.to_string() };
                println!("  {:<18}{} : {} = {}  {}", "", s.name, s.type_name, default, s.doc);
            }
        }
    }
}

/// `tessera plugins`.
pub(crate) fn list_plugins(cli: &Cli, json: bool, verbose: bool) -> ExitCode {
    let mut registry = Registry::new();
    if let Err(e) = search(cli).load_into(&mut registry) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&plugins_json(&registry)).unwrap_or_default());
    } else {
        print_plugins(&registry);
    }
    print_load_failures(&registry, verbose);
    ExitCode::SUCCESS
}
