//! Every measurement Caseline exports, in one place, through the OpenTelemetry metrics
//! API. [`crate::init`] installs the global meter provider when metrics are exported (the
//! same `OTEL_EXPORTER_OTLP_*` configuration as spans, every
//! `OTEL_METRIC_EXPORT_INTERVAL` milliseconds, 60 s unless set); without it the
//! recordings here cost next to nothing.
//!
//! | name | kind, unit | attributes |
//! |---|---|---|
//! | `rpc.server.call.duration` | histogram, s | `rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code` |
//! | `caseline.eventlog.append.duration` | histogram, s | `backend`, `outcome` |
//! | `caseline.eventlog.group_commit.size` | histogram, appends | — |
//! | `caseline.projection.lag` | histogram, s | `projection` |
//! | `caseline.cache.lookups` | counter | `cache`, `result` |
//!
//! Every attribute value comes from a fixed set (a method this server declares, a
//! status code, a backend, a projection's or a cache's name), never from a request or an
//! event: the number of series is bounded, and nothing about a case or a person leaves
//! the process this way.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};

/// Bucket bounds (seconds) for latencies from a cached read to a congested network.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds (seconds) for a projection's lag: from "already applied" to a rebuild.
const LAG_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 3600.0,
];

/// What `rpc.method` and `rpc.service` say of a path the server does not serve, as the
/// OpenTelemetry conventions name it: a client cannot add series by inventing paths.
pub const OTHER_METHOD: &str = "_OTHER";

struct Instruments {
    rpc: Histogram<f64>,
    append: Histogram<f64>,
    group: Histogram<u64>,
    lag: Histogram<f64>,
    cache: Counter<u64>,
}

/// Created at first use, which in a binary comes after [`crate::init`] installed the
/// provider (instruments made before would record nowhere).
fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter("caseline");
        Instruments {
            rpc: meter
                .f64_histogram("rpc.server.call.duration")
                .with_unit("s")
                .with_description("Time to answer a gRPC call, by method and status code")
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            append: meter
                .f64_histogram("caseline.eventlog.append.duration")
                .with_unit("s")
                .with_description(
                    "Time from an append's call to its answer, by backend and outcome",
                )
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            group: meter
                .u64_histogram("caseline.eventlog.group_commit.size")
                .with_unit("{append}")
                .with_description("Appends committed in one transaction by the embedded writer")
                .with_boundaries(vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
                ])
                .build(),
            lag: meter
                .f64_histogram("caseline.projection.lag")
                .with_unit("s")
                .with_description(
                    "Time from an event's append to its projection applying it, by projection",
                )
                .with_boundaries(LAG_BUCKETS.to_vec())
                .build(),
            cache: meter
                .u64_counter("caseline.cache.lookups")
                .with_unit("{lookup}")
                .with_description("Lookups in a bounded cache, by cache and hit or miss")
                .build(),
        }
    })
}

/// One gRPC call answered with `code` after `took`. `path` is `/package.Service/Method`;
/// `served` says whether this server declares it (otherwise it counts as [`OTHER_METHOD`]).
pub fn rpc_answered(path: &str, served: bool, code: i32, took: Duration) {
    let (service, method) = match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((service, method)) if served => (service.to_owned(), method.to_owned()),
        _ => (OTHER_METHOD.to_owned(), OTHER_METHOD.to_owned()),
    };
    instruments().rpc.record(
        took.as_secs_f64(),
        &[
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", service),
            KeyValue::new("rpc.method", method),
            KeyValue::new("rpc.grpc.status_code", i64::from(code)),
        ],
    );
}

/// One append to the event log's `backend` (`sqlite`, `postgres`, `kurrentdb`) answered
/// after `took` with `outcome`: `ok`, `conflict` (the expected version did not hold),
/// `invalid`, `id_conflict` or `error`.
pub fn append_answered(backend: &'static str, outcome: &'static str, took: Duration) {
    instruments().append.record(
        took.as_secs_f64(),
        &[
            KeyValue::new("backend", backend),
            KeyValue::new("outcome", outcome),
        ],
    );
}

/// The embedded writer committed `appends` appends in one transaction.
pub fn group_committed(appends: usize) {
    instruments().group.record(appends as u64, &[]);
}

/// `projection` applied an event appended `lag` ago.
pub fn projection_lag(projection: &'static str, lag: Duration) {
    instruments().lag.record(
        lag.as_secs_f64(),
        &[KeyValue::new("projection", projection)],
    );
}

/// A lookup in the bounded cache `cache` found what it looked for (`hit`) or not.
pub fn cache_lookup(cache: &'static str, hit: bool) {
    instruments().cache.add(
        1,
        &[
            KeyValue::new("cache", cache),
            KeyValue::new("result", if hit { "hit" } else { "miss" }),
        ],
    );
}
