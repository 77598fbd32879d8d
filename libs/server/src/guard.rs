//! The hook through which every Caseline service is wrapped by the trust layer.
//!
//! [`Services::new`](crate::Services::new) takes a [`Guard`] and wraps every service
//! added after it, so no service can be served without one. The guard sees each call
//! before the handler (to authenticate and authorise) and the handler's response after
//! (to record the access, and to withhold the response if the record cannot be made).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use caseline_proto::tonic;
use tonic::body::Body;
use tonic::server::NamedService;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Calls the wrapped handler.
pub type Next = Box<dyn FnOnce(http::Request<Body>) -> BoxFuture<http::Response<Body>> + Send>;

/// What wraps every call of every Caseline service.
pub trait Guard: std::fmt::Debug + Send + Sync + 'static {
    /// Refuses to serve `services` unless the guard knows how to authorise every one of
    /// their methods; the message names what is missing.
    fn check_services(&self, services: &[&'static str]) -> Result<(), String>;

    /// Handles one call: decide whether `next` runs, and what leaves.
    fn handle(&self, request: http::Request<Body>, next: Next) -> BoxFuture<http::Response<Body>>;
}

/// A service wrapped by a [`Guard`].
#[derive(Clone, Debug)]
pub struct Guarded<S> {
    inner: S,
    guard: Arc<dyn Guard>,
}

impl<S> Guarded<S> {
    pub(crate) fn new(inner: S, guard: Arc<dyn Guard>) -> Self {
        Self { inner, guard }
    }
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower_service::Service<http::Request<Body>> for Guarded<S>
where
    S: tower_service::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The clone is the one made ready; leave a fresh clone in its place (tower's
        // usual pattern for services called from a boxed future).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let next: Next = Box::new(move |request| {
            Box::pin(async move {
                match inner.call(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            })
        });
        let response = self.guard.handle(request, next);
        Box::pin(async move { Ok(response.await) })
    }
}
