//! The layers every response passes through, as one service: the request
//! timeout, the security headers and the request counter.
//!
//! One service instead of three stacked ones, because on a route that
//! answers at once the stack cost more than the route: tower-http's timeout
//! polls its timer before the request, so every request entered tokio's
//! timer wheel and left it again. Here the timer starts only when the
//! request is still pending after its first poll; it counts from the
//! request's arrival, so a stuck request still ends at `request_timeout`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use super::metrics::{Metrics, method_label};

#[derive(Debug, Clone)]
pub struct OuterLayer {
    timeout: Duration,
    metrics: Option<Arc<Metrics>>,
}

impl OuterLayer {
    pub fn new(timeout: Duration, metrics: Option<Arc<Metrics>>) -> Self {
        Self { timeout, metrics }
    }
}

impl<S> Layer<S> for OuterLayer {
    type Service = Outer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Outer {
            inner,
            timeout: self.timeout,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outer<S> {
    inner: S,
    timeout: Duration,
    metrics: Option<Arc<Metrics>>,
}

impl<S> Service<Request> for Outer<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = OuterFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let count = self.metrics.as_ref().map(|metrics| Count {
            metrics: metrics.clone(),
            method: method_label(req.method()),
            route: req.extensions().get::<MatchedPath>().cloned(),
        });
        OuterFuture {
            inner: self.inner.call(req),
            deadline: Instant::now() + self.timeout,
            sleep: None,
            count,
        }
    }
}

/// What the request counter needs once the response is known.
struct Count {
    metrics: Arc<Metrics>,
    method: &'static str,
    route: Option<MatchedPath>,
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
            count
                .metrics
                .count_request(count.method, count.route, res.status().as_u16());
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
