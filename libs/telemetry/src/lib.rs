//! Tracing and metrics for every Caseline binary: call [`init`] first thing in `main`,
//! and [`Telemetry::shutdown`] before it returns.
//!
//! Logs go to standard error (standard output belongs to the command's own answer, such
//! as `listening on HOST:PORT`). The filter comes from `CASELINE_LOG`, then `RUST_LOG`,
//! in `tracing_subscriber::filter::Targets` syntax (`info`, `caseline_eventlog=debug`),
//! and applies to exported spans as well as to logs.
//!
//! When `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans and [`metrics`] are also exported
//! over OTLP/gRPC (plaintext: a collector or agent next to the process, which can also
//! serve them to Prometheus). The exporters honour the standard `OTEL_EXPORTER_OTLP_*`
//! variables (`…_TRACES_ENDPOINT`, `…_METRICS_ENDPOINT`, `…_HEADERS`, `…_TIMEOUT`) and
//! `OTEL_METRIC_EXPORT_INTERVAL`; `OTEL_SERVICE_NAME` overrides the service name the
//! binary passes, and `OTEL_SDK_DISABLED=true` turns export off. Trace context travels in the W3C
//! `traceparent` format: [`join_trace`] continues a trace received from elsewhere,
//! [`current_traceparent`] names the current span for whoever continues it next.
//!
//! Fields are structured; no personal data is ever a span field, an event field or part
//! of a message, since spans leave the process.
#![forbid(unsafe_code)]

pub mod metrics;
#[cfg(feature = "receiver")]
pub mod receiver;

use std::collections::HashMap;
use std::io::IsTerminal;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter used when neither variable is set.
pub const DEFAULT_FILTER: &str = "info";

/// The W3C header (and event metadata field) carrying trace context.
pub const TRACEPARENT: &str = "traceparent";

/// Why tracing could not be initialised.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("invalid log filter in CASELINE_LOG/RUST_LOG: {0}")]
    Filter(String),
    #[error("OTEL_EXPORTER_OTLP_ENDPOINT is set but init was called outside a tokio runtime")]
    NoRuntime,
    #[error("cannot build the OTLP span exporter: {0}")]
    Exporter(String),
    #[error("tracing already initialised: {0}")]
    AlreadyInitialised(String),
}

/// What [`init`] set up. Keep it for the life of `main` and call [`Telemetry::shutdown`]
/// before returning, so that spans still buffered are exported. Dropping it instead
/// does nothing: the spans in the buffer are lost, nothing blocks.
#[derive(Debug)]
#[must_use = "call shutdown() before main returns, or buffered spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    meters: Option<SdkMeterProvider>,
}

impl Telemetry {
    /// Whether spans and metrics are exported over OTLP.
    pub fn is_exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still buffered and stops the exporter (waiting at most a few
    /// seconds for the collector). Spans that end afterwards are not exported. Blocks
    /// the calling thread while the export runs on the tokio runtime's other threads:
    /// call it from `main` of a multi-threaded runtime (the `#[tokio::main]` default).
    pub fn shutdown(mut self) {
        if let Some(meters) = self.meters.take()
            && let Err(e) = meters.shutdown()
        {
            tracing::warn!(error = %e, "metric export did not shut down cleanly");
        }
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "span export did not shut down cleanly");
        }
    }
}

/// Installs the global subscriber: logs to standard error, and OTLP span and metric
/// export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, with `service.name` =
/// `OTEL_SERVICE_NAME` or else `service_name` (the [`metrics`] go through the global
/// meter provider it installs). Sets the global propagator to W3C trace context.
///
/// Call it once per process, first thing in `main`, inside the tokio runtime when
/// exporting. Fails on an unparsable filter, an unusable exporter configuration, or if
/// a subscriber is already installed.
pub fn init(service_name: &str) -> Result<Telemetry, InitError> {
    let spec = std::env::var("CASELINE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| DEFAULT_FILTER.to_owned());
    let filter: Targets = spec
        .parse()
        .map_err(|e| InitError::Filter(format!("{e}")))?;

    let (provider, meters) = if export_configured() {
        let (provider, meters) = providers(service_name)?;
        (Some(provider), Some(meters))
    } else {
        (None, None)
    };
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("caseline"))
            // Thread names and ids say nothing about a call.
            .with_threads(false)
            .with_filter(exporter_stack_excluded())
    });

    tracing_subscriber::registry()
        .with(otel)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(true),
        )
        .with(filter)
        .try_init()
        .map_err(|e| InitError::AlreadyInitialised(e.to_string()))?;

    // Only W3C trace context: no baggage, which could carry anything a client put in it.
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    if let Some(meters) = &meters {
        opentelemetry::global::set_meter_provider(meters.clone());
    }
    Ok(Telemetry { provider, meters })
}

fn export_configured() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled =
        std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
    set("OTEL_EXPORTER_OTLP_ENDPOINT") && !disabled
}

/// How long one export to the collector may take (the exporter's default is 10 s).
const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

fn providers(service_name: &str) -> Result<(SdkTracerProvider, SdkMeterProvider), InitError> {
    use opentelemetry_otlp::WithExportConfig;
    // tonic's channel spawns its connection tasks here; without a runtime it would panic.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(InitError::NoRuntime);
    }
    // A stop must end within the deployment's grace period even when the collector is
    // unreachable: each export (the last one included) waits at most this long, unless
    // OTEL_EXPORTER_OTLP_TIMEOUT says otherwise.
    let timeout = std::env::var("OTEL_EXPORTER_OTLP_TIMEOUT")
        .ok()
        .and_then(|ms| ms.trim().parse().ok())
        .map_or(EXPORT_TIMEOUT, std::time::Duration::from_millis);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_timeout(timeout)
        .build()
        .map_err(|e| InitError::Exporter(e.to_string()))?;
    let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_timeout(timeout)
        .build()
        .map_err(|e| InitError::Exporter(e.to_string()))?;
    let service_name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| service_name.to_owned());
    // Resource::builder also reads OTEL_RESOURCE_ATTRIBUTES and names the SDK.
    let resource = Resource::builder()
        .with_service_name(service_name)
        .with_attribute(KeyValue::new(
            "service.instance.id",
            uuid::Uuid::new_v4().to_string(),
        ))
        .build();
    // The batch processor and the periodic reader export from threads of their own;
    // the exporters' channels were built on (and keep using) the caller's tokio runtime.
    // The reader exports every OTEL_METRIC_EXPORT_INTERVAL ms (60 s unless set), and
    // keeps at most the SDK's cardinality limit (2 000) of series per instrument.
    let tracer = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.clone())
        .build();
    let meters = SdkMeterProvider::builder()
        .with_periodic_exporter(metric_exporter)
        .with_resource(resource)
        .build();
    Ok((tracer, meters))
}

/// Spans of the crates that carry the export itself: exporting them would make every
/// export produce spans to export (with `CASELINE_LOG=trace`). Targets match by prefix
/// (`hyper` covers `hyper_util`, `opentelemetry` the SDK and exporter).
fn exporter_stack_excluded() -> Targets {
    ["h2", "hyper", "tonic", "tower", "opentelemetry"]
        .into_iter()
        .fold(
            Targets::new().with_default(LevelFilter::TRACE),
            |t, target| t.with_target(target, LevelFilter::OFF),
        )
}

/// Makes the W3C `traceparent` the OpenTelemetry parent of `span`, which then belongs
/// to that trace. An empty or invalid value leaves the span alone, and so does a span
/// already entered (its parent is fixed by then) or a process that does not export.
pub fn join_trace(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.trim().to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        // The errors are the cases documented above; each leaves the span as it was.
        let _ = span.set_parent(parent);
    }
}

/// The W3C `traceparent` of the current span's OpenTelemetry context, when it has a
/// valid one: only while spans are exported, inside a span that is enabled.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current().context())
}

fn traceparent_of(cx: &Context) -> Option<String> {
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    #[test]
    fn a_valid_context_is_written_as_traceparent() {
        let cx = Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
            SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ));
        assert_eq!(
            traceparent_of(&cx).as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
    }

    #[test]
    fn no_context_no_traceparent() {
        assert_eq!(traceparent_of(&Context::new()), None);
        // Without an OpenTelemetry layer there is never one, and joining is harmless.
        let span = tracing::info_span!("probe");
        join_trace(
            &span,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        join_trace(&span, "not a traceparent");
        assert_eq!(span.in_scope(current_traceparent), None);
    }
}
