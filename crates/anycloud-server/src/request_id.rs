//! Outermost middleware: assigns the request id, opens the request's trace
//! span and [`RequestScope`], stamps the `x-anycloud-*` headers every
//! response carries, counts errors by kind, and — for requests no
//! [`crate::outcome::Tracker`] took over — records request metrics and the
//! access-log line.
//!
//! Handlers report what they routed through a [`RouteInfo`] response
//! extension (typed, set once by the handler), which this layer reads.

use crate::error::ErrorKind;
use crate::metrics::{ErrorLabels, LatencyLabels, RequestLabels};
use crate::request_scope::{self, RequestScope};
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// The request's id, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// What a handler routed: set on the response for metrics and headers.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub api: &'static str,
    /// Configured model name, or `unknown`.
    pub model: String,
    /// Serving cloud, or `none`.
    pub cloud: String,
}

pub fn new_request_id() -> String {
    use rand::Rng;
    let n: u128 = rand::thread_rng().gen();
    format!("req_{:024x}", n & ((1u128 << 96) - 1))
}

pub async fn layer(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = new_request_id();
    let method = req.method().clone();
    // The route template, never the raw URL (bounded, and free of ids). MatchedPath is
    // shared (`Arc<str>`): cloning it does not copy the path.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let span = state
        .tracing
        .request_span(method.as_str(), route, req.headers());
    span.record("anycloud.request_id", id.as_str());
    let scope = RequestScope::new(span.clone());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = request_scope::run(scope.clone(), next.run(req))
        .instrument(span.clone())
        .await;
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert("x-request-id", v);
    }
    if !headers.contains_key("x-anycloud-cloud") {
        headers.insert("x-anycloud-cloud", HeaderValue::from_static("none"));
    }
    if !headers.contains_key("x-anycloud-route") {
        headers.insert("x-anycloud-route", HeaderValue::from_static("none"));
    }
    let status = resp.status().as_u16();
    let info = resp.extensions().get::<RouteInfo>();
    let kind = resp.extensions().get::<ErrorKind>();
    if let (Some(info), Some(kind)) = (info, kind) {
        let m = &state.metrics;
        let cloud = resp
            .headers()
            .get("x-anycloud-cloud")
            .and_then(|v| v.to_str().ok());
        m.errors
            .get_or_create(&ErrorLabels {
                api: info.api,
                cloud: m.labels.cloud(cloud),
                model: m.labels.model(&info.model),
                kind: kind.0,
                status,
            })
            .inc();
    }
    // A tracker (every AI request past authentication) reports the rest when
    // the request ends, streams included; the others are reported here.
    if !scope.is_tracked() {
        let m = &state.metrics;
        if let Some(info) = info {
            let labels = LatencyLabels {
                api: info.api,
                cloud: m.labels.cloud(Some(&info.cloud)),
                model: m.labels.model(&info.model),
            };
            m.requests
                .get_or_create(&RequestLabels {
                    api: info.api,
                    cloud: labels.cloud.clone(),
                    model: labels.model.clone(),
                    status,
                })
                .inc();
            m.latency
                .get_or_create(&labels)
                .observe(start.elapsed().as_secs_f64());
        }
        state
            .tracing
            .response_status(&span, status, kind.map(|k| k.0));
        crate::access_log::untracked(
            &id,
            method.as_str(),
            route,
            info.map(|i| i.api),
            status,
            start.elapsed().as_millis() as u64,
        );
    }
    resp
}
