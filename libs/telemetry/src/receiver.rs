//! An OTLP/gRPC trace receiver for tests: a real collector endpoint on `127.0.0.1:0`
//! that keeps every span exported to it, flattened into [`ReceivedSpan`]s. Point a
//! process's `OTEL_EXPORTER_OTLP_ENDPOINT` at [`OtlpReceiver::endpoint`], then wait for
//! the spans with [`OtlpReceiver::wait_for`].
//!
//! Test support: it panics when it cannot listen.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
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
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every text the span carries outside its ids: name, attribute keys and values,
    /// event names, event attributes, status message. For checks that no personal data
    /// left the process.
    pub fn texts(&self) -> Vec<&str> {
        let mut texts = vec![self.name.as_str(), self.status_message.as_str()];
        for (k, v) in self
            .attributes
            .iter()
            .chain(self.events.iter().flat_map(|e| e.attributes.iter()))
        {
            texts.push(k);
            texts.push(v);
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
    arrived: Notify,
}

impl OtlpReceiver {
    /// Listens on `127.0.0.1:0` and serves the OTLP trace service on the current tokio
    /// runtime.
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
        let service = TraceServiceServer::new(Collector(store.clone()));
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let server = tokio::spawn(async move {
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(service)
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
        self.store.snapshot()
    }

    /// Waits until `predicate` holds for the spans received so far, and returns them;
    /// after `timeout`, returns what had arrived as the error.
    pub async fn wait_for(
        &self,
        mut predicate: impl FnMut(&[ReceivedSpan]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<ReceivedSpan>, WaitTimedOut> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before looking, so an export landing in between still wakes us.
            let arrived = self.store.arrived.notified();
            let spans = self.store.snapshot();
            if predicate(&spans) {
                return Ok(spans);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(WaitTimedOut {
                    spans: self.store.snapshot(),
                });
            }
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Store {
    fn snapshot(&self) -> Vec<ReceivedSpan> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
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
            let service_name = resource_spans
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .map(|kv| text(kv.value.as_ref()))
                .unwrap_or_default();
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
        self.0
            .spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(received);
        self.0.arrived.notify_waiters();
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
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
