//! An OTLP/gRPC receiver for tests: a real collector endpoint on `127.0.0.1:0` that
//! keeps every span and metric data point exported to it, flattened into
//! [`ReceivedSpan`]s and [`ReceivedPoint`]s. Point a process's
//! `OTEL_EXPORTER_OTLP_ENDPOINT` at [`OtlpReceiver::endpoint`], then wait for the spans
//! with [`OtlpReceiver::wait_for`] or the points with [`OtlpReceiver::wait_for_points`].
//!
//! Test support: it panics when it cannot listen.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

/// One span as the receiver got it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedSpan {
    /// The resource's `service.name` (empty when the exporter sent none).
    pub service_name: String,
    pub name: String,
    /// OTLP span kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: i32,
    /// 32 lowercase hex digits.
    pub trace_id_hex: String,
    /// 16 lowercase hex digits.
    pub span_id_hex: String,
    /// 16 lowercase hex digits, or empty for a root span.
    pub parent_span_id_hex: String,
    /// The span's attributes, values rendered as text.
    pub attributes: Vec<(String, String)>,
    /// The span's events (a `tracing` event inside the span becomes one).
    pub events: Vec<ReceivedEvent>,
    /// The status message (empty unless the span ended in error).
    pub status_message: String,
}

impl ReceivedSpan {
    /// The value of attribute `key`, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        attribute(&self.attributes, key)
    }

    /// Every text the span carries outside its ids: name, attribute keys and values,
    /// event names, event attributes, status message. For checks that no personal data
    /// left the process.
    pub fn texts(&self) -> Vec<&str> {
        let mut texts = vec![self.name.as_str(), self.status_message.as_str()];
        texts.extend(keys_and_values(&self.attributes));
        for event in &self.events {
            texts.extend(keys_and_values(&event.attributes));
        }
        texts.extend(self.events.iter().map(|e| e.name.as_str()));
        texts
    }
}

/// An event recorded on a span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedEvent {
    pub name: String,
    pub attributes: Vec<(String, String)>,
}

/// One data point of an exported metric, as the receiver got it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedPoint {
    /// The resource's `service.name` (empty when the exporter sent none).
    pub service_name: String,
    /// The metric's name.
    pub metric: String,
    pub unit: String,
    /// The point's attributes, values rendered as text.
    pub attributes: Vec<(String, String)>,
    /// A histogram's count of measurements; `None` for a sum or a gauge.
    pub count: Option<u64>,
    /// A sum's or a gauge's value, a histogram's sum (0 when it sent none).
    pub value: f64,
}

impl ReceivedPoint {
    /// The value of attribute `key`, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        attribute(&self.attributes, key)
    }

    /// Every text the point carries: metric name, unit, attribute keys and values. For
    /// checks that no personal data left the process.
    pub fn texts(&self) -> Vec<&str> {
        let mut texts = vec![self.metric.as_str(), self.unit.as_str()];
        texts.extend(keys_and_values(&self.attributes));
        texts
    }
}

/// [`OtlpReceiver::wait_for_points`] ran out of time; holds what had arrived.
#[derive(Debug)]
pub struct PointsTimedOut {
    pub points: Vec<ReceivedPoint>,
}

impl fmt::Display for PointsTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Each export repeats the series: name each once.
        let series: std::collections::BTreeSet<String> = self
            .points
            .iter()
            .map(|p| format!("{}/{} {:?}", p.service_name, p.metric, p.attributes))
            .collect();
        write!(
            f,
            "timed out waiting for metric points; received {} points of {} series:",
            self.points.len(),
            series.len()
        )?;
        for s in series {
            write!(f, " {s};")?;
        }
        Ok(())
    }
}

impl std::error::Error for PointsTimedOut {}

/// [`OtlpReceiver::wait_for`] ran out of time; holds what had arrived.
#[derive(Debug)]
pub struct WaitTimedOut {
    pub spans: Vec<ReceivedSpan>,
}

impl fmt::Display for WaitTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out waiting for spans; received {}:",
            self.spans.len()
        )?;
        for s in &self.spans {
            write!(
                f,
                " {}/{} trace {} span {} parent {:?};",
                s.service_name, s.name, s.trace_id_hex, s.span_id_hex, s.parent_span_id_hex
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for WaitTimedOut {}

/// A running receiver; it stops when dropped.
#[derive(Debug)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    store: Arc<Store>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Store {
    spans: Mutex<Vec<ReceivedSpan>>,
    points: Mutex<Vec<ReceivedPoint>>,
    arrived: Notify,
}

impl OtlpReceiver {
    /// Listens on `127.0.0.1:0` and serves the OTLP trace and metrics services on the
    /// current tokio runtime.
    ///
    /// # Panics
    /// When it cannot bind a port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("otlp receiver cannot listen on 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("otlp receiver has no local address: {e}"));
        let store = Arc::new(Store::default());
        let traces = TraceServiceServer::new(Collector(store.clone()));
        let metrics = MetricsServiceServer::new(Collector(store.clone()));
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let server = tokio::spawn(async move {
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(traces)
                .add_service(metrics)
                .serve_with_incoming(incoming)
                .await
            {
                eprintln!("otlp receiver stopped: {e}");
            }
        });
        Self {
            addr,
            store,
            server,
        }
    }

    /// The value for `OTEL_EXPORTER_OTLP_ENDPOINT`: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        snapshot(&self.store.spans)
    }

    /// Every metric data point received so far, in arrival order (a cumulative metric
    /// sends its points again at every export).
    pub fn points(&self) -> Vec<ReceivedPoint> {
        snapshot(&self.store.points)
    }

    /// Waits until `predicate` holds for the spans received so far, and returns them;
    /// after `timeout`, returns what had arrived as the error.
    pub async fn wait_for(
        &self,
        predicate: impl FnMut(&[ReceivedSpan]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<ReceivedSpan>, WaitTimedOut> {
        self.wait(&self.store.spans, predicate, timeout)
            .await
            .map_err(|spans| WaitTimedOut { spans })
    }

    /// Waits until `predicate` holds for the metric points received so far, and returns
    /// them; after `timeout`, returns what had arrived as the error.
    pub async fn wait_for_points(
        &self,
        predicate: impl FnMut(&[ReceivedPoint]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<ReceivedPoint>, PointsTimedOut> {
        self.wait(&self.store.points, predicate, timeout)
            .await
            .map_err(|points| PointsTimedOut { points })
    }

    async fn wait<T: Clone>(
        &self,
        received: &Mutex<Vec<T>>,
        mut predicate: impl FnMut(&[T]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<T>, Vec<T>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before looking, so an export landing in between still wakes us.
            let arrived = self.store.arrived.notified();
            let now = snapshot(received);
            if predicate(&now) {
                return Ok(now);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(snapshot(received));
            }
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn snapshot<T: Clone>(received: &Mutex<Vec<T>>) -> Vec<T> {
    received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

impl Store {
    fn add<T>(&self, to: &Mutex<Vec<T>>, received: Vec<T>) {
        to.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(received);
        self.arrived.notify_waiters();
    }
}

fn service_name(resource: Option<&Resource>) -> String {
    resource
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .map(|kv| text(kv.value.as_ref()))
        .unwrap_or_default()
}

struct Collector(Arc<Store>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service_name = service_name(resource_spans.resource.as_ref());
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                received.push(ReceivedSpan {
                    service_name: service_name.clone(),
                    name: span.name,
                    kind: span.kind,
                    trace_id_hex: hex(&span.trace_id),
                    span_id_hex: hex(&span.span_id),
                    parent_span_id_hex: hex(&span.parent_span_id),
                    attributes: pairs(&span.attributes),
                    events: span
                        .events
                        .into_iter()
                        .map(|e| ReceivedEvent {
                            attributes: pairs(&e.attributes),
                            name: e.name,
                        })
                        .collect(),
                    status_message: span.status.map(|s| s.message).unwrap_or_default(),
                });
            }
        }
        self.0.add(&self.0.spans, received);
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let mut received = Vec::new();
        for resource_metrics in request.into_inner().resource_metrics {
            let service_name = service_name(resource_metrics.resource.as_ref());
            for metric in resource_metrics
                .scope_metrics
                .into_iter()
                .flat_map(|s| s.metrics)
            {
                let point = |attributes: &[KeyValue], count, value| ReceivedPoint {
                    service_name: service_name.clone(),
                    metric: metric.name.clone(),
                    unit: metric.unit.clone(),
                    attributes: pairs(attributes),
                    count,
                    value,
                };
                let number = |v: Option<number_data_point::Value>| match v {
                    Some(number_data_point::Value::AsDouble(d)) => d,
                    Some(number_data_point::Value::AsInt(i)) => i as f64,
                    None => 0.0,
                };
                match &metric.data {
                    Some(Data::Sum(sum)) => received.extend(
                        sum.data_points
                            .iter()
                            .map(|p| point(&p.attributes, None, number(p.value))),
                    ),
                    Some(Data::Gauge(gauge)) => received.extend(
                        gauge
                            .data_points
                            .iter()
                            .map(|p| point(&p.attributes, None, number(p.value))),
                    ),
                    Some(Data::Histogram(histogram)) => {
                        received.extend(histogram.data_points.iter().map(|p| {
                            point(&p.attributes, Some(p.count), p.sum.unwrap_or_default())
                        }));
                    }
                    // Caseline exports neither; kept as a point without attributes so a
                    // test sees that something arrived.
                    Some(Data::ExponentialHistogram(_) | Data::Summary(_)) | None => {
                        received.push(point(&[], None, 0.0));
                    }
                }
            }
        }
        self.0.add(&self.0.points, received);
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

fn attribute<'a>(attributes: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn keys_and_values(attributes: &[(String, String)]) -> impl Iterator<Item = &str> {
    attributes
        .iter()
        .flat_map(|(k, v)| [k.as_str(), v.as_str()])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BytesValue(b)) => hex(b),
        // An index into a profile's string table; traces do not use it.
        Some(Value::StringValueStrindex(i)) => format!("strindex:{i}"),
        Some(Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(|v| text(Some(v))).collect();
            format!("[{}]", items.join(", "))
        }
        Some(Value::KvlistValue(l)) => {
            let items: Vec<String> = pairs(&l.values)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}
