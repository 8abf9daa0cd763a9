//! The layers every request and response pass through, as one service: the
//! body limit, the request timeout, the security headers and the request
//! counter.
//!
//! One service instead of three stacked ones, because on a route that
//! answers at once the stack cost more than the route: tower-http's timeout
//! polls its timer before the request, so every request entered tokio's
//! timer wheel and left it again. Here the timer starts only when the
//! request is still pending after its first poll; it counts from the
//! request's arrival, so a stuck request still ends at `request_timeout`.
//!
//! The body limit is axum's `DefaultBodyLimit`, applied only to a request
//! that has a body: an empty one cannot exceed it, and most requests (every
//! GET) are spared its extension.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::HttpBody;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use super::metrics::{Metrics, method_label};

#[derive(Debug, Clone)]
pub struct OuterLayer {
    timeout: Duration,
    body_limit: usize,
    metrics: Option<Arc<Metrics>>,
}

impl OuterLayer {
    pub fn new(timeout: Duration, body_limit: usize, metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            timeout,
            body_limit,
            metrics,
        }
    }
}

impl<S: Clone> Layer<S> for OuterLayer {
    type Service = Outer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Outer {
            limited: DefaultBodyLimit::max(self.body_limit).layer(inner.clone()),
            inner,
            timeout: self.timeout,
            metrics: self.metrics.clone(),
            counters: Arc::default(),
        }
    }
}

/// axum wraps each route in this service separately, so one `Outer` (and
/// its clones) answers one route: its few counters are kept at hand.
#[derive(Clone)]
pub struct Outer<S> {
    inner: S,
    /// `inner` behind the body limit, for requests with a body.
    limited: <DefaultBodyLimit as Layer<S>>::Service,
    timeout: Duration,
    metrics: Option<Arc<Metrics>>,
    counters: Arc<RwLock<Vec<Counted>>>,
}

impl<S> std::fmt::Debug for Outer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outer")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<S> Service<Request> for Outer<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    <DefaultBodyLimit as Layer<S>>::Service:
        Service<Request, Response = Response, Error = Infallible, Future = S::Future>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = OuterFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => self.limited.poll_ready(cx),
            other => other,
        }
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let count = self.metrics.as_ref().map(|metrics| Count {
            metrics: metrics.clone(),
            counters: self.counters.clone(),
            method: method_label(req.method()),
            route: req.extensions().get::<MatchedPath>().cloned(),
        });
        let inner = if req.body().is_end_stream() {
            self.inner.call(req)
        } else {
            self.limited.call(req)
        };
        OuterFuture {
            inner,
            deadline: Instant::now() + self.timeout,
            sleep: None,
            count,
        }
    }
}

/// A counter this route has answered with before.
struct Counted {
    method: &'static str,
    route: Option<MatchedPath>,
    status: u16,
    counter: Counter,
}

/// What the request counter needs once the response is known.
struct Count {
    metrics: Arc<Metrics>,
    counters: Arc<RwLock<Vec<Counted>>>,
    method: &'static str,
    route: Option<MatchedPath>,
}

impl Count {
    /// Counts the answer. The route's own list is searched first (a few
    /// entries, no hashing); a new combination is looked up in the
    /// registry once and remembered.
    fn answered(self, status: u16) {
        let route = self.route.as_ref().map(MatchedPath::as_str);
        let same = |c: &Counted| {
            c.status == status
                && c.method == self.method
                && c.route.as_ref().map(MatchedPath::as_str) == route
        };
        let seen = self.counters.read().unwrap_or_else(|p| p.into_inner());
        if let Some(counted) = seen.iter().find(|c| same(c)) {
            counted.counter.inc();
            return;
        }
        drop(seen);
        let counter = self
            .metrics
            .request_counter(self.method, self.route.clone(), status);
        counter.inc();
        let mut seen = self.counters.write().unwrap_or_else(|p| p.into_inner());
        // A route answers with a handful of statuses; the bound only
        // guards against a surprise.
        if seen.len() < 32 && !seen.iter().any(same) {
            seen.push(Counted {
                method: self.method,
                route: self.route,
                status,
                counter,
            });
        }
    }
}

pin_project_lite::pin_project! {
    pub struct OuterFuture<F> {
        #[pin]
        inner: F,
        deadline: Instant,
        // Started only when the request did not finish on its first poll.
        sleep: Option<Pin<Box<Sleep>>>,
        count: Option<Count>,
    }
}

impl<F> Future for OuterFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = match this.inner.poll(cx) {
            Poll::Ready(Ok(res)) => res,
            Poll::Pending => {
                let deadline = *this.deadline;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // Answered 408; the session layer inside is dropped with
                // the request, so its session is not saved.
                StatusCode::REQUEST_TIMEOUT.into_response()
            }
        };
        security_headers(&mut res);
        if let Some(count) = this.count.take() {
            count.answered(res.status().as_u16());
        }
        Poll::Ready(Ok(res))
    }
}

/// Safe defaults for every response; a handler may set its own first.
fn security_headers(res: &mut Response) {
    let headers = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, &CSP),
        (header::X_CONTENT_TYPE_OPTIONS, &NOSNIFF),
        (header::REFERRER_POLICY, &SAME_ORIGIN),
        (header::X_FRAME_OPTIONS, &DENY),
    ] {
        headers.entry(name).or_insert_with(|| value.clone());
    }
}

/// Content-Security-Policy: everything from this site only, no framing.
static CSP: HeaderValue = HeaderValue::from_static(
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
);
static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
static SAME_ORIGIN: HeaderValue = HeaderValue::from_static("same-origin");
static DENY: HeaderValue = HeaderValue::from_static("DENY");
