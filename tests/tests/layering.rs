//! The crates' layering, read from `cargo metadata`: services stand on libraries only.
//! No service crate depends on another (the rules one service applies to another's
//! aggregate live in a library, as `caseline-case` holds the case's), and no library
//! depends on a service. The all-in-one binary, which mounts every service, is the one
//! crate that may.

use std::collections::BTreeSet;
use std::process::Command;

/// The crate that composes every service into one process.
const ALL_IN_ONE: &str = "caseline";

/// Dependencies that cross the layers on purpose, each with why.
const ALLOWED: &[(&str, &str, &str)] = &[(
    "caseline-trust",
    "caseline-audit-service",
    "a dev-dependency: the trust layer's test builds a server with a real service's \
     methods to show that a server with undeclared methods is refused",
)];

#[derive(Debug)]
struct Package {
    name: String,
    /// `libs`, `services` or `tests`.
    layer: String,
    /// Workspace crates it depends on (normal, build or dev), with the kind.
    depends_on: Vec<(String, String)>,
}

fn workspace() -> Vec<Package> {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata answers JSON");
    let root = metadata["workspace_root"]
        .as_str()
        .expect("a workspace root");
    let packages = metadata["packages"].as_array().expect("packages");
    let names: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    packages
        .iter()
        .map(|p| {
            let manifest = p["manifest_path"].as_str().expect("a manifest path");
            let relative = manifest
                .strip_prefix(root)
                .expect("a workspace member")
                .trim_start_matches('/');
            Package {
                name: p["name"].as_str().expect("a name").to_owned(),
                layer: relative.split('/').next().expect("a directory").to_owned(),
                depends_on: p["dependencies"]
                    .as_array()
                    .expect("dependencies")
                    .iter()
                    .filter_map(|d| {
                        let name = d["name"].as_str()?;
                        names.contains(name).then(|| {
                            let kind = d["kind"].as_str().unwrap_or("normal").to_owned();
                            (name.to_owned(), kind)
                        })
                    })
                    .collect(),
            }
        })
        .collect()
}

#[test]
fn services_stand_on_libraries_only() {
    let packages = workspace();
    let services: BTreeSet<&str> = packages
        .iter()
        .filter(|p| p.layer == "services")
        .map(|p| p.name.as_str())
        .collect();
    assert!(
        services.contains("caseline-cases") && services.contains("caseline-referrals"),
        "{services:?}"
    );
    let mut crossings = Vec::new();
    for package in &packages {
        if package.name == ALL_IN_ONE || package.layer == "tests" {
            continue;
        }
        for (dependency, kind) in &package.depends_on {
            let allowed = ALLOWED
                .iter()
                .any(|(from, to, _)| *from == package.name && to == dependency);
            if services.contains(dependency.as_str()) && !allowed {
                crossings.push(format!(
                    "{} ({}) depends on the service {dependency} ({kind})",
                    package.name, package.layer
                ));
            }
        }
    }
    assert!(crossings.is_empty(), "{crossings:#?}");
}

/// The allowed crossings still exist: an exception nobody needs any more goes.
#[test]
fn every_allowed_crossing_is_still_needed() {
    let packages = workspace();
    for (from, to, why) in ALLOWED {
        let package = packages
            .iter()
            .find(|p| p.name == *from)
            .unwrap_or_else(|| panic!("no crate {from}"));
        assert!(
            package.depends_on.iter().any(|(d, _)| d == to),
            "{from} no longer depends on {to} ({why}): drop the exception"
        );
    }
}
