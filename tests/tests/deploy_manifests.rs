//! The deployment files under `deploy/` agree with one another and with the binaries they
//! run: the image the Dockerfile builds and the binaries it ships, and the command, ports,
//! probes, flags and environment that compose and Kubernetes give each binary.
//!
//! Nothing here runs Docker or a cluster (CI has neither). The YAML is parsed, the
//! Dockerfile read, the Caseline configuration files loaded as the servers load them, and
//! each built binary asked for its `--help`, which lists every flag it takes and, through
//! clap, the variable behind each (`[env: CASELINE_LISTEN=]`). That last check needs the
//! binaries beside this test's executable: `cargo build --workspace --bins` first.
//!
//! Each test gathers every problem it finds and fails once, listing them all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlLoader};

/// The five service binaries, each with the gRPC service it serves and reports SERVING in
/// `grpc.health.v1.Health` under that full name.
const SERVICES: [(&str, &str); 5] = [
    ("caseline-cases", "caseline.v1.CaseService"),
    ("caseline-referrals", "caseline.v1.ReferralService"),
    ("caseline-support-plans", "caseline.v1.SupportPlanService"),
    ("caseline-compensation", "caseline.v1.CompensationService"),
    ("caseline-audit", "caseline.v1.AuditService"),
];

/// The all-in-one binary; it serves through its `serve` subcommand.
const ALL_IN_ONE: &str = "caseline";

/// The Cargo package of each of the six binaries (the audit service's differs).
const PACKAGES: [(&str, &str); 6] = [
    ("caseline", "caseline"),
    ("caseline-cases", "caseline-cases"),
    ("caseline-referrals", "caseline-referrals"),
    ("caseline-support-plans", "caseline-support-plans"),
    ("caseline-compensation", "caseline-compensation"),
    ("caseline-audit-service", "caseline-audit"),
];

/// Variables every binary reads from the environment itself, not through clap, so they
/// never show in `--help`: the master key (kept out of clap so that it can never be
/// printed), the log filter and its fallback. Every `OTEL_*` variable is read by the
/// OpenTelemetry set-up (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, …).
const READ_FROM_ENVIRONMENT: [&str; 3] = ["CASELINE_MASTER_KEY", "CASELINE_LOG", "RUST_LOG"];
const OTEL_PREFIX: &str = "OTEL_";

/// Records a problem, formatted as by `format!`, unless the condition holds.
macro_rules! ensure {
    ($problems:expr, $ok:expr, $($message:tt)+) => {
        if !$ok {
            $problems.add(format!($($message)+));
        }
    };
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

#[test]
fn every_yaml_file_under_deploy_parses() {
    let mut problems = Problems::default();
    let files = yaml_files(&deploy_dir());
    assert!(!files.is_empty(), "no YAML files under deploy/");
    for file in files {
        match YamlLoader::load_from_str(&read(&file)) {
            Ok(docs) if docs.iter().all(|d| matches!(d, Yaml::Hash(_))) && !docs.is_empty() => {}
            Ok(_) => problems.add(format!("{}: every document must be a mapping", rel(&file))),
            Err(e) => problems.add(format!("{}: invalid YAML: {e}", rel(&file))),
        }
    }
    problems.finish("YAML under deploy/");
}

#[test]
fn the_dockerfile_builds_and_ships_all_six_binaries() {
    let mut problems = Problems::default();
    let docker = Dockerfile::load();
    let workspace = Workspace::load();
    let expected_packages: BTreeSet<&str> = PACKAGES.iter().map(|(p, _)| *p).collect();
    let binaries = all_binaries();

    // Each package really holds the binary this test expects of it.
    for (package, binary) in PACKAGES {
        match workspace.packages.get(package) {
            None => problems.add(format!("package `{package}` is not a workspace member")),
            Some(member) if !member.has_binary(binary) => problems.add(format!(
                "package `{package}` has no binary `{binary}` (Cargo.toml [[bin]] or src/main.rs)"
            )),
            Some(_) => {}
        }
    }

    match docker.cargo_build() {
        None => problems.add("deploy/Dockerfile has no RUN with `cargo build`".into()),
        Some(run) => {
            // `cargo build …` up to the next command of the same RUN.
            let build = run[run.find("cargo build").unwrap_or_default()..]
                .split("&&")
                .next()
                .unwrap_or_default();
            let words: Vec<&str> = build.split_whitespace().collect();
            let run_words: Vec<&str> = run.split_whitespace().collect();
            let packages: BTreeSet<&str> = words
                .windows(2)
                .filter(|w| w[0] == "-p" || w[0] == "--package")
                .map(|w| w[1])
                .collect();
            if packages != expected_packages {
                problems.add(format!(
                    "`cargo build` in deploy/Dockerfile builds packages {packages:?}, expected {expected_packages:?}"
                ));
            }
            for flag in ["--release", "--locked"] {
                ensure!(
                    problems,
                    words.contains(&flag),
                    "`cargo build` in deploy/Dockerfile lacks {flag}"
                );
            }
            for binary in &binaries {
                ensure!(
                    problems,
                    run_words.contains(&format!("target/release/{binary}").as_str()),
                    "deploy/Dockerfile does not copy target/release/{binary} out of the build"
                );
            }
            // The features asked for exist, in every package they apply to.
            let features: Vec<&str> = words
                .windows(2)
                .filter(|w| w[0] == "--features" || w[0] == "-F")
                .flat_map(|w| w[1].trim_matches('"').split([',', ' ']))
                .filter(|f| !f.is_empty())
                .collect();
            for feature in &features {
                match feature.split_once('/') {
                    Some((package, feature)) => match workspace.packages.get(package) {
                        Some(member) if member.features.contains(feature) => {}
                        _ => problems.add(format!(
                            "deploy/Dockerfile enables `{package}/{feature}`, which does not exist"
                        )),
                    },
                    None => {
                        for package in &expected_packages {
                            let has = workspace
                                .packages
                                .get(*package)
                                .is_some_and(|m| m.features.contains(*feature));
                            ensure!(
                                problems,
                                has,
                                "deploy/Dockerfile enables feature `{feature}`, which package `{package}` lacks"
                            );
                        }
                    }
                }
            }
            // A KurrentDB event log anywhere in the deployments needs the backend built in.
            let kurrent_urls = deployed_event_logs()
                .into_iter()
                .filter(|(_, url)| url.starts_with("kurrentdb") || url.starts_with("esdb"))
                .map(|(origin, _)| origin)
                .collect::<Vec<_>>();
            if !kurrent_urls.is_empty() {
                ensure!(
                    problems,
                    features.iter().any(|f| f.ends_with("kurrentdb")),
                    "{} use a KurrentDB event log, but deploy/Dockerfile builds without the `kurrentdb` feature",
                    kurrent_urls.join(", ")
                );
            }
        }
    }

    let shipped = docker.shipped_binaries();
    let expected: BTreeSet<String> = binaries.iter().cloned().collect();
    if shipped != expected {
        problems.add(format!(
            "deploy/Dockerfile copies {shipped:?} into /usr/local/bin, expected {expected:?}"
        ));
    }
    ensure!(
        problems,
        !docker.has("ENTRYPOINT"),
        "deploy/Dockerfile must not set an ENTRYPOINT: each deployment names its binary"
    );
    match docker.last("USER") {
        None => problems.add("deploy/Dockerfile's image runs as root: add a USER".into()),
        Some(user) => {
            let name = user.split(':').next().unwrap_or_default();
            ensure!(
                problems,
                name != "root" && name != "0",
                "deploy/Dockerfile runs as `{user}`, which is root"
            );
        }
    }
    let listen = docker.env("CASELINE_LISTEN");
    match listen.as_deref().map(port_of_addr) {
        Some(Some(port)) => ensure!(
            problems,
            docker.exposed().contains(&port),
            "deploy/Dockerfile listens on {port} (CASELINE_LISTEN) but does not EXPOSE it"
        ),
        _ => problems.add("deploy/Dockerfile must set ENV CASELINE_LISTEN=0.0.0.0:PORT".into()),
    }
    ensure!(
        problems,
        docker.image.is_some(),
        "deploy/Dockerfile's header must name the image it builds (`docker build … -t IMAGE`)"
    );
    problems.finish("deploy/Dockerfile");
}

#[test]
fn compose_runs_each_service_binary_once_from_the_image() {
    let mut problems = Problems::default();
    let image = Dockerfile::load().image();
    let compose = Compose::load();
    let mut runs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, service) in &compose.services {
        let origin = format!("compose service `{name}`");
        let command = compose_command(service);
        let runs_ours = command.first().is_some_and(|c| all_binaries().contains(c));
        let ours = runs_ours
            || str_at(service, &["image"]).as_deref() == Some(image.as_str())
            || !service["build"].is_badvalue();
        if !ours {
            continue;
        }
        ensure!(
            problems,
            str_at(service, &["image"]).as_deref() == Some(image.as_str()),
            "{origin} must use the image deploy/Dockerfile builds, `{image}`"
        );
        if !service["build"].is_badvalue() {
            let context =
                deploy_dir().join(str_at(service, &["build", "context"]).unwrap_or_default());
            let dockerfile = context.join(
                str_at(service, &["build", "dockerfile"]).unwrap_or_else(|| "Dockerfile".into()),
            );
            ensure!(
                problems,
                same_file(&dockerfile, &deploy_dir().join("Dockerfile")),
                "{origin} builds {} instead of deploy/Dockerfile",
                dockerfile.display()
            );
            ensure!(
                problems,
                same_file(&context, &workspace_dir()),
                "{origin}'s build context must be the workspace root (`..`)"
            );
        }
        match command_binary(&command) {
            Ok(binary) => runs.entry(binary).or_default().push(origin),
            Err(e) => problems.add(format!("{origin}: {e}")),
        }
    }
    check_each_service_runs_once(&mut problems, &runs, "deploy/compose.yaml");
    problems.finish("deploy/compose.yaml: images and commands");
}

#[test]
fn compose_ports_agree_with_each_listen_address() {
    let mut problems = Problems::default();
    let compose = Compose::load();
    let mut host_ports: BTreeMap<u16, String> = BTreeMap::new();
    for (name, service) in &compose.services {
        let origin = format!("compose service `{name}`");
        let ports = match compose_ports(service) {
            Ok(ports) => ports,
            Err(e) => {
                problems.add(format!("{origin}: {e}"));
                continue;
            }
        };
        for (host, _) in &ports {
            if let Some(host) = host
                && let Some(other) = host_ports.insert(*host, origin.clone())
            {
                problems.add(format!(
                    "{origin} and {other} both publish host port {host}"
                ));
            }
        }
        let command = compose_command(service);
        if command_binary(&command).is_err() {
            continue;
        }
        let env = compose_env(service);
        let Some(listen) = listen_port(&command, &env) else {
            problems.add(format!(
                "{origin} must listen on all interfaces of its container: CASELINE_LISTEN (or --listen) 0.0.0.0:PORT"
            ));
            continue;
        };
        ensure!(problems, !ports.is_empty(), "{origin} publishes no port");
        for (_, container) in &ports {
            ensure!(
                problems,
                *container == listen,
                "{origin} publishes container port {container} but listens on {listen}"
            );
        }
    }
    problems.finish("deploy/compose.yaml: ports");
}

#[test]
fn compose_references_resolve() {
    let mut problems = Problems::default();
    let compose = Compose::load();
    let deploy = deploy_dir();
    let top = |key: &str| -> BTreeSet<String> { keys(&compose.doc[key]) };
    let (networks, volumes, configs, secrets) = (
        top("networks"),
        top("volumes"),
        top("configs"),
        top("secrets"),
    );
    let services: BTreeSet<String> = compose.services.keys().cloned().collect();

    for (name, service) in &compose.services {
        let origin = format!("compose service `{name}`");
        for network in names_in(&service["networks"]) {
            ensure!(
                problems,
                network == "default" || networks.contains(&network),
                "{origin} joins network `{network}`, which compose.yaml does not declare"
            );
        }
        for volume in list(&service["volumes"]) {
            let source = match volume {
                Yaml::Hash(_) if str_at(volume, &["type"]).as_deref() == Some("volume") => {
                    str_at(volume, &["source"])
                }
                Yaml::Hash(_) => None,
                _ => scalar(volume).and_then(|v| v.split(':').next().map(String::from)),
            };
            if let Some(source) = source.filter(|s| !s.starts_with(['.', '/', '~', '$'])) {
                ensure!(
                    problems,
                    volumes.contains(&source),
                    "{origin} mounts volume `{source}`, which compose.yaml does not declare"
                );
            }
        }
        for (kind, declared) in [("configs", &configs), ("secrets", &secrets)] {
            for item in list(&service[kind]) {
                let source = scalar(item).or_else(|| str_at(item, &["source"]));
                match source {
                    Some(source) => ensure!(
                        problems,
                        declared.contains(&source),
                        "{origin} uses {kind} `{source}`, which compose.yaml does not declare"
                    ),
                    None => problems.add(format!("{origin}: a {kind} entry names no source")),
                }
            }
        }
        for dependency in names_in(&service["depends_on"]) {
            ensure!(
                problems,
                services.contains(&dependency),
                "{origin} depends on `{dependency}`, which is not a service"
            );
        }
    }

    // Configuration files are in the repository; secret files are made by the operator and
    // must be kept out of it.
    for (name, config) in hash_entries(&compose.doc["configs"]) {
        match str_at(config, &["file"]) {
            Some(file) => ensure!(
                problems,
                deploy.join(&file).is_file(),
                "compose config `{name}` names {file}, which does not exist under deploy/"
            ),
            None => problems.add(format!(
                "compose config `{name}` must be a file under deploy/"
            )),
        }
    }
    for (name, secret) in hash_entries(&compose.doc["secrets"]) {
        let Some(file) = str_at(secret, &["file"]) else {
            continue;
        };
        let dir = deploy
            .join(&file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let ignored = std::fs::read_to_string(dir.join(".gitignore"))
            .is_ok_and(|text| text.lines().any(|l| l.trim() == "*"));
        ensure!(
            problems,
            ignored,
            "compose secret `{name}` ({file}) must live in a directory whose .gitignore ignores everything (`*`)"
        );
    }
    problems.finish("deploy/compose.yaml: references");
}

#[test]
fn compose_wires_the_log_the_state_store_and_telemetry() {
    let mut problems = Problems::default();
    let compose = Compose::load();
    for (name, service) in &compose.services {
        let command = compose_command(service);
        if command_binary(&command).is_err() {
            continue;
        }
        let origin = format!("compose service `{name}`");
        let env = compose_env(service);

        // The event log: a KurrentDB cluster of compose services, each told the cluster's
        // size and the others as gossip seeds, running the standard projections (a case is
        // read through `$bc-<case id>`); then a state store is required.
        let log = env.get("CASELINE_EVENT_LOG").cloned().unwrap_or_default();
        if log.starts_with("kurrentdb") || log.starts_with("esdb") {
            let nodes = url_hosts(&log);
            for (host, _) in &nodes {
                let Some(node) = compose.services.get(host) else {
                    problems.add(format!(
                        "{origin}'s event log names `{host}`, which is not a service"
                    ));
                    continue;
                };
                let node_env = compose_env(node);
                let get = |k: &str| {
                    node_env
                        .get(k)
                        .map(|v| v.to_lowercase())
                        .unwrap_or_default()
                };
                ensure!(
                    problems,
                    get("KURRENTDB_CLUSTER_SIZE") == nodes.len().to_string(),
                    "`{host}` must set KURRENTDB_CLUSTER_SIZE={}",
                    nodes.len()
                );
                ensure!(
                    problems,
                    get("KURRENTDB_RUN_PROJECTIONS") == "all",
                    "`{host}` must set KURRENTDB_RUN_PROJECTIONS=All"
                );
                ensure!(
                    problems,
                    get("KURRENTDB_START_STANDARD_PROJECTIONS") == "true",
                    "`{host}` must start the standard projections ($by_correlation_id)"
                );
                let seeds: BTreeSet<String> = get("KURRENTDB_GOSSIP_SEED")
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.split(':').next().unwrap_or_default().to_string())
                    .collect();
                let others: BTreeSet<String> = nodes
                    .iter()
                    .map(|(h, _)| h.clone())
                    .filter(|h| h != host)
                    .collect();
                ensure!(
                    problems,
                    nodes.len() == 1 || seeds == others,
                    "`{host}`'s KURRENTDB_GOSSIP_SEED must list the other nodes {others:?}"
                );
            }
            ensure!(
                problems,
                env.contains_key("CASELINE_STATE_STORE"),
                "{origin} uses a KurrentDB log and so needs CASELINE_STATE_STORE"
            );
        }
        for key in ["CASELINE_EVENT_LOG", "CASELINE_STATE_STORE"] {
            if let Some(url) = env.get(key).filter(|u| u.contains("://")) {
                for (host, _) in url_hosts(url) {
                    ensure!(
                        problems,
                        compose.services.contains_key(&host),
                        "{origin}'s {key} names host `{host}`, which is not a service"
                    );
                }
            }
        }

        // Telemetry goes to a collector service that receives OTLP gRPC on that port.
        match env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            None => problems.add(format!("{origin} sets no OTEL_EXPORTER_OTLP_ENDPOINT")),
            Some(endpoint) => match url_hosts(endpoint).first() {
                Some((host, Some(port))) => match compose.services.get(host) {
                    None => problems.add(format!(
                        "{origin} sends telemetry to `{host}`, which is not a service"
                    )),
                    Some(collector) => match compose.collector_config(collector) {
                        Err(e) => problems.add(format!("collector `{host}`: {e}")),
                        Ok(config) => {
                            let grpc = str_at(
                                &config,
                                &["receivers", "otlp", "protocols", "grpc", "endpoint"],
                            );
                            ensure!(
                                problems,
                                grpc.as_deref().and_then(port_of_addr) == Some(*port),
                                "{origin} sends OTLP to {host}:{port}, but the collector's otlp gRPC receiver listens on {}",
                                shown(grpc.as_deref())
                            );
                        }
                    },
                },
                _ => problems.add(format!(
                    "{origin}: OTEL_EXPORTER_OTLP_ENDPOINT `{endpoint}` needs host and port"
                )),
            },
        }
    }
    problems.finish("deploy/compose.yaml: event log, state store, telemetry");
}

#[test]
fn the_collector_pipelines_use_what_the_config_defines() {
    let mut problems = Problems::default();
    let compose = Compose::load();
    let path = deploy_dir().join("otel-collector.yaml");
    let config = yaml_docs(&path).into_iter().next().unwrap_or(Yaml::Null);
    let pipelines = hash_entries(&config["service"]["pipelines"]);
    ensure!(
        problems,
        pipelines.iter().any(|(name, _)| name.starts_with("traces")),
        "deploy/otel-collector.yaml has no traces pipeline"
    );
    for (pipeline, spec) in &pipelines {
        for kind in ["receivers", "processors", "exporters"] {
            let defined = keys(&config[kind]);
            for used in names_in(&spec[kind]) {
                ensure!(
                    problems,
                    defined.contains(&used),
                    "pipeline `{pipeline}` uses {kind} `{used}`, which is not defined"
                );
            }
        }
    }
    for (name, exporter) in hash_entries(&config["exporters"]) {
        // The Prometheus exporter's endpoint is where it listens for scrapes.
        if name.split('/').next() == Some("prometheus") {
            continue;
        }
        if let Some(endpoint) = str_at(exporter, &["endpoint"]) {
            for (host, _) in url_hosts(&endpoint) {
                ensure!(
                    problems,
                    compose.services.contains_key(&host),
                    "exporter `{name}` sends to `{host}`, which is not a compose service"
                );
            }
        }
    }
    problems.finish("deploy/otel-collector.yaml");
}

#[test]
fn kubernetes_runs_each_service_binary_once_from_the_image() {
    let mut problems = Problems::default();
    let image = Dockerfile::load().image();
    let k8s = Kube::load();
    let mut runs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for deployment in k8s.of_kind("Deployment") {
        let origin = deployment.origin();
        let containers = list(&deployment.doc["spec"]["template"]["spec"]["containers"]);
        let ours: Vec<&Yaml> = containers
            .iter()
            .copied()
            .filter(|c| {
                str_at(c, &["image"]).as_deref() == Some(image.as_str())
                    || command_binary(&kube_command(c)).is_ok()
            })
            .collect();
        ensure!(
            problems,
            ours.len() == 1,
            "{origin} must run exactly one Caseline container, found {}",
            ours.len()
        );
        for container in ours {
            ensure!(
                problems,
                str_at(container, &["image"]).as_deref() == Some(image.as_str()),
                "{origin} must use the image deploy/Dockerfile builds, `{image}`"
            );
            match command_binary(&kube_command(container)) {
                Ok(binary) => runs.entry(binary).or_default().push(origin.clone()),
                Err(e) => problems.add(format!("{origin}: {e}")),
            }
        }
        let replicas = deployment.doc["spec"]["replicas"].as_i64().unwrap_or(1);
        ensure!(
            problems,
            replicas >= 2,
            "{origin} runs {replicas} replica(s); at least 2 keep a disruption budget of 1 meaningful"
        );
    }
    check_each_service_runs_once(&mut problems, &runs, "deploy/k8s");
    problems.finish("deploy/k8s: images and commands");
}

#[test]
fn kubernetes_ports_and_probes_agree_with_each_listen_address() {
    let mut problems = Problems::default();
    let k8s = Kube::load();
    let grpc_service: BTreeMap<&str, &str> = SERVICES.into_iter().collect();
    for deployment in k8s.of_kind("Deployment") {
        let origin = deployment.origin();
        for container in k8s.caseline_containers(deployment) {
            let command = kube_command(container);
            let Ok(binary) = command_binary(&command) else {
                continue;
            };
            let env = k8s.literal_env(container);
            let Some(listen) = listen_port(&command, &env) else {
                problems.add(format!(
                    "{origin} must listen on all interfaces of its container: CASELINE_LISTEN (a literal value) or --listen 0.0.0.0:PORT"
                ));
                continue;
            };
            let ports = list(&container["ports"]);
            ensure!(
                problems,
                !ports.is_empty(),
                "{origin} declares no container port"
            );
            for port in &ports {
                let number = port["containerPort"].as_i64();
                ensure!(
                    problems,
                    number == Some(i64::from(listen)),
                    "{origin} declares container port {} but listens on {listen}",
                    shown(number)
                );
            }
            let expected = grpc_service.get(binary.as_str()).copied();
            for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                let spec = &container[probe];
                if spec.is_badvalue() {
                    ensure!(problems, probe == "startupProbe", "{origin} has no {probe}");
                    continue;
                }
                let grpc = &spec["grpc"];
                if grpc.is_badvalue() {
                    problems.add(format!("{origin}'s {probe} must be a native gRPC probe"));
                    continue;
                }
                let port = grpc["port"].as_i64();
                ensure!(
                    problems,
                    port == Some(i64::from(listen)),
                    "{origin}'s {probe} checks port {} but the server listens on {listen}",
                    shown(port)
                );
                let service = str_at(grpc, &["service"]);
                ensure!(
                    problems,
                    expected.is_none() || service.as_deref() == expected,
                    "{origin}'s {probe} asks health about {}; `{binary}` serves `{}`",
                    shown(service.as_deref()),
                    expected.unwrap_or_default()
                );
            }

            // The Service in front of it reaches that port.
            for service in k8s.selecting(deployment, "Service") {
                for port in list(&service.doc["spec"]["ports"]) {
                    let target = &port["targetPort"];
                    let resolved = match target {
                        Yaml::Integer(n) => Some(*n),
                        Yaml::String(name) => ports
                            .iter()
                            .find(|p| str_at(p, &["name"]).as_deref() == Some(name))
                            .and_then(|p| p["containerPort"].as_i64()),
                        _ => port["port"].as_i64(),
                    };
                    ensure!(
                        problems,
                        resolved == Some(i64::from(listen)),
                        "{} targets port {}, which is not the port {origin} listens on ({listen})",
                        service.origin(),
                        shown(scalar(target))
                    );
                }
            }
        }
    }
    problems.finish("deploy/k8s: ports and probes");
}

#[test]
fn every_deployment_has_a_service_and_a_disruption_budget() {
    let mut problems = Problems::default();
    let k8s = Kube::load();
    for deployment in k8s.of_kind("Deployment") {
        let origin = deployment.origin();
        let pod_labels = labels(&deployment.doc["spec"]["template"]["metadata"]["labels"]);
        let selector = labels(&deployment.doc["spec"]["selector"]["matchLabels"]);
        ensure!(
            problems,
            !selector.is_empty() && is_subset(&selector, &pod_labels),
            "{origin}'s selector {selector:?} does not match its pod labels {pod_labels:?}"
        );
        for kind in ["Service", "PodDisruptionBudget"] {
            let found = k8s.selecting(deployment, kind);
            ensure!(
                problems,
                found.len() == 1,
                "{origin} needs exactly one {kind} selecting its pods, found {}",
                found.len()
            );
            if kind == "Service" {
                for service in &found {
                    let kind_of = str_at(&service.doc, &["spec", "type"])
                        .unwrap_or_else(|| "ClusterIP".into());
                    ensure!(
                        problems,
                        kind_of == "ClusterIP",
                        "{} must be a ClusterIP Service, not {kind_of}",
                        service.origin()
                    );
                }
            } else {
                for budget in &found {
                    let min = budget.doc["spec"]["minAvailable"].as_i64();
                    ensure!(
                        problems,
                        min == Some(1),
                        "{} must keep minAvailable: 1, has {}",
                        budget.origin(),
                        shown(min)
                    );
                }
            }
        }
        // Non-root, read-only root file system, no privilege escalation.
        let pod = &deployment.doc["spec"]["template"]["spec"];
        for container in k8s.caseline_containers(deployment) {
            let both = |key: &str| {
                container["securityContext"][key]
                    .as_bool()
                    .or_else(|| pod["securityContext"][key].as_bool())
            };
            ensure!(
                problems,
                both("runAsNonRoot") == Some(true),
                "{origin} must set runAsNonRoot: true"
            );
            ensure!(
                problems,
                container["securityContext"]["readOnlyRootFilesystem"].as_bool() == Some(true),
                "{origin} must set readOnlyRootFilesystem: true"
            );
            ensure!(
                problems,
                container["securityContext"]["allowPrivilegeEscalation"].as_bool() == Some(false),
                "{origin} must set allowPrivilegeEscalation: false"
            );
            ensure!(
                problems,
                !container["resources"]["requests"].is_badvalue(),
                "{origin} must request resources"
            );
        }
    }
    problems.finish("deploy/k8s: services, budgets, security");
}

#[test]
fn kubernetes_references_resolve() {
    let mut problems = Problems::default();
    let k8s = Kube::load();
    let dir = deploy_dir().join("k8s");

    // kustomization.yaml lists every manifest, and only those.
    let kustomization = yaml_docs(&dir.join("kustomization.yaml"))
        .into_iter()
        .next()
        .unwrap_or(Yaml::Null);
    let listed: BTreeSet<String> = list(&kustomization["resources"])
        .into_iter()
        .filter_map(scalar)
        .collect();
    let present: BTreeSet<String> = yaml_files(&dir)
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n != "kustomization.yaml")
        .collect();
    ensure!(
        problems,
        listed == present,
        "deploy/k8s/kustomization.yaml lists {listed:?}; the directory holds {present:?}"
    );

    // One namespace, and every object in it.
    let namespaces: Vec<String> = k8s.of_kind("Namespace").iter().map(|n| n.name()).collect();
    ensure!(
        problems,
        namespaces.len() == 1,
        "deploy/k8s must define one Namespace, found {namespaces:?}"
    );
    if let Some(namespace) = namespaces.first() {
        let kustomized = str_at(&kustomization, &["namespace"]);
        ensure!(
            problems,
            kustomized.is_none() || kustomized.as_deref() == Some(namespace),
            "kustomization.yaml's namespace {} is not the Namespace `{namespace}`",
            shown(kustomized.as_deref())
        );
        for object in k8s.objects.iter().filter(|o| o.kind() != "Namespace") {
            let theirs = str_at(&object.doc, &["metadata", "namespace"]);
            ensure!(
                problems,
                theirs.as_deref() == Some(namespace),
                "{} must be in namespace `{namespace}`, is in {}",
                object.origin(),
                shown(theirs.as_deref())
            );
        }
    }

    // Every ConfigMap or Secret key a pod refers to exists; every variable-like key is used.
    let mut used: BTreeSet<(String, String)> = BTreeSet::new();
    for deployment in k8s.of_kind("Deployment") {
        let origin = deployment.origin();
        let pod = &deployment.doc["spec"]["template"]["spec"];
        for container in list(&pod["containers"]) {
            for var in list(&container["env"]) {
                for (reference, kind) in
                    [("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")]
                {
                    let source = &var["valueFrom"][reference];
                    if source.is_badvalue() {
                        continue;
                    }
                    let (name, key) = (
                        str_at(source, &["name"]).unwrap_or_default(),
                        str_at(source, &["key"]).unwrap_or_default(),
                    );
                    ensure!(
                        problems,
                        k8s.data_keys(kind, &name)
                            .is_some_and(|keys| keys.contains(&key)),
                        "{origin} reads key `{key}` of {kind} `{name}`, which deploy/k8s does not define"
                    );
                    used.insert((name, key));
                }
            }
            for from in list(&container["envFrom"]) {
                for (reference, kind) in [("configMapRef", "ConfigMap"), ("secretRef", "Secret")] {
                    if let Some(name) = str_at(from, &[reference, "name"]) {
                        match k8s.data_keys(kind, &name) {
                            Some(keys) => used.extend(keys.into_iter().map(|k| (name.clone(), k))),
                            None => problems.add(format!("{origin} takes its environment from {kind} `{name}`, which deploy/k8s does not define")),
                        }
                    }
                }
            }
            for mount in list(&container["volumeMounts"]) {
                let name = str_at(mount, &["name"]).unwrap_or_default();
                let declared = list(&pod["volumes"])
                    .into_iter()
                    .any(|v| str_at(v, &["name"]).as_deref() == Some(name.as_str()));
                ensure!(
                    problems,
                    declared,
                    "{origin} mounts volume `{name}`, which the pod does not declare"
                );
            }
        }
        for volume in list(&pod["volumes"]) {
            if let Some(name) = str_at(volume, &["configMap", "name"]) {
                let keys = k8s.data_keys("ConfigMap", &name);
                ensure!(
                    problems,
                    keys.is_some(),
                    "{origin} mounts ConfigMap `{name}`, which deploy/k8s does not define"
                );
                for item in list(&volume["configMap"]["items"]) {
                    let key = str_at(item, &["key"]).unwrap_or_default();
                    ensure!(
                        problems,
                        keys.as_ref().is_some_and(|k| k.contains(&key)),
                        "{origin} mounts key `{key}` of ConfigMap `{name}`, which it does not hold"
                    );
                    used.insert((name.clone(), key));
                }
            }
        }
    }
    for kind in ["ConfigMap", "Secret"] {
        for object in k8s.of_kind(kind) {
            for key in k8s.data_keys(kind, &object.name()).unwrap_or_default() {
                ensure!(
                    problems,
                    used.contains(&(object.name(), key.clone())),
                    "key `{key}` of {} is used by no Deployment",
                    object.origin()
                );
            }
        }
    }

    // secret.yaml is a template: placeholders only, never a credential.
    for secret in k8s.of_kind("Secret") {
        ensure!(
            problems,
            secret.doc["data"].is_badvalue(),
            "{} must hold readable placeholders in stringData, not base64 data",
            secret.origin()
        );
        for (key, value) in hash_entries(&secret.doc["stringData"]) {
            let value = scalar(value).unwrap_or_default();
            ensure!(
                problems,
                value.contains("REPLACE-ME"),
                "{}: `{key}` must be a placeholder containing REPLACE-ME, never a real value",
                secret.origin()
            );
        }
    }
    problems.finish("deploy/k8s: references");
}

#[test]
fn the_configuration_files_load_and_point_at_mounted_files() {
    let mut problems = Problems::default();
    let compose = Compose::load();

    // Compose: deploy/caseline.toml is mounted where CASELINE_CONFIG says, and its master
    // key file is a secret mounted into the same container.
    let path = deploy_dir().join("caseline.toml");
    match caseline_host::config::FileConfig::load(&path) {
        Err(e) => problems.add(e),
        Ok(config) => {
            ensure!(
                problems,
                !config.auth.issuers.is_empty(),
                "deploy/caseline.toml names no token issuer"
            );
            for (name, service) in &compose.services {
                if command_binary(&compose_command(service)).is_err() {
                    continue;
                }
                let origin = format!("compose service `{name}`");
                let env = compose_env(service);
                let mounted_configs: BTreeMap<String, String> = list(&service["configs"])
                    .into_iter()
                    .filter_map(|c| {
                        Some((
                            str_at(c, &["target"])
                                .unwrap_or_else(|| format!("/{}", scalar(c).unwrap_or_default())),
                            str_at(c, &["source"]).or_else(|| scalar(c))?,
                        ))
                    })
                    .collect();
                let config_path = env.get("CASELINE_CONFIG").cloned().unwrap_or_default();
                let source = mounted_configs.get(&config_path);
                let file =
                    source.and_then(|s| str_at(&compose.doc, &["configs", s.as_str(), "file"]));
                ensure!(
                    problems,
                    file.as_deref()
                        .is_some_and(|f| same_file(&deploy_dir().join(f), &path)),
                    "{origin}'s CASELINE_CONFIG `{config_path}` is not where compose mounts deploy/caseline.toml"
                );
                let secrets: BTreeSet<String> = list(&service["secrets"])
                    .into_iter()
                    .filter_map(|s| match str_at(s, &["target"]) {
                        Some(target) if target.starts_with('/') => Some(target),
                        Some(target) => Some(format!("/run/secrets/{target}")),
                        None => scalar(s)
                            .or_else(|| str_at(s, &["source"]))
                            .map(|n| format!("/run/secrets/{n}")),
                    })
                    .collect();
                match &config.vault.master_key_file {
                    Some(key_file) => ensure!(
                        problems,
                        secrets.contains(&key_file.display().to_string()),
                        "{origin}: master_key_file {} is not a secret mounted into the container",
                        key_file.display()
                    ),
                    None => ensure!(
                        problems,
                        env.contains_key("CASELINE_MASTER_KEY"),
                        "{origin} gets no master key (master_key_file or CASELINE_MASTER_KEY)"
                    ),
                }
            }
        }
    }

    // Kubernetes: the ConfigMap's caseline.toml loads, and CASELINE_CONFIG names the file
    // its volume mounts.
    let k8s = Kube::load();
    let dir = tempfile::tempdir().expect("temporary directory");
    for configmap in k8s.of_kind("ConfigMap") {
        for (key, value) in hash_entries(&configmap.doc["data"]) {
            if !key.ends_with(".toml") {
                continue;
            }
            let file = dir.path().join(&key);
            std::fs::write(&file, scalar(value).unwrap_or_default()).expect("write temporary file");
            match caseline_host::config::FileConfig::load(&file) {
                Err(e) => problems.add(format!("{} key `{key}`: {e}", configmap.origin())),
                Ok(config) => ensure!(
                    problems,
                    !config.auth.issuers.is_empty(),
                    "{} key `{key}` names no token issuer",
                    configmap.origin()
                ),
            }
        }
    }
    for deployment in k8s.of_kind("Deployment") {
        let pod = &deployment.doc["spec"]["template"]["spec"];
        for container in k8s.caseline_containers(deployment) {
            let env = k8s.literal_env(container);
            let Some(config_path) = env.get("CASELINE_CONFIG") else {
                problems.add(format!("{} sets no CASELINE_CONFIG", deployment.origin()));
                continue;
            };
            let mut mounted = BTreeSet::new();
            for mount in list(&container["volumeMounts"]) {
                let mount_path = str_at(mount, &["mountPath"]).unwrap_or_default();
                let name = str_at(mount, &["name"]);
                for volume in list(&pod["volumes"])
                    .into_iter()
                    .filter(|v| str_at(v, &["name"]) == name)
                {
                    for item in list(&volume["configMap"]["items"]) {
                        mounted.insert(format!(
                            "{}/{}",
                            mount_path.trim_end_matches('/'),
                            str_at(item, &["path"]).unwrap_or_default()
                        ));
                    }
                }
            }
            ensure!(
                problems,
                mounted.contains(config_path),
                "{}'s CASELINE_CONFIG `{config_path}` is not a mounted ConfigMap file ({mounted:?})",
                deployment.origin()
            );
            let names: BTreeSet<String> = list(&container["env"])
                .into_iter()
                .filter_map(|v| str_at(v, &["name"]))
                .collect();
            ensure!(
                problems,
                names.contains("CASELINE_MASTER_KEY"),
                "{} gets no CASELINE_MASTER_KEY",
                deployment.origin()
            );
        }
    }
    problems.finish("Caseline configuration files");
}

#[test]
fn every_flag_and_variable_given_is_one_the_binary_takes() {
    let mut problems = Problems::default();
    let mut helps = Helps::default();

    let mut containers: Vec<(String, Vec<String>, BTreeSet<String>)> = Vec::new();
    let compose = Compose::load();
    for (name, service) in &compose.services {
        let command = compose_command(service);
        if command_binary(&command).is_ok() {
            let env = compose_env(service).into_keys().collect();
            containers.push((format!("compose service `{name}`"), command, env));
        }
    }
    let k8s = Kube::load();
    for deployment in k8s.of_kind("Deployment") {
        for container in k8s.caseline_containers(deployment) {
            containers.push((
                deployment.origin(),
                kube_command(container),
                k8s.env_names(container),
            ));
        }
    }
    assert!(
        !containers.is_empty(),
        "no Caseline container found in deploy/"
    );

    for (origin, command, env) in &containers {
        let Ok(binary) = command_binary(command) else {
            continue;
        };
        let help = helps.of(
            &binary,
            command
                .get(1)
                .filter(|_| binary == ALL_IN_ONE)
                .map(String::as_str),
        );
        for word in command.iter().skip(1).filter(|w| w.starts_with("--")) {
            let flag = word.split('=').next().unwrap_or_default();
            ensure!(
                problems,
                has_flag(&help, flag),
                "{origin} passes {flag}, which `{binary} --help` does not list"
            );
        }
        for name in env {
            ensure!(
                problems,
                takes_variable(&help, name),
                "{origin} sets {name}, which `{binary} --help` does not list as [env: {name}=]"
            );
        }
    }

    // The image's own defaults hold for every binary it ships.
    for (name, _) in Dockerfile::load().envs() {
        for binary in all_binaries() {
            let sub = (binary == ALL_IN_ONE).then_some("serve");
            let help = helps.of(&binary, sub);
            ensure!(
                problems,
                takes_variable(&help, &name),
                "deploy/Dockerfile sets ENV {name}, which `{binary} --help` does not list"
            );
        }
    }
    problems.finish("flags and environment variables");
}

/// The variable that sets a server's drain limit (`--drain-seconds` as a flag).
const DRAIN_VARIABLE: &str = "CASELINE_DRAIN_SECONDS";

/// What a server may need between its drain limit and its exit: cutting off the calls
/// still open (at most 1 s), saving the projections' checkpoints (at most 5 s) and
/// exporting the last spans (a few seconds), with room to spare.
const AFTER_DRAIN_SECONDS: u64 = 15;

#[test]
fn the_grace_period_outlasts_each_drain_limit() {
    let mut problems = Problems::default();
    let k8s = Kube::load();
    for deployment in k8s.of_kind("Deployment") {
        // Kubernetes' default when unset.
        let grace = deployment.doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(30);
        for container in k8s.caseline_containers(deployment) {
            check_drain(
                &mut problems,
                &deployment.origin(),
                &kube_command(container),
                k8s.env_value(container, DRAIN_VARIABLE),
                u64::try_from(grace).ok(),
                "terminationGracePeriodSeconds",
            );
        }
    }
    let compose = Compose::load();
    for (name, service) in &compose.services {
        let command = compose_command(service);
        if command_binary(&command).is_err() {
            continue;
        }
        // Compose's default when unset.
        let grace = match str_at(service, &["stop_grace_period"]) {
            None => Some(10),
            Some(text) => duration_seconds(&text),
        };
        check_drain(
            &mut problems,
            &format!("compose service `{name}`"),
            &command,
            compose_env(service).remove(DRAIN_VARIABLE),
            grace,
            "stop_grace_period",
        );
    }
    problems.finish("deploy/: grace periods and drain limits");
}

// ---------------------------------------------------------------------------------------
// What the tests share
// ---------------------------------------------------------------------------------------

/// Every problem one test finds, reported together.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, problem: String) {
        self.0.push(problem);
    }

    fn finish(mut self, what: &str) {
        // A problem shared by several containers is found once per container.
        let mut seen = BTreeSet::new();
        self.0.retain(|p| seen.insert(p.clone()));
        assert!(
            self.0.is_empty(),
            "{what}: {} problem(s):\n  - {}",
            self.0.len(),
            self.0.join("\n  - ")
        );
    }
}

/// A value for a message: quoted, or `nothing`.
fn shown(value: Option<impl std::fmt::Display>) -> String {
    value.map_or_else(|| "nothing".into(), |v| format!("`{v}`"))
}

fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

fn deploy_dir() -> PathBuf {
    workspace_dir().join("deploy")
}

/// `path` relative to the workspace, for messages.
fn rel(path: &Path) -> String {
    path.strip_prefix(workspace_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", rel(path)))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Every `.yaml` / `.yml` file under `dir`, recursively, in a stable order.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", rel(&dir)));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The documents of a YAML file, merge keys resolved.
fn yaml_docs(path: &Path) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", rel(path)))
        .into_iter()
        .map(merge_keys)
        .collect()
}

/// Resolves YAML merge keys (`<<: *anchor`), which compose files use and the parser leaves
/// as ordinary keys: a mapping's own keys win over merged ones, earlier merged mappings
/// over later ones.
fn merge_keys(node: Yaml) -> Yaml {
    match node {
        Yaml::Array(items) => Yaml::Array(items.into_iter().map(merge_keys).collect()),
        Yaml::Hash(map) => {
            let merge = Yaml::String("<<".into());
            let mut own = Hash::new();
            let mut merged = Vec::new();
            for (key, value) in map {
                if key == merge {
                    match merge_keys(value) {
                        Yaml::Array(sources) => merged.extend(sources),
                        source => merged.push(source),
                    }
                } else {
                    own.insert(key, merge_keys(value));
                }
            }
            for source in merged {
                let Yaml::Hash(source) = source else {
                    panic!("a YAML merge key (<<) must name a mapping");
                };
                for (key, value) in source {
                    if !own.contains_key(&key) {
                        own.insert(key, value);
                    }
                }
            }
            Yaml::Hash(own)
        }
        other => other,
    }
}

fn scalar(node: &Yaml) -> Option<String> {
    match node {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn str_at(node: &Yaml, path: &[&str]) -> Option<String> {
    scalar(path.iter().fold(node, |node, key| &node[*key]))
}

/// The items of a sequence; nothing for anything else.
fn list(node: &Yaml) -> Vec<&Yaml> {
    node.as_vec()
        .map(|v| v.iter().collect())
        .unwrap_or_default()
}

fn hash_entries(node: &Yaml) -> Vec<(String, &Yaml)> {
    node.as_hash()
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| Some((scalar(k)?, v)))
                .collect()
        })
        .unwrap_or_default()
}

fn keys(node: &Yaml) -> BTreeSet<String> {
    hash_entries(node).into_iter().map(|(k, _)| k).collect()
}

/// Names given either as a sequence of names or as the keys of a mapping (compose's
/// `networks`, `depends_on`; a pipeline's `exporters`).
fn names_in(node: &Yaml) -> BTreeSet<String> {
    match node {
        Yaml::Hash(_) => keys(node),
        _ => list(node).into_iter().filter_map(scalar).collect(),
    }
}

fn labels(node: &Yaml) -> BTreeMap<String, String> {
    hash_entries(node)
        .into_iter()
        .filter_map(|(k, v)| Some((k, scalar(v)?)))
        .collect()
}

fn is_subset(small: &BTreeMap<String, String>, big: &BTreeMap<String, String>) -> bool {
    small.iter().all(|(k, v)| big.get(k) == Some(v))
}

/// The port of `HOST:PORT` (or `[::]:PORT`).
fn port_of_addr(addr: &str) -> Option<u16> {
    addr.rsplit(':').next()?.parse().ok()
}

/// The hosts and ports of a URL's authority (`scheme://user:pass@h1:1,h2:2/path?q`), or of
/// a bare `host:port`.
fn url_hosts(url: &str) -> Vec<(String, Option<u16>)> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let hosts = authority
        .rsplit_once('@')
        .map_or(authority, |(_, hosts)| hosts);
    hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| match h.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), port.parse().ok()),
            None => (h.to_string(), None),
        })
        .collect()
}

fn all_binaries() -> Vec<String> {
    std::iter::once(ALL_IN_ONE)
        .chain(SERVICES.iter().map(|(b, _)| *b))
        .map(String::from)
        .collect()
}

/// The binary a command runs: one of the five services, or the all-in-one's `serve`.
fn command_binary(command: &[String]) -> Result<String, String> {
    let Some(first) = command.first() else {
        return Err("names no command: each deployment must name its binary".into());
    };
    let binary = first.rsplit('/').next().unwrap_or(first);
    if SERVICES.iter().any(|(b, _)| *b == binary) {
        return Ok(binary.to_string());
    }
    if binary == ALL_IN_ONE {
        return match command.get(1).map(String::as_str) {
            Some("serve") => Ok(binary.to_string()),
            other => Err(format!(
                "runs `caseline {}`; only `caseline serve` serves",
                other.unwrap_or_default()
            )),
        };
    }
    Err(format!(
        "runs `{first}`, which is none of the Caseline binaries"
    ))
}

/// Each of the five service binaries runs in exactly one place.
fn check_each_service_runs_once(
    problems: &mut Problems,
    runs: &BTreeMap<String, Vec<String>>,
    place: &str,
) {
    for (binary, _) in SERVICES {
        let places = runs.get(binary).cloned().unwrap_or_default();
        match places.len() {
            0 => problems.add(format!("{place} never runs `{binary}`")),
            1 => {}
            _ => problems.add(format!(
                "{place} runs `{binary}` more than once: {}",
                places.join(", ")
            )),
        }
    }
}

/// The port a Caseline container listens on, if it listens on all interfaces (anything
/// else is unreachable from outside the container): `--listen` wins over
/// `CASELINE_LISTEN`, as with clap.
fn listen_port(command: &[String], env: &BTreeMap<String, String>) -> Option<u16> {
    let flag = command.iter().enumerate().find_map(|(i, word)| {
        if let Some(value) = word.strip_prefix("--listen=") {
            Some(value.to_string())
        } else if word == "--listen" {
            command.get(i + 1).cloned()
        } else {
            None
        }
    });
    let addr = flag.or_else(|| env.get("CASELINE_LISTEN").cloned())?;
    let (host, _) = addr.rsplit_once(':')?;
    ["0.0.0.0", "[::]"]
        .contains(&host)
        .then(|| port_of_addr(&addr))
        .flatten()
}

/// The value of `--flag VALUE` or `--flag=VALUE` in a command.
fn flag_value(command: &[String], flag: &str) -> Option<String> {
    command
        .iter()
        .enumerate()
        .find_map(|(i, word)| match word.strip_prefix(flag) {
            Some(rest) if rest.starts_with('=') => Some(rest[1..].to_string()),
            Some("") => command.get(i + 1).cloned(),
            _ => None,
        })
}

/// A server's drain limit is given in the deployment itself (so that a configuration
/// file cannot change it unseen: the flag and the variable win over the file), is one the
/// binary accepts, and ends [`AFTER_DRAIN_SECONDS`] before the orchestrator's SIGKILL.
fn check_drain(
    problems: &mut Problems,
    origin: &str,
    command: &[String],
    variable: Option<String>,
    grace: Option<u64>,
    grace_name: &str,
) {
    let Some(given) = flag_value(command, "--drain-seconds").or(variable) else {
        problems.add(format!(
            "{origin} must name its drain limit ({DRAIN_VARIABLE} or --drain-seconds)"
        ));
        return;
    };
    let Ok(drain) = given.parse::<u64>() else {
        problems.add(format!(
            "{origin}'s drain limit `{given}` is not a whole number of seconds"
        ));
        return;
    };
    let max = caseline_server::MAX_DRAIN.as_secs();
    ensure!(
        problems,
        drain <= max,
        "{origin}'s drain limit, {drain} s, is above the most a server accepts ({max} s)"
    );
    match grace {
        None => problems.add(format!(
            "{origin}'s {grace_name} is not a duration such as 30s or 1m30s"
        )),
        Some(grace) => ensure!(
            problems,
            grace >= drain + AFTER_DRAIN_SECONDS,
            "{origin} has {grace} s from SIGTERM to SIGKILL ({grace_name}): its drain limit is \
             {drain} s, and the stop needs up to {AFTER_DRAIN_SECONDS} s after that"
        ),
    }
}

/// Whole seconds of a compose duration (`30s`, `1m30s`, `2m`, `1h`, `500ms`).
fn duration_seconds(text: &str) -> Option<u64> {
    let mut millis: u64 = 0;
    let mut rest = text.trim();
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "h" => 3_600_000,
            "m" => 60_000,
            "s" => 1_000,
            "ms" => 1,
            _ => return None,
        };
        millis = millis.checked_add(number.checked_mul(scale)?)?;
        rest = &rest[unit..];
    }
    Some(millis / 1_000)
}

#[test]
fn compose_durations_are_read() {
    assert_eq!(duration_seconds("30s"), Some(30));
    assert_eq!(duration_seconds("1m30s"), Some(90));
    assert_eq!(duration_seconds("2m"), Some(120));
    assert_eq!(duration_seconds("1500ms"), Some(1));
    assert_eq!(duration_seconds("30"), None);
    assert_eq!(duration_seconds("thirty"), None);
}

/// Every event log URL the deployments give a server, with where it is given.
fn deployed_event_logs() -> Vec<(String, String)> {
    let mut logs = Vec::new();
    let compose = Compose::load();
    for (name, service) in &compose.services {
        if let Some(url) = compose_env(service).get("CASELINE_EVENT_LOG") {
            logs.push((format!("compose service `{name}`"), url.clone()));
        }
    }
    for secret in Kube::load().of_kind("Secret") {
        for (key, value) in hash_entries(&secret.doc["stringData"]) {
            if key == "CASELINE_EVENT_LOG" {
                logs.push((secret.origin(), scalar(value).unwrap_or_default()));
            }
        }
    }
    logs
}

// ----- The Dockerfile --------------------------------------------------------------------

struct Dockerfile {
    /// Logical instructions: continuation lines joined, comments left out.
    instructions: Vec<String>,
    /// The image it builds, from its header's `docker build … -t IMAGE`.
    image: Option<String>,
}

impl Dockerfile {
    fn load() -> Self {
        let text = read(&deploy_dir().join("Dockerfile"));
        let image = text
            .lines()
            .filter(|l| l.contains("docker build"))
            .find_map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words
                    .windows(2)
                    .find(|w| w[0] == "-t" || w[0] == "--tag")
                    .map(|w| w[1].to_string())
            });
        let mut instructions = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
                continue;
            }
            match line.strip_suffix('\\') {
                Some(part) => {
                    current.push_str(part);
                    current.push(' ');
                }
                None => {
                    current.push_str(line);
                    instructions.push(std::mem::take(&mut current));
                }
            }
        }
        Self {
            instructions,
            image,
        }
    }

    fn image(&self) -> String {
        self.image.clone().expect(
            "deploy/Dockerfile's header names the image it builds (`docker build … -t IMAGE`)",
        )
    }

    fn with(&self, keyword: &str) -> impl Iterator<Item = &str> {
        let prefix = format!("{keyword} ");
        self.instructions
            .iter()
            .filter_map(move |i| i.strip_prefix(&prefix))
            .map(str::trim)
    }

    fn has(&self, keyword: &str) -> bool {
        self.with(keyword).next().is_some()
    }

    fn last(&self, keyword: &str) -> Option<String> {
        self.with(keyword).last().map(String::from)
    }

    /// The `RUN` with `cargo build`, its `ARG` defaults substituted.
    fn cargo_build(&self) -> Option<String> {
        let args: Vec<(String, String)> = self
            .with("ARG")
            .filter_map(|a| a.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
            .collect();
        self.with("RUN")
            .find(|r| r.contains("cargo build"))
            .map(|run| {
                args.iter().fold(run.to_string(), |run, (name, value)| {
                    run.replace(&format!("${{{name}}}"), value)
                        .replace(&format!("${name}"), value)
                })
            })
    }

    /// The names of the files copied from another stage into /usr/local/bin.
    fn shipped_binaries(&self) -> BTreeSet<String> {
        let mut shipped = BTreeSet::new();
        for copy in self.with("COPY") {
            let words: Vec<&str> = copy
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            if !copy.contains("--from=") || words.len() < 2 {
                continue;
            }
            let (dest, sources) = words.split_last().expect("two words or more");
            let base = |p: &str| {
                p.trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            };
            if dest.starts_with("/usr/local/bin") {
                if dest.ends_with('/') || *dest == "/usr/local/bin" {
                    shipped.extend(sources.iter().map(|s| base(s)));
                } else {
                    shipped.insert(base(dest));
                }
            }
        }
        shipped
    }

    /// `ENV NAME=value …` pairs.
    fn envs(&self) -> Vec<(String, String)> {
        self.with("ENV")
            .flat_map(|e| e.split_whitespace())
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect()
    }

    fn env(&self, name: &str) -> Option<String> {
        self.envs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    fn exposed(&self) -> BTreeSet<u16> {
        self.with("EXPOSE")
            .flat_map(|e| e.split_whitespace())
            .filter_map(|p| p.split('/').next()?.parse().ok())
            .collect()
    }
}

// ----- The workspace's packages ------------------------------------------------------------

struct Member {
    dir: PathBuf,
    bins: BTreeSet<String>,
    features: BTreeSet<String>,
}

impl Member {
    fn has_binary(&self, binary: &str) -> bool {
        self.bins.contains(binary)
    }
}

struct Workspace {
    packages: BTreeMap<String, Member>,
}

impl Workspace {
    fn load() -> Self {
        let root = workspace_dir();
        let manifest = |dir: &Path| -> toml::Table {
            let path = dir.join("Cargo.toml");
            read(&path)
                .parse()
                .unwrap_or_else(|e| panic!("{} is not valid TOML: {e}", rel(&path)))
        };
        let members = manifest(&root)
            .get("workspace")
            .and_then(|w| w.get("members"))
            .and_then(|m| m.as_array())
            .cloned()
            .unwrap_or_default();
        let mut packages = BTreeMap::new();
        for member in members.iter().filter_map(|m| m.as_str()) {
            let dir = root.join(member);
            let table = manifest(&dir);
            let Some(name) = table
                .get("package")
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
            else {
                continue;
            };
            let mut bins: BTreeSet<String> = table
                .get("bin")
                .and_then(|b| b.as_array())
                .map(|bins| {
                    bins.iter()
                        .filter_map(|b| b.get("name")?.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if dir.join("src/main.rs").is_file() {
                bins.insert(name.to_string());
            }
            let features = table
                .get("features")
                .and_then(|f| f.as_table())
                .map(|f| f.keys().cloned().collect())
                .unwrap_or_default();
            packages.insert(
                name.to_string(),
                Member {
                    dir,
                    bins,
                    features,
                },
            );
        }
        assert!(
            packages.values().all(|m| m.dir.is_dir()),
            "every workspace member is a directory"
        );
        Self { packages }
    }
}

// ----- Compose -------------------------------------------------------------------------

struct Compose {
    doc: Yaml,
    services: BTreeMap<String, Yaml>,
}

impl Compose {
    fn load() -> Self {
        let doc = yaml_docs(&deploy_dir().join("compose.yaml"))
            .into_iter()
            .next()
            .expect("deploy/compose.yaml holds a document");
        let services = hash_entries(&doc["services"])
            .into_iter()
            .map(|(name, service)| (name, service.clone()))
            .collect::<BTreeMap<_, _>>();
        assert!(
            !services.is_empty(),
            "deploy/compose.yaml defines no services"
        );
        Self { doc, services }
    }

    /// The collector configuration a service mounts at the path its `--config` names.
    fn collector_config(&self, collector: &Yaml) -> Result<Yaml, String> {
        let command = compose_command(collector);
        let path = command
            .iter()
            .find_map(|w| w.strip_prefix("--config=").map(String::from))
            .ok_or("its command names no --config=PATH")?;
        let source = list(&collector["configs"])
            .into_iter()
            .find(|c| str_at(c, &["target"]).as_deref() == Some(path.as_str()))
            .and_then(|c| str_at(c, &["source"]))
            .ok_or_else(|| format!("no config is mounted at {path}"))?;
        let file = str_at(&self.doc, &["configs", source.as_str(), "file"])
            .ok_or_else(|| format!("config `{source}` names no file"))?;
        yaml_docs(&deploy_dir().join(&file))
            .into_iter()
            .next()
            .ok_or_else(|| format!("{file} is empty"))
    }
}

/// A compose service's command as words (a string is split on whitespace, as compose does
/// for the simple cases used here).
fn compose_command(service: &Yaml) -> Vec<String> {
    match &service["command"] {
        Yaml::String(s) => s.split_whitespace().map(String::from).collect(),
        other => list(other).into_iter().filter_map(scalar).collect(),
    }
}

/// A compose service's environment, given as a mapping or as `NAME=value` items.
fn compose_env(service: &Yaml) -> BTreeMap<String, String> {
    match &service["environment"] {
        Yaml::Hash(_) => hash_entries(&service["environment"])
            .into_iter()
            .map(|(k, v)| (k, scalar(v).unwrap_or_default()))
            .collect(),
        other => list(other)
            .into_iter()
            .filter_map(scalar)
            .map(|item| match item.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (item, String::new()),
            })
            .collect(),
    }
}

/// A compose service's published ports as (host port, container port).
fn compose_ports(service: &Yaml) -> Result<Vec<(Option<u16>, u16)>, String> {
    let mut ports = Vec::new();
    for entry in list(&service["ports"]) {
        if let Yaml::Hash(_) = entry {
            let target = entry["target"].as_i64().and_then(|p| u16::try_from(p).ok());
            let published = str_at(entry, &["published"]).and_then(|p| p.parse().ok());
            ports.push((published, target.ok_or("a port entry has no target")?));
            continue;
        }
        let text = scalar(entry).ok_or("a port entry is neither text nor a mapping")?;
        let text = text.split('/').next().unwrap_or_default();
        let parts: Vec<&str> = text.rsplitn(3, ':').collect();
        let parse = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("port `{text}`: `{p}` is not one port number"))
        };
        let container = parse(parts[0])?;
        let host = parts.get(1).map(|p| parse(p)).transpose()?;
        ports.push((host, container));
    }
    Ok(ports)
}

// ----- Kubernetes ------------------------------------------------------------------------

struct Object {
    file: PathBuf,
    doc: Yaml,
}

impl Object {
    fn kind(&self) -> String {
        str_at(&self.doc, &["kind"]).unwrap_or_default()
    }

    fn name(&self) -> String {
        str_at(&self.doc, &["metadata", "name"]).unwrap_or_default()
    }

    fn origin(&self) -> String {
        format!("{} {} `{}`", rel(&self.file), self.kind(), self.name())
    }
}

struct Kube {
    objects: Vec<Object>,
}

impl Kube {
    fn load() -> Self {
        let objects: Vec<Object> = yaml_files(&deploy_dir().join("k8s"))
            .into_iter()
            .filter(|f| !f.ends_with("kustomization.yaml"))
            .flat_map(|file| {
                yaml_docs(&file)
                    .into_iter()
                    .filter(|d| !d.is_null())
                    .map(move |doc| Object {
                        file: file.clone(),
                        doc,
                    })
            })
            .collect();
        assert!(
            !objects.is_empty(),
            "no Kubernetes objects under deploy/k8s"
        );
        Self { objects }
    }

    fn of_kind(&self, kind: &str) -> Vec<&Object> {
        self.objects.iter().filter(|o| o.kind() == kind).collect()
    }

    /// The containers of a Deployment that run a Caseline binary.
    fn caseline_containers<'a>(&self, deployment: &'a Object) -> Vec<&'a Yaml> {
        list(&deployment.doc["spec"]["template"]["spec"]["containers"])
            .into_iter()
            .filter(|c| command_binary(&kube_command(c)).is_ok())
            .collect()
    }

    /// Objects of `kind` in the Deployment's namespace whose selector picks its pods.
    fn selecting(&self, deployment: &Object, kind: &str) -> Vec<&Object> {
        let pods = labels(&deployment.doc["spec"]["template"]["metadata"]["labels"]);
        let namespace = str_at(&deployment.doc, &["metadata", "namespace"]);
        self.of_kind(kind)
            .into_iter()
            .filter(|o| str_at(&o.doc, &["metadata", "namespace"]) == namespace)
            .filter(|o| {
                let selector = match kind {
                    "Service" => labels(&o.doc["spec"]["selector"]),
                    _ => labels(&o.doc["spec"]["selector"]["matchLabels"]),
                };
                !selector.is_empty() && is_subset(&selector, &pods)
            })
            .collect()
    }

    /// The keys a ConfigMap or Secret of that name holds, if deploy/k8s defines it.
    fn data_keys(&self, kind: &str, name: &str) -> Option<BTreeSet<String>> {
        let object = self.of_kind(kind).into_iter().find(|o| o.name() == name)?;
        Some(
            ["data", "stringData", "binaryData"]
                .iter()
                .flat_map(|k| keys(&object.doc[*k]))
                .collect(),
        )
    }

    /// The value a container's variable `name` gets from deploy/k8s: a literal `value`,
    /// or a ConfigMap's key (`valueFrom.configMapKeyRef`, or `envFrom` a ConfigMap).
    fn env_value(&self, container: &Yaml, name: &str) -> Option<String> {
        let config_map = |map: &str, key: &str| {
            let object = self
                .of_kind("ConfigMap")
                .into_iter()
                .find(|o| o.name() == map)?;
            str_at(&object.doc, &["data", key])
        };
        if let Some(var) = list(&container["env"])
            .into_iter()
            .find(|v| str_at(v, &["name"]).as_deref() == Some(name))
        {
            if let Some(value) = str_at(var, &["value"]) {
                return Some(value);
            }
            let source = &var["valueFrom"]["configMapKeyRef"];
            return config_map(&str_at(source, &["name"])?, &str_at(source, &["key"])?);
        }
        list(&container["envFrom"]).into_iter().find_map(|from| {
            let prefix = str_at(from, &["prefix"]).unwrap_or_default();
            let key = name.strip_prefix(prefix.as_str())?;
            config_map(&str_at(from, &["configMapRef", "name"])?, key)
        })
    }

    /// The variables with a literal `value` in a container's `env`.
    fn literal_env(&self, container: &Yaml) -> BTreeMap<String, String> {
        list(&container["env"])
            .into_iter()
            .filter_map(|v| Some((str_at(v, &["name"])?, str_at(v, &["value"])?)))
            .collect()
    }

    /// Every variable a container gets: its `env` names and the keys of its `envFrom`
    /// sources.
    fn env_names(&self, container: &Yaml) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = list(&container["env"])
            .into_iter()
            .filter_map(|v| str_at(v, &["name"]))
            .collect();
        for from in list(&container["envFrom"]) {
            let prefix = str_at(from, &["prefix"]).unwrap_or_default();
            for (reference, kind) in [("configMapRef", "ConfigMap"), ("secretRef", "Secret")] {
                if let Some(name) = str_at(from, &[reference, "name"]) {
                    names.extend(
                        self.data_keys(kind, &name)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|k| format!("{prefix}{k}")),
                    );
                }
            }
        }
        names
    }
}

/// A container's `command` followed by its `args`.
fn kube_command(container: &Yaml) -> Vec<String> {
    list(&container["command"])
        .into_iter()
        .chain(list(&container["args"]))
        .filter_map(scalar)
        .collect()
}

// ----- The binaries' --help ----------------------------------------------------------------

/// Each binary's `--help`, whitespace collapsed (clap wraps long lines), asked once.
#[derive(Default)]
struct Helps(BTreeMap<(String, Option<String>), String>);

impl Helps {
    fn of(&mut self, binary: &str, subcommand: Option<&str>) -> String {
        let key = (binary.to_string(), subcommand.map(String::from));
        self.0
            .entry(key)
            .or_insert_with(|| {
                let path = built_binary(binary);
                let mut command = Command::new(&path);
                command.args(subcommand).arg("--help").env_clear();
                let output = command
                    .output()
                    .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
                assert!(
                    output.status.success(),
                    "`{binary} {}--help` failed ({}): {}",
                    subcommand.map(|s| format!("{s} ")).unwrap_or_default(),
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                );
                String::from_utf8_lossy(&output.stdout)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .clone()
    }
}

/// A binary built by `cargo build`, beside this test's executable
/// (`target/<profile>/deps/deploy_manifests-…` → `target/<profile>/<binary>`).
fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable sits in target/<profile>/deps");
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "binary `{name}` not found at {}: run `cargo build --workspace --bins` first (this test asks each binary's --help which flags and variables it takes)",
        path.display()
    );
    path
}

/// Whether `help` lists `flag` as a whole word (`--listen` but not `--listener`).
fn has_flag(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(at, _)| {
        let before = help[..at].chars().next_back();
        let after = help[at + flag.len()..].chars().next();
        before.is_none_or(|c| !c.is_alphanumeric() && c != '-')
            && after.is_none_or(|c| !c.is_alphanumeric() && c != '-' && c != '_')
    })
}

/// Whether the binary takes variable `name`: clap lists it as `[env: NAME=…]`, or the
/// binary reads it from the environment itself.
fn takes_variable(help: &str, name: &str) -> bool {
    READ_FROM_ENVIRONMENT.contains(&name)
        || name.starts_with(OTEL_PREFIX)
        || help.contains(&format!("[env: {name}="))
}
