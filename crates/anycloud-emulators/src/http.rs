//! HTTP plumbing shared by the emulated clouds: the parsed incoming request, JSON and
//! server-sent-event responses (with chunk delays and stream cuts from [`Faults`]).

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use crate::faults::Faults;

/// A fully read request, handed to the cloud modules.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Per-emulator sequence number of this request (1-based); used to derive ids.
    pub seq: u64,
}

impl Incoming {
    /// A header value as text (None when absent or not visible ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// Whether the request declares a JSON body (`application/json`, any parameters).
    pub fn has_json_content_type(&self) -> bool {
        self.header("content-type")
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
    }

    /// The bearer token of the `Authorization` header, if it has that form.
    pub fn bearer(&self) -> Option<&str> {
        let v = self.header("authorization")?;
        let (scheme, token) = v.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            Some(token.trim())
        } else {
            None
        }
    }
}

/// Build a response; header names must be valid (they are all literals in this crate).
pub(crate) fn respond(
    status: u16,
    content_type: &str,
    body: Body,
    headers: &[(&str, String)],
) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(k, v);
        }
    }
    resp
}

/// A JSON response.
pub(crate) fn json(status: u16, body: &Value, headers: &[(&str, String)]) -> Response {
    respond(
        status,
        "application/json",
        Body::from(body.to_string()),
        headers,
    )
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One SSE frame per event: `data: {event}\n\n`. The `[DONE]` sentinel is passed as the
/// literal event `[DONE]`.
///
/// Every frame is its own body chunk (its own write). `chunk_delay` sleeps between frames;
/// a trickle ([`Faults::trickle`]) sends every byte as its own write instead.
/// With a cut of K (from [`Faults::cut_stream_after`]), K frames other than `[DONE]` are
/// sent and then the body fails, which makes the server abort the connection; with a stall
/// of K ([`Faults::stall_stream_after`]) K frames are sent and then nothing, forever.
pub(crate) fn sse(events: Vec<String>, faults: &Faults, headers: &[(&str, String)]) -> Response {
    let frames: Vec<(bool, Bytes)> = events
        .into_iter()
        .map(|e| (e == "[DONE]", Bytes::from(format!("data: {e}\n\n"))))
        .collect();
    sse_frames(frames, faults, headers)
}

/// The in-band error fault (from [`Faults::stream_error_after`]) on data-only SSE events:
/// the first `chunks` events, then the cloud's error chunk built from the fault's type, and
/// no `[DONE]` (the cloud closes the stream after an error chunk).
pub(crate) fn inject_stream_error(
    events: &mut Vec<String>,
    faults: &Faults,
    error_chunk: impl FnOnce(&str) -> String,
) {
    if let Some((k, kind)) = faults.stream_error() {
        events.retain(|e| e != "[DONE]");
        events.truncate(usize::try_from(k).unwrap_or(usize::MAX));
        events.push(error_chunk(&kind));
    }
}

/// Named SSE events (`event: {name}` + `data: {json}`), as Anthropic sends them; same fault
/// handling as [`sse`].
pub(crate) fn sse_named(
    events: Vec<(String, String)>,
    faults: &Faults,
    headers: &[(&str, String)],
) -> Response {
    let frames = events
        .into_iter()
        .map(|(name, data)| {
            (
                false,
                Bytes::from(format!("event: {name}\ndata: {data}\n\n")),
            )
        })
        .collect();
    sse_frames(frames, faults, headers)
}

/// Pre-formatted frames; the flag marks the `[DONE]` sentinel (never sent after a cut).
pub(crate) fn sse_frames(
    frames: Vec<(bool, Bytes)>,
    faults: &Faults,
    headers: &[(&str, String)],
) -> Response {
    let trickle = faults.trickle_delay();
    let (frames, delay) = if trickle.is_zero() {
        (frames, faults.chunk_delay())
    } else {
        // One byte per write: a frame's flag stays on its every byte.
        let bytes = frames
            .into_iter()
            .flat_map(|(flag, frame)| {
                (0..frame.len())
                    .map(|i| (flag, frame.slice(i..i + 1)))
                    .collect::<Vec<_>>()
            })
            .collect();
        (bytes, trickle)
    };
    let cut = faults.cut_after();
    let state = SseState {
        frames: frames.into_iter(),
        sent: 0,
        cut,
        stall: faults.stall_after(),
        delay,
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        if st.stall.is_some_and(|k| st.sent >= k) {
            // A hung cloud: the connection stays open and nothing more comes.
            std::future::pending::<()>().await;
        }
        let next = st.frames.next();
        let over_cut = st.cut.is_some_and(|k| st.sent >= k);
        match next {
            Some((is_done, _)) if st.cut.is_some() && (over_cut || is_done) => {
                Some(cut_now(st).await)
            }
            None if st.cut.is_some() => Some(cut_now(st).await),
            None => None,
            Some((_, frame)) => {
                if st.sent > 0 {
                    if st.delay.is_zero() {
                        // Return Pending once so the server flushes the previous frame as
                        // its own write instead of coalescing frames.
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep(st.delay).await;
                    }
                }
                st.sent += 1;
                Some((Ok::<Bytes, std::io::Error>(frame), st))
            }
        }
    });
    let mut all: Vec<(&str, String)> = vec![("cache-control", "no-cache".to_string())];
    all.extend(headers.iter().cloned());
    respond(
        200,
        "text/event-stream; charset=utf-8",
        Body::from_stream(stream),
        &all,
    )
}

/// End the body with an error (the server then aborts the connection). Sleep briefly first
/// so the frames already produced are flushed to the socket before the abort.
async fn cut_now(mut st: SseState) -> (Result<Bytes, std::io::Error>, SseState) {
    st.done = true;
    tokio::time::sleep(Duration::from_millis(20)).await;
    (
        Err(std::io::Error::other(
            "emulator: stream cut by fault injection",
        )),
        st,
    )
}

struct SseState {
    frames: std::vec::IntoIter<(bool, Bytes)>,
    sent: u32,
    cut: Option<u32>,
    stall: Option<u32>,
    delay: Duration,
    done: bool,
}
