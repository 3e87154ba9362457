//! The crate chain is checked, not hoped for: domain → persistence → auth → api, and no
//! web framework or async runtime below the api crate; the client depends on domain only
//! among ours, and pulls in no database or server code.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

const CHAIN: [&str; 4] = [
    "asyncstatus-domain",
    "asyncstatus-persistence",
    "asyncstatus-auth",
    "asyncstatus-api",
];

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Package name → the names of its normal (non-dev, non-build) dependencies.
fn normal_deps(meta: &Value) -> HashMap<String, Vec<String>> {
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| {
            let deps = node["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| names[d["pkg"].as_str().unwrap()].to_owned())
                .collect();
            (names[node["id"].as_str().unwrap()].to_owned(), deps)
        })
        .collect()
}

fn closure(graph: &HashMap<String, Vec<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(name) = stack.pop() {
        for dep in graph.get(&name).into_iter().flatten() {
            if seen.insert(dep.clone()) {
                stack.push(dep.clone());
            }
        }
    }
    seen
}

#[test]
fn crates_depend_only_on_crates_before_them_and_no_framework_below_api() {
    let graph = normal_deps(&metadata());
    for (i, krate) in CHAIN.iter().enumerate() {
        let deps = closure(&graph, krate);
        for later in &CHAIN[i + 1..] {
            assert!(
                !deps.contains(*later),
                "{krate} depends on {later}, which comes after it"
            );
        }
        if *krate != "asyncstatus-api" {
            let forbidden: Vec<&String> = deps
                .iter()
                .filter(|d| {
                    d.starts_with("actix") || *d == "tokio" || *d == "reqwest" || *d == "hyper"
                })
                .collect();
            assert!(forbidden.is_empty(), "{krate} pulls in {forbidden:?}");
        }
    }
    let domain: BTreeSet<&str> = graph["asyncstatus-domain"]
        .iter()
        .map(String::as_str)
        .collect();
    // base64 spells the list cursor; the domain stays free of I/O and frameworks.
    assert_eq!(
        domain,
        BTreeSet::from(["base64", "chrono", "serde", "thiserror"])
    );
}

#[test]
fn the_client_depends_on_the_domain_only_and_pulls_in_no_database_or_server() {
    let graph = normal_deps(&metadata());
    let direct: BTreeSet<&str> = graph["asyncstatus-client"]
        .iter()
        .map(String::as_str)
        .filter(|d| d.starts_with("asyncstatus-"))
        .collect();
    assert_eq!(direct, BTreeSet::from(["asyncstatus-domain"]));
    let deps = closure(&graph, "asyncstatus-client");
    let ours: Vec<&String> = deps
        .iter()
        .filter(|d| d.starts_with("asyncstatus-") && *d != "asyncstatus-domain")
        .collect();
    assert!(ours.is_empty(), "the client pulls in {ours:?}");
    let forbidden: Vec<&String> = deps
        .iter()
        .filter(|d| {
            d.starts_with("actix")
                || d.starts_with("diesel")
                || d.starts_with("tokio-postgres")
                || [
                    "postgres",
                    "pq-sys",
                    "libsqlite3-sys",
                    "r2d2",
                    "jsonwebtoken",
                    "scrypt",
                ]
                .contains(&d.as_str())
        })
        .collect();
    assert!(forbidden.is_empty(), "the client pulls in {forbidden:?}");
}
