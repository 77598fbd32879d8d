//! Shared server plumbing for every Caseline binary.
//!
//! Startup is split in two, so tests and the all-in-one can bind port 0 and learn the
//! address before serving: [`GrpcServer::build`] binds and registers, then
//! [`GrpcServer::run_until_stopped`] serves until the shutdown future completes, draining
//! calls in flight for at most the drain limit ([`GrpcServer::with_drain`]) and cutting
//! off the ones still open then. Every server carries `grpc.health.v1` (each registered
//! service reported SERVING, NOT_SERVING once shutdown starts) and server reflection, v1
//! and v1alpha, over Caseline's descriptor set.
#![forbid(unsafe_code)]

mod drain;
mod guard;
mod status;
pub mod validate;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use caseline_proto::tonic;
use tokio_stream::StreamExt;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::drain::{Calls, Cutter, Severable};

pub use guard::{BoxFuture, Guard, Guarded, Next};
pub use status::{ApiError, FieldViolation};
pub use validate::Check;

/// The gRPC services one process serves, gathered before the server is built.
#[derive(Debug)]
pub struct Services {
    routes: RoutesBuilder,
    names: Vec<&'static str>,
    guard: Arc<dyn Guard>,
}

impl Services {
    /// Every service added is wrapped by `guard` (the trust layer): there is no way to
    /// serve one without it.
    pub fn new(guard: Arc<dyn Guard>) -> Self {
        Self {
            routes: RoutesBuilder::default(),
            names: Vec::new(),
            guard,
        }
    }

    /// Adds a generated tonic server (e.g. `CaseServiceServer::new(api)`), guarded.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower_service::Service<
                http::Request<Body>,
                Response = http::Response<Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes
            .add_service(Guarded::new(service, Arc::clone(&self.guard)));
        self
    }
}

/// Why a server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("a service cannot be guarded: {0}")]
    Unguarded(String),
    #[error("reflection descriptors are invalid: {0}")]
    Reflection(String),
    #[error("server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// How long calls in flight may run after the shutdown signal, unless configured: well
/// inside the 30 s Kubernetes and Docker give a container between SIGTERM and SIGKILL,
/// leaving time for what follows the drain (checkpoints, span export).
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);

/// The longest drain limit a server accepts. A longer one would only postpone the
/// orchestrator's SIGKILL, which skips the checkpoints and the span export.
pub const MAX_DRAIN: Duration = Duration::from_secs(300);

/// How long connections may take to close once cut off at the drain limit. Cutting fails
/// their sockets, so they close at once; this only keeps a stop from hanging if not.
const CLOSE_AFTER_CUT: Duration = Duration::from_secs(1);

/// A bound, configured server that has not started serving yet.
#[derive(Debug)]
pub struct GrpcServer {
    local_addr: SocketAddr,
    incoming: TcpIncoming,
    health: HealthReporter,
    names: Vec<&'static str>,
    routes: tonic::service::Routes,
    drain: Duration,
}

impl GrpcServer {
    /// Binds `listen` (port 0 picks a free port) and registers `services` with health
    /// and reflection.
    pub async fn build(listen: SocketAddr, services: Services) -> Result<Self, ServerError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: listen,
            source,
        })?;
        services
            .guard
            .check_services(&services.names)
            .map_err(ServerError::Unguarded)?;
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));

        let (health, health_service) = tonic_health::server::health_reporter();
        for name in &services.names {
            health
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }

        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(caseline_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection()
            .build_v1()
            .map_err(|e| ServerError::Reflection(e.to_string()))?;
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .map_err(|e| ServerError::Reflection(e.to_string()))?;

        let Services {
            mut routes, names, ..
        } = services;
        routes
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        Ok(Self {
            local_addr,
            incoming,
            health,
            names,
            routes: routes.routes(),
            drain: DEFAULT_DRAIN,
        })
    }

    /// How long calls in flight may run after the shutdown signal before they are cut
    /// off ([`DEFAULT_DRAIN`] unless set).
    pub fn with_drain(mut self, limit: Duration) -> Self {
        self.drain = limit;
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then reports NOT_SERVING, refuses new calls
    /// and lets the calls in flight run until they end or the drain limit passes,
    /// whichever comes first. At the limit the connections still open are cut: their
    /// calls are cancelled (a stream's client sees it fail) and this returns `Ok`, so
    /// that the caller's stop (checkpoints, span export) still runs.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        let Self {
            incoming,
            health,
            names,
            routes,
            drain,
            ..
        } = self;
        let (draining, drain_started) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            for name in names {
                health
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            let _ = draining.send(());
        };
        let calls = Calls::default();
        let cutter = Cutter::default();
        let incoming = {
            let cutter = cutter.clone();
            incoming.map(move |accepted| accepted.map(|socket| Severable::new(socket, &cutter)))
        };
        let serve = tonic::transport::Server::builder()
            .layer(calls.clone())
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, signal);
        tokio::pin!(serve);
        let limit = async {
            if drain_started.await.is_err() {
                // The server ended before any signal: `serve` is ready, nothing to time.
                std::future::pending::<()>().await;
            }
            tracing::info!(
                calls = calls.open(),
                drain_seconds = drain.as_secs_f64(),
                "draining: calls in flight may finish, new calls are refused"
            );
            tokio::time::sleep(drain).await;
        };
        tokio::select! {
            served = &mut serve => {
                served?;
                tracing::info!("drained: every call finished");
                return Ok(());
            }
            () = limit => {}
        }
        // Only a count: which calls, and whose, is in the access history.
        tracing::warn!(
            calls = calls.open(),
            drain_seconds = drain.as_secs_f64(),
            "drain limit reached: cutting off the calls still open"
        );
        cutter.cut();
        match tokio::time::timeout(CLOSE_AFTER_CUT, &mut serve).await {
            Ok(served) => served?,
            Err(_) => tracing::warn!(
                calls = calls.open(),
                "connections still open after being cut off; stopping without them"
            ),
        }
        Ok(())
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM (what Kubernetes sends). The handlers are
/// installed when this is called, not when the future is first polled: call it before
/// announcing that the server listens, so that a signal sent as soon as it is ready
/// starts the drain instead of killing the process.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let received = async |s: Option<tokio::signal::unix::Signal>| match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            };
            tokio::select! {
                _ = received(interrupt) => {}
                _ = received(terminate) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received");
    }
}
