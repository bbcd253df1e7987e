//! A minimal, fast OpenAI-compatible upstream for benchmarking the gateway.
//!
//! `POST /v1/chat/completions` answers a fixed small `chat.completion`, or with
//! `"stream": true` a fixed short SSE sequence sent as separate chunks (role,
//! 3 content chunks, finish, usage, `[DONE]`). Any bearer is accepted; other
//! paths get 404. Single-threaded on purpose: pin it with `taskset`.
//!
//! A request for model `bench-slow` streams slowly instead, for memory.sh's "1,000
//! concurrent slow streams": the role chunk, then `SLOW_EVENTS` (env, default 10) content
//! chunks one second apart, then finish, usage and `[DONE]`.
//!
//! Usage: bench-upstream [ADDR]   (default 127.0.0.1:9301)

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

const COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the bench upstream."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}"#;

const SSE: [&str; 7] = [
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" from the\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" bench upstream.\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":6,\"total_tokens\":15}}\n\n",
    "data: [DONE]\n\n",
];

/// The SSE events as separate body frames (chunked transfer encoding, as real
/// providers send them).
struct SseBody(usize);

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let i = self.0;
        if i >= SSE.len() {
            return Poll::Ready(None);
        }
        self.0 += 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(SSE[i].as_bytes())))))
    }
    fn is_end_stream(&self) -> bool {
        self.0 >= SSE.len()
    }
}

/// The slow stream: SSE[0], then `left` copies of SSE[1] a second apart, then SSE[4..].
struct SlowSse {
    i: usize,
    left: usize,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Body for SlowSse {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.i == 0 {
            this.i = 1;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(SSE[0].as_bytes())))));
        }
        if this.left > 0 {
            if this.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.left -= 1;
            let next = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
            this.sleep.as_mut().reset(next);
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(SSE[1].as_bytes())))));
        }
        let i = this.i.max(4);
        if i >= SSE.len() {
            return Poll::Ready(None);
        }
        this.i = i + 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(SSE[i].as_bytes())))))
    }
}

enum Reply {
    Json(Full<Bytes>),
    Sse(SseBody),
    Slow(SlowSse),
}

impl Body for Reply {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Reply::Json(b) => Pin::new(b).poll_frame(cx),
            Reply::Sse(b) => Pin::new(b).poll_frame(cx),
            Reply::Slow(b) => Pin::new(b).poll_frame(cx),
        }
    }
    fn is_end_stream(&self) -> bool {
        match self {
            Reply::Json(b) => b.is_end_stream(),
            Reply::Sse(b) => b.is_end_stream(),
            Reply::Slow(_) => false,
        }
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            Reply::Json(b) => b.size_hint(),
            Reply::Sse(_) | Reply::Slow(_) => hyper::body::SizeHint::default(),
        }
    }
}

fn wants_stream(body: &[u8]) -> bool {
    let needle = b"\"stream\"";
    let Some(pos) = body.windows(needle.len()).position(|w| w == needle) else {
        return false;
    };
    let rest = &body[pos + needle.len()..];
    let rest: Vec<u8> = rest
        .iter()
        .copied()
        .skip_while(|c| c.is_ascii_whitespace() || *c == b':')
        .take(4)
        .collect();
    rest == b"true"
}

async fn handle(req: Request<Incoming>) -> Result<Response<Reply>, Infallible> {
    let ok_path = req.method() == Method::POST && req.uri().path() == "/v1/chat/completions";
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if !ok_path {
        let mut r = Response::new(Reply::Json(Full::new(Bytes::from_static(
            br#"{"error":{"message":"not found","type":"invalid_request_error"}}"#,
        ))));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(r);
    }
    let slow = body.windows(12).any(|w| w == b"\"bench-slow\"");
    if slow && wants_stream(&body) {
        let left = std::env::var("SLOW_EVENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10);
        let sleep = Box::pin(tokio::time::sleep(std::time::Duration::from_secs(1)));
        let mut r = Response::new(Reply::Slow(SlowSse { i: 0, left, sleep }));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        Ok(r)
    } else if wants_stream(&body) {
        let mut r = Response::new(Reply::Sse(SseBody(0)));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        Ok(r)
    } else {
        let mut r = Response::new(Reply::Json(Full::new(Bytes::from_static(
            COMPLETION.as_bytes(),
        ))));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(r)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9301".to_string());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bench-upstream: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("bench-upstream listening on {addr}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}
