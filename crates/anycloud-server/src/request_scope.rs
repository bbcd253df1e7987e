//! What the outermost middleware (`request_id`) knows about a request and the
//! handler's [`crate::outcome::Tracker`] needs: the request's trace span, and
//! whether a tracker took over the request's metrics and access-log line.
//!
//! Carried in a tokio task-local set around the handler, so ingress handlers
//! need no extra argument: `Tracker::new` picks it up. A task-local scope is
//! entered on every poll of the wrapped future, so concurrent requests on one
//! connection task never see each other's scope.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

tokio::task_local! {
    static SCOPE: Arc<RequestScope>;
}

#[derive(Debug)]
pub struct RequestScope {
    /// The request's span (`Span::none()` when tracing is off).
    pub span: tracing::Span,
    tracked: AtomicBool,
}

impl RequestScope {
    pub fn new(span: tracing::Span) -> Arc<RequestScope> {
        Arc::new(RequestScope {
            span,
            tracked: AtomicBool::new(false),
        })
    }

    /// True once a tracker owns the request's metrics and access-log line.
    pub fn is_tracked(&self) -> bool {
        self.tracked.load(Ordering::Relaxed)
    }
}

/// Runs `f` (the rest of the middleware stack and the handler) inside `scope`.
pub async fn run<F: Future>(scope: Arc<RequestScope>, f: F) -> F::Output {
    SCOPE.scope(scope, f).await
}

/// Marks the current request as tracked and returns its span.
pub fn claim() -> tracing::Span {
    SCOPE
        .try_with(|s| {
            s.tracked.store(true, Ordering::Relaxed);
            s.span.clone()
        })
        .unwrap_or_else(|_| tracing::Span::none())
}
