//! Outermost middleware: assigns the request id, stamps the `x-anycloud-*`
//! headers every response carries, and records request metrics.
//!
//! Handlers report what they routed through a [`RouteInfo`] response
//! extension (typed, set once by the handler), which this layer reads.

use crate::error::ErrorKind;
use crate::metrics::{ErrorLabels, LatencyLabels, RequestLabels};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use std::time::Instant;

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
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next.run(req).await;
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
    if let Some(info) = resp.extensions().get::<RouteInfo>() {
        let status = resp.status().as_u16();
        state
            .metrics
            .requests
            .get_or_create(&RequestLabels {
                api: info.api,
                cloud: info.cloud.clone(),
                model: info.model.clone(),
                status,
            })
            .inc();
        state
            .metrics
            .latency
            .get_or_create(&LatencyLabels {
                api: info.api,
                cloud: info.cloud.clone(),
                model: info.model.clone(),
            })
            .observe(start.elapsed().as_secs_f64());
        if let Some(kind) = resp.extensions().get::<ErrorKind>() {
            state
                .metrics
                .errors
                .get_or_create(&ErrorLabels {
                    api: info.api,
                    kind: kind.0,
                    status,
                })
                .inc();
        }
    }
    resp
}
