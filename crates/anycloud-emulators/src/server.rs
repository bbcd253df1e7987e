//! The accept loop, per-connection serving (HTTP/1.1 and h2c), connection refusal, the
//! control plane and dispatch of model requests to the emulated cloud.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use axum::response::Response;
use hyper::body::Incoming as HyperBody;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::http::{self, Incoming};
use crate::{anthropic, azure, bedrock, oci, openai, vertex, EmulatedCloud, Shared};

/// Largest request body accepted.
const MAX_BODY: usize = 32 * 1024 * 1024;
const CONTROL_PREFIX: &str = "/_emulator/";

/// Accept connections until the task is aborted; aborting drops the listener and (through
/// the `JoinSet`) every connection task.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    conns.spawn(serve_connection(stream, shared));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "emulator accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// While refusing, keep only connections whose first bytes are a control-plane request
/// (so the knob can be switched off over HTTP); drop the rest unanswered. Dropping a socket
/// with unread data makes the kernel send a reset.
async fn admit_while_refusing(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 32];
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => return false,
        };
        if n == 0 {
            return false;
        }
        let seen = buf.get(..n).unwrap_or_default();
        let want: &[&[u8]] = &[b"POST /_emulator/", b"GET /_emulator/"];
        if want.iter().any(|w| seen.starts_with(w)) {
            return true;
        }
        if !want.iter().any(|w| w.starts_with(seen)) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    if shared.faults.refusing() && !admit_while_refusing(&stream).await {
        return;
    }
    let _ = stream.set_nodelay(true);
    let svc = hyper::service::service_fn(move |req: Request<HyperBody>| {
        let shared = Arc::clone(&shared);
        async move {
            let is_control = req.uri().path().starts_with(CONTROL_PREFIX);
            if shared.faults.refusing() && !is_control {
                // An error from the service makes hyper drop the connection unanswered.
                return Err(std::io::Error::other("emulator: refusing connections"));
            }
            Ok::<Response, std::io::Error>(handle(&shared, req.map(Body::new)).await)
        }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder.serve_connection(TokioIo::new(stream), svc).await {
        tracing::debug!(error = %e, "emulator connection ended with an error");
    }
}

async fn handle(shared: &Shared, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return http::json(
                413,
                &json!({"error": "request body too large or unreadable"}),
                &[],
            )
        }
    };
    let incoming = Incoming {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
        seq: 0,
    };
    if incoming.path.starts_with(CONTROL_PREFIX) {
        return control(shared, &incoming);
    }
    if shared.config.cloud == EmulatedCloud::AzureOpenai {
        if let Some(resp) = azure::token_endpoint(shared, &incoming) {
            return resp;
        }
    }
    if shared.config.cloud == EmulatedCloud::Vertex {
        if let Some(resp) = vertex::oauth::token_endpoint(shared, &incoming) {
            return resp;
        }
    }
    let incoming = Incoming {
        seq: shared.next_seq(),
        ..incoming
    };
    let full_path = match &incoming.query {
        Some(q) => format!("{}?{q}", incoming.path),
        None => incoming.path.clone(),
    };
    shared.recorder.record(
        incoming.method.as_str(),
        &full_path,
        &incoming.headers,
        &incoming.body,
    );

    let latency = shared.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(failure) = shared.faults.take_failure() {
        return match shared.config.cloud {
            EmulatedCloud::OpenaiCompatible => openai::injected_error(&incoming, failure),
            EmulatedCloud::AzureOpenai => azure::injected_error(&incoming, failure),
            EmulatedCloud::Oci => oci::injected_error(&incoming, failure),
            EmulatedCloud::Bedrock => bedrock::injected_error(&incoming, failure),
            EmulatedCloud::Vertex => vertex::injected_error(&incoming, failure),
            EmulatedCloud::Anthropic => anthropic::injected_error(&incoming, failure),
        };
    }
    match shared.config.cloud {
        EmulatedCloud::OpenaiCompatible => openai::handle(shared, &incoming).await,
        EmulatedCloud::AzureOpenai => azure::handle(shared, &incoming).await,
        EmulatedCloud::Oci => oci::handle(shared, &incoming).await,
        EmulatedCloud::Bedrock => bedrock::handle(shared, &incoming).await,
        EmulatedCloud::Vertex => vertex::handle(shared, &incoming).await,
        EmulatedCloud::Anthropic => anthropic::handle(shared, &incoming).await,
    }
}

fn control(shared: &Shared, req: &Incoming) -> Response {
    let path = req.path.as_str();
    match (&req.method, path) {
        (&Method::POST, "/_emulator/faults") => {
            let doc: Value = match serde_json::from_slice(&req.body) {
                Ok(v) => v,
                Err(e) => {
                    return http::json(400, &json!({"error": format!("invalid JSON: {e}")}), &[])
                }
            };
            match shared.faults.apply_json(&doc) {
                Ok(()) => http::json(200, &json!({"ok": true}), &[]),
                Err(e) => http::json(400, &json!({"error": e}), &[]),
            }
        }
        (&Method::POST, "/_emulator/reset") => {
            shared.faults.reset();
            shared.recorder.clear();
            shared.reported_usage(true);
            http::json(200, &json!({"ok": true}), &[])
        }
        (&Method::GET, "/_emulator/usage") => {
            http::json(200, &json!({"usage": shared.reported_usage(false)}), &[])
        }
        (&Method::GET, "/_emulator/stats") => http::json(
            200,
            &json!({"requests": shared.recorder.len(), "cloud": shared.config.name}),
            &[],
        ),
        _ => http::json(
            404,
            &json!({"error": format!("unknown control endpoint {} {path}", req.method)}),
            &[],
        ),
    }
}
