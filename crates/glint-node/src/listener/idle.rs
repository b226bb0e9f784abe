//! How long an HTTP/1 connection may wait for a request's headers, without a timer per
//! request.
//!
//! hyper's `header_read_timeout` boxes and registers a timer each time it starts to read
//! a request head, and drops it once the head is in: a few percent of a small request's
//! CPU. The listener watches each HTTP/1 connection instead: its service counts the
//! requests in flight and stamps when the last one ended, and one timer per connection
//! closes it once no request has been in flight for the limit. That timer moves only
//! when it fires, so a busy connection pays two atomic operations and a clock read per
//! request. The limit means what hyper's does: from the end of a response (or the
//! connection's start) to the next request's complete headers, which bounds both a
//! client that sends its headers slowly and an idle keep-alive connection.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::service::Service;

/// One connection's requests: how many are in flight, and since when none has been.
#[derive(Debug)]
pub(super) struct Activity {
    opened: Instant,
    busy: AtomicUsize,
    /// When the last request ended, in milliseconds after `opened`.
    idle_since_ms: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            busy: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    /// Resolves once no request has been in flight for `limit`.
    pub(super) async fn idle_for(&self, limit: Duration) {
        loop {
            let now = self.opened.elapsed();
            let idle_since = if self.busy.load(Ordering::Acquire) > 0 {
                now
            } else {
                Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire))
            };
            let expires = idle_since + limit;
            if now >= expires {
                return;
            }
            tokio::time::sleep_until(self.opened + expires).await;
        }
    }
}

/// A request in flight: counted from the call of the service to the end of its
/// response body (or the end of a call that failed or was dropped).
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::AcqRel);
        Self(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let ended = self.0.opened.elapsed().as_millis() as u64;
        self.0.idle_since_ms.store(ended, Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's service, counting its requests in the connection's [`Activity`].
pub(super) struct Watched<S> {
    pub(super) inner: S,
    pub(super) activity: Arc<Activity>,
}

impl<S, B> Service<Request<hyper::body::Incoming>> for Watched<S>
where
    S: Service<Request<hyper::body::Incoming>, Response = Response<B>>,
{
    type Response = Response<WatchedBody<B>>;
    type Error = S::Error;
    type Future = WatchedCall<S::Future>;

    fn call(&self, req: Request<hyper::body::Incoming>) -> Self::Future {
        let busy = Busy::start(&self.activity);
        WatchedCall {
            call: self.inner.call(req),
            busy: Some(busy),
        }
    }
}

pin_project_lite::pin_project! {
    /// The service's answer, whose body carries the request's [`Busy`] on.
    pub(super) struct WatchedCall<F> {
        #[pin]
        call: F,
        busy: Option<Busy>,
    }
}

impl<F, B, E> Future for WatchedCall<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<WatchedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answered = std::task::ready!(this.call.poll(cx));
        let busy = this.busy.take();
        Poll::Ready(answered.map(|response| response.map(|body| WatchedBody { body, _busy: busy })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that ends its request's [`Busy`] when it is dropped, which
    /// hyper does once it has written the body's last frame.
    pub(super) struct WatchedBody<B> {
        #[pin]
        body: B,
        _busy: Option<Busy>,
    }
}

impl<B: Body> Body for WatchedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_while_no_request_is_in_flight() {
        let activity = Activity::new();
        let limit = Duration::from_secs(10);
        // Idle from the start: the limit runs from when the connection opened.
        let started = tokio::time::Instant::now();
        activity.idle_for(limit).await;
        assert!(started.elapsed() >= limit);

        // A request in flight holds the connection open however long it takes.
        let busy = Busy::start(&activity);
        let waited = tokio::time::timeout(limit * 3, activity.idle_for(limit)).await;
        assert!(waited.is_err(), "a busy connection was called idle");

        // Once it ends, the limit runs from its end.
        drop(busy);
        let ended = tokio::time::Instant::now();
        activity.idle_for(limit).await;
        assert!(ended.elapsed() >= limit);
    }
}
