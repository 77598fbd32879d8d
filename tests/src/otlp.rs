//! An in-process OTLP/gRPC receiver: start one, point a server process's
//! `OTEL_EXPORTER_OTLP_ENDPOINT` at [`OtlpReceiver::endpoint`], and read back the spans
//! and metric points it exported. It lives in caseline-telemetry (feature `receiver`), whose own tests
//! use it and cannot depend on this crate.

pub use caseline_telemetry::receiver::{
    OtlpReceiver, PointsTimedOut, ReceivedEvent, ReceivedPoint, ReceivedSpan, WaitTimedOut,
};
