//! `init` against a real OTLP/gRPC receiver. `init` installs process-wide state, so each
//! test runs its probe in a child process: the test re-runs this test binary, filtered
//! to itself, with the environment the probe needs (the probe is the same test function
//! in child mode), and checks what the child printed and what the receiver got.

use std::process::Output;
use std::time::Duration;

use caseline_telemetry::receiver::OtlpReceiver;
use caseline_telemetry::{InitError, current_traceparent, init, join_trace, metrics};

/// Names the test a child process is to run as its probe.
const CHILD: &str = "CASELINE_TELEMETRY_TEST_CHILD";

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// OTLP span kind SERVER.
const SERVER: i32 = 2;

#[test]
fn spans_reach_the_collector_in_the_trace_they_joined() {
    const TEST: &str = "spans_reach_the_collector_in_the_trace_they_joined";
    if is_child(TEST) {
        return runtime().block_on(async {
            let telemetry = init("probe").expect("init");
            assert!(telemetry.is_exporting());
            assert!(matches!(
                init("again"),
                Err(InitError::AlreadyInitialised(_))
            ));
            assert_eq!(current_traceparent(), None, "outside any span");

            let call = tracing::info_span!("probe.call", otel.kind = "server", rpc = "/p.P/Call");
            join_trace(&call, TRACEPARENT);
            let own = call
                .in_scope(current_traceparent)
                .expect("the call span's context");
            call.in_scope(|| {
                tracing::info_span!("probe.inner")
                    .in_scope(|| tracing::info!(answer = 42, "inside"));
            });
            drop(call);
            println!("call traceparent {own}");

            let root = tracing::info_span!("probe.root");
            join_trace(&root, "00-not-a-traceparent-01");
            root.in_scope(|| {});
            drop(root);

            telemetry.shutdown();
        });
    }

    runtime().block_on(async {
        let receiver = OtlpReceiver::start().await;
        let output = run_child(
            TEST,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint())],
        )
        .await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        // libtest's own output shares the line.
        let own = stdout
            .split_once("call traceparent ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("the probe printed no traceparent: {stdout}"))
            .to_owned();

        let names = ["probe.call", "probe.inner", "probe.root"];
        let spans = receiver
            .wait_for(
                |spans| names.iter().all(|n| spans.iter().any(|s| s.name == *n)),
                Duration::from_secs(20),
            )
            .await
            .expect("all three spans exported");
        let find = |name: &str| {
            spans
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no span {name}"))
        };

        // The joined span continues the given trace, under the given parent.
        let call = find("probe.call");
        assert_eq!(call.service_name, "probe");
        assert_eq!(call.trace_id_hex, TRACE_ID);
        assert_eq!(call.parent_span_id_hex, PARENT_SPAN_ID);
        assert_ne!(call.span_id_hex, PARENT_SPAN_ID);
        assert_eq!(call.kind, SERVER);
        assert_eq!(call.attribute("rpc"), Some("/p.P/Call"));
        // current_traceparent named the span that was exported.
        assert_eq!(own, format!("00-{TRACE_ID}-{}-01", call.span_id_hex));

        // Spans inside it are its children; events inside become span events.
        let inner = find("probe.inner");
        assert_eq!(inner.trace_id_hex, TRACE_ID);
        assert_eq!(inner.parent_span_id_hex, call.span_id_hex);
        assert!(
            inner
                .events
                .iter()
                .any(|e| e.attributes.contains(&("answer".into(), "42".into()))),
            "{inner:?}"
        );

        // An invalid traceparent leaves a span in a trace of its own.
        let root = find("probe.root");
        assert_ne!(root.trace_id_hex, TRACE_ID);
        assert_eq!(root.trace_id_hex.len(), 32);
        assert_eq!(root.parent_span_id_hex, "");

        assert!(spans.iter().all(|s| s.service_name == "probe"), "{spans:?}");
    });
}

#[test]
fn metrics_reach_the_collector_with_bounded_attributes() {
    const TEST: &str = "metrics_reach_the_collector_with_bounded_attributes";
    const INVENTED: &str = "/zz.Invented/Path-4f1c9b";
    if is_child(TEST) {
        return runtime().block_on(async {
            let telemetry = init("probe").expect("init");
            let ms = Duration::from_millis;
            metrics::rpc_answered("/caseline.v1.CaseService/GetCase", true, 0, ms(3));
            metrics::rpc_answered("/caseline.v1.CaseService/GetCase", true, 0, ms(4));
            metrics::rpc_answered("/caseline.v1.CaseService/GetCase", true, 5, ms(1));
            // Whatever path a client invents is one series, without its text.
            metrics::rpc_answered(INVENTED, false, 12, ms(1));
            metrics::rpc_answered("/caseline.v1.CaseService/Invented", false, 12, ms(1));
            metrics::append_answered("sqlite", "ok", ms(2));
            metrics::append_answered("sqlite", "conflict", ms(1));
            metrics::group_committed(7);
            metrics::projection_lag("cases.directory", ms(12));
            metrics::cache_lookup("aggregates", true);
            metrics::cache_lookup("aggregates", true);
            metrics::cache_lookup("aggregates", false);
            // The stop exports what was recorded since the last export.
            telemetry.shutdown();
        });
    }

    runtime().block_on(async {
        let receiver = OtlpReceiver::start().await;
        run_child(
            TEST,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint())],
        )
        .await;
        let points = receiver
            .wait_for_points(
                |points| points.iter().any(|p| p.metric == "caseline.cache.lookups"),
                Duration::from_secs(20),
            )
            .await
            .expect("the metrics exported at the stop");
        let find = |metric: &str, attributes: &[(&str, &str)]| {
            points
                .iter()
                .filter(|p| {
                    p.metric == metric && attributes.iter().all(|(k, v)| p.attribute(k) == Some(*v))
                })
                .collect::<Vec<_>>()
        };
        let one = |metric: &str, attributes: &[(&str, &str)]| {
            let found = find(metric, attributes);
            assert_eq!(found.len(), 1, "{metric} {attributes:?} in {points:?}");
            found[0].clone()
        };

        let ok = one(
            "rpc.server.call.duration",
            &[
                ("rpc.system", "grpc"),
                ("rpc.service", "caseline.v1.CaseService"),
                ("rpc.method", "GetCase"),
                ("rpc.grpc.status_code", "0"),
            ],
        );
        assert_eq!(ok.count, Some(2));
        assert_eq!(ok.unit, "s");
        assert!((ok.value - 0.007).abs() < 1e-9, "{ok:?}");
        assert_eq!(ok.service_name, "probe");
        let not_found = one(
            "rpc.server.call.duration",
            &[("rpc.method", "GetCase"), ("rpc.grpc.status_code", "5")],
        );
        assert_eq!(not_found.count, Some(1));
        let other = one(
            "rpc.server.call.duration",
            &[
                ("rpc.service", "_OTHER"),
                ("rpc.method", "_OTHER"),
                ("rpc.grpc.status_code", "12"),
            ],
        );
        assert_eq!(other.count, Some(2));
        assert!(
            points
                .iter()
                .flat_map(|p| p.texts())
                .all(|t| !t.contains("Invented")),
            "an invented path reached the collector: {points:?}"
        );

        let appended = one(
            "caseline.eventlog.append.duration",
            &[("backend", "sqlite"), ("outcome", "ok")],
        );
        assert_eq!(appended.count, Some(1));
        one(
            "caseline.eventlog.append.duration",
            &[("backend", "sqlite"), ("outcome", "conflict")],
        );
        let group = one("caseline.eventlog.group_commit.size", &[]);
        assert_eq!((group.count, group.value), (Some(1), 7.0));
        let lag = one(
            "caseline.projection.lag",
            &[("projection", "cases.directory")],
        );
        assert!((lag.value - 0.012).abs() < 1e-9, "{lag:?}");
        let hits = one(
            "caseline.cache.lookups",
            &[("cache", "aggregates"), ("result", "hit")],
        );
        let misses = one(
            "caseline.cache.lookups",
            &[("cache", "aggregates"), ("result", "miss")],
        );
        assert_eq!((hits.value, misses.value), (2.0, 1.0));
    });
}

#[test]
fn otel_service_name_overrides_the_binarys_name() {
    const TEST: &str = "otel_service_name_overrides_the_binarys_name";
    if is_child(TEST) {
        return runtime().block_on(async {
            let telemetry = init("probe").expect("init");
            tracing::info_span!("probe.named").in_scope(|| {});
            telemetry.shutdown();
        });
    }

    runtime().block_on(async {
        let receiver = OtlpReceiver::start().await;
        run_child(
            TEST,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
                ("OTEL_SERVICE_NAME", "renamed"),
            ],
        )
        .await;
        let spans = receiver
            .wait_for(|s| !s.is_empty(), Duration::from_secs(20))
            .await
            .expect("a span exported");
        assert_eq!(spans[0].name, "probe.named");
        assert_eq!(spans[0].service_name, "renamed");
    });
}

#[test]
fn without_an_endpoint_nothing_is_exported_and_no_trace_is_joined() {
    const TEST: &str = "without_an_endpoint_nothing_is_exported_and_no_trace_is_joined";
    if is_child(TEST) {
        // No runtime needed when not exporting.
        let telemetry = init("probe").expect("init");
        assert!(!telemetry.is_exporting());
        let span = tracing::info_span!("probe.call");
        join_trace(&span, TRACEPARENT);
        assert_eq!(span.in_scope(current_traceparent), None);
        telemetry.shutdown();
        return;
    }

    runtime().block_on(async {
        run_child(TEST, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "")]).await;
    });
}

#[test]
fn exporting_needs_a_tokio_runtime() {
    const TEST: &str = "exporting_needs_a_tokio_runtime";
    if is_child(TEST) {
        let result = init("probe");
        assert!(matches!(result, Err(InitError::NoRuntime)), "{result:?}");
        return;
    }

    runtime().block_on(async {
        // Nothing listens there; the child fails before it would connect.
        run_child(
            TEST,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")],
        )
        .await;
    });
}

fn is_child(test: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|t| t == test)
}

fn runtime() -> tokio::runtime::Runtime {
    // Multi-threaded: Telemetry::shutdown blocks its thread while the export runs on
    // the others.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `test` in a child process with `env` (and no other OpenTelemetry settings), and
/// asserts that it passed.
async fn run_child(test: &str, env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = tokio::process::Command::new(exe);
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, test)
        .env("CASELINE_LOG", "info")
        .env_remove("RUST_LOG");
    for (name, _) in std::env::vars() {
        if name.starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().await.expect("run the probe");
    assert!(
        output.status.success(),
        "the probe failed\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // A filter that matched nothing would also succeed.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("1 passed"),
        "the probe did not run: {stdout}"
    );
    output
}
