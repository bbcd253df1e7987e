//! AWS Bedrock Runtime emulator (provider-wire-formats §3): Converse, ConverseStream and
//! InvokeModel (Titan Text Embeddings v2) on `/model/{modelId}/...`, every request's
//! SigV4 signature verified (`sigv4`), Converse bodies validated like Bedrock does
//! (`converse`), errors in Bedrock's shape (`x-amzn-ErrorType` header, `{"message"}`
//! body), and ConverseStream answered with real AWS event-stream frames (CRCs and all,
//! written with `aws-smithy-eventstream`) split at uneven offsets across TCP writes.
//!
//! Faults: injected failures answer as `ThrottlingException` (429),
//! `ServiceUnavailableException` (503), `InternalServerException` (500), …;
//! `cut_stream_after(k)` aborts the connection after k frames; `stream_error_after(k,
//! name)` sends an exception frame named `name` after k frames inside the 200 stream.

mod cache;
mod converse;
mod sigv4;

use std::time::Duration;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::body::Body;
use axum::http::Method;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::faults::InjectedFailure;
use crate::http::{self, Incoming};
use crate::{reply, Shared};

/// Padding for the optional `p` field of stream payloads, as Bedrock sends it.
const PADDING: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Sizes the event-stream bytes are cut into, cycled, so frame boundaries and TCP
/// writes rarely line up (one frame in several writes, several frames in one write).
const WRITE_SIZES: [usize; 7] = [5, 97, 13, 1, 240, 31, 64];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Converse,
    ConverseStream,
    Invoke,
}

/// `/model/{modelId}/{op}` with the model id percent-decoded.
fn route(req: &Incoming) -> Option<(String, Op)> {
    if req.method != Method::POST {
        return None;
    }
    let rest = req.path.strip_prefix("/model/")?;
    let (id, op) = rest.split_once('/')?;
    let op = match op {
        "converse" => Op::Converse,
        "converse-stream" => Op::ConverseStream,
        "invoke" => Op::Invoke,
        _ => return None,
    };
    let id = percent_encoding::percent_decode_str(id)
        .decode_utf8()
        .ok()?
        .into_owned();
    (!id.is_empty()).then_some((id, op))
}

fn request_id(req: &Incoming) -> String {
    format!("00000000-0000-4000-b000-{:012}", req.seq)
}

/// A Bedrock error: status, `x-amzn-ErrorType`, `{"message"}`.
fn error(req: &Incoming, status: u16, name: &str, message: &str) -> Response {
    http::json(
        status,
        &json!({"message": message}),
        &[
            ("x-amzn-RequestId", request_id(req)),
            (
                "x-amzn-ErrorType",
                format!("{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            ),
        ],
    )
}

fn validation(req: &Incoming, message: &str) -> Response {
    error(req, 400, "ValidationException", message)
}

/// The Bedrock-shaped answer for an injected failure.
pub(crate) fn injected_error(req: &Incoming, f: InjectedFailure) -> Response {
    let (name, message) = match f.status {
        429 => (
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        ),
        503 => (
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
        ),
        500 => (
            "InternalServerException",
            "The server encountered an internal error while processing the request.",
        ),
        408 => (
            "ModelTimeoutException",
            "Model has timed out in processing the request. Try your request again.",
        ),
        424 => (
            "ModelErrorException",
            "The model failed to process the request.",
        ),
        403 => (
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        ),
        404 => (
            "ResourceNotFoundException",
            "Could not resolve the foundation model from the provided model identifier.",
        ),
        400 => ("ValidationException", "Injected validation failure."),
        _ => ("InternalServerException", "Injected failure."),
    };
    error(req, f.status, name, message)
}

/// Serve one model-endpoint request.
pub(crate) async fn handle(shared: &Shared, req: &Incoming) -> Response {
    let Some(aws) = shared.config.aws.as_ref() else {
        return error(
            req,
            500,
            "InternalServerException",
            "emulator has no AWS configuration",
        );
    };
    let Some((model, op)) = route(req) else {
        return error(req, 404, "UnknownOperationException", "Not Found");
    };
    if let Err(e) = sigv4::verify(aws, req) {
        return error(req, e.status, e.name, &e.message);
    }
    if !shared.config.models.contains(&model) {
        return error(
            req,
            404,
            "ResourceNotFoundException",
            "Could not resolve the foundation model from the provided model identifier.",
        );
    }
    if !req.has_json_content_type() {
        return validation(req, "The request content type must be application/json.");
    }
    let body = match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(o)) => o,
        _ => {
            return validation(
                req,
                "Malformed input request, please reformat your input and try again.",
            )
        }
    };
    match op {
        Op::Invoke => invoke(req, &model, &body),
        Op::Converse | Op::ConverseStream => {
            let c = match converse::validate(&body) {
                Ok(c) => c,
                Err(m) => return validation(req, &m),
            };
            let prefix = match cache::prefix(&model, &body) {
                Ok(p) => p,
                Err(m) => return validation(req, &m),
            };
            let mut a = converse::answer(&c, &shared.config.name, &model);
            cache::apply(&shared.prompt_cache, &prefix, &model, &mut a.usage);
            shared.report_usage(&a.usage);
            let headers = [("x-amzn-RequestId", request_id(req))];
            if op == Op::Converse {
                http::json(200, &converse::response_body(&a), &headers)
            } else {
                event_stream(shared, req, converse::stream_events(&a))
            }
        }
    }
}

/// InvokeModel for Titan Text Embeddings v2.
fn invoke(req: &Incoming, model: &str, body: &serde_json::Map<String, Value>) -> Response {
    if !model.contains("titan-embed") {
        return validation(
            req,
            "The emulator serves InvokeModel for Titan text embedding models only; use Converse.",
        );
    }
    let Some(text) = body
        .get("inputText")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return validation(req, "Malformed input request: #: required key [inputText] not found, please reformat your input and try again.");
    };
    if let Some(k) = body.keys().find(|k| {
        !matches!(
            k.as_str(),
            "inputText" | "dimensions" | "normalize" | "embeddingTypes"
        )
    }) {
        return validation(req, &format!("Malformed input request: #: extraneous key [{k}] is not permitted, please reformat your input and try again."));
    }
    let dims = match body.get("dimensions") {
        None => 1024,
        Some(d) => match d.as_u64() {
            Some(n @ (256 | 512 | 1024)) => n as usize,
            _ => return validation(req, &format!("Malformed input request: #/dimensions: {d} is not a valid enum value, please reformat your input and try again.")),
        },
    };
    let tokens = reply::word_tokens(text);
    http::json(
        200,
        &json!({"embedding": reply::embedding(text, dims), "inputTextTokenCount": tokens}),
        &[("x-amzn-RequestId", request_id(req))],
    )
}

/// A string-typed (type 7) event-stream header, the only kind Bedrock sends.
fn string_header(name: &'static str, value: impl Into<String>) -> Header {
    Header::new(name, HeaderValue::String(value.into().into()))
}

/// One event-stream message as bytes.
fn frame(headers: Vec<Header>, payload: Vec<u8>) -> Bytes {
    let mut out = Vec::new();
    // Writing to a Vec fails only for over-long headers, which these never are.
    if write_message_to(&Message::new_from_parts(headers, payload), &mut out).is_err() {
        out.clear();
    }
    Bytes::from(out)
}

fn event_frame(n: usize, name: &str, mut payload: Value) -> Bytes {
    if let Some(o) = payload.as_object_mut() {
        o.insert("p".into(), Value::from(&PADDING[..(n * 7) % PADDING.len()]));
    }
    frame(
        vec![
            string_header(":event-type", name.to_string()),
            string_header(":content-type", "application/json"),
            string_header(":message-type", "event"),
        ],
        payload.to_string().into_bytes(),
    )
}

fn exception_frame(name: &str) -> Bytes {
    let message = match name {
        "throttlingException" => "Too many tokens, please wait before trying again.",
        "serviceUnavailableException" => "Bedrock is unable to process your request.",
        "validationException" => "Invalid input in stream.",
        "modelStreamErrorException" => "The model stream failed.",
        _ => "The server encountered an internal error while processing the request.",
    };
    frame(
        vec![
            string_header(":exception-type", name.to_string()),
            string_header(":content-type", "application/json"),
            string_header(":message-type", "exception"),
        ],
        json!({"message": message}).to_string().into_bytes(),
    )
}

/// The ConverseStream response: frames, faults applied, cut into uneven writes.
fn event_stream(shared: &Shared, req: &Incoming, events: Vec<(&'static str, Value)>) -> Response {
    let faults = &shared.faults;
    let mut frames: Vec<Bytes> = events
        .into_iter()
        .enumerate()
        .map(|(n, (name, payload))| event_frame(n, name, payload))
        .collect();
    let mut cut = false;
    let stall = faults.stall_after();
    if let Some(k) = stall {
        frames.truncate(k as usize);
    }
    if let Some((k, name)) = faults.stream_error() {
        frames.truncate(k as usize);
        frames.push(exception_frame(&name));
    } else if let Some(k) = faults.cut_after() {
        frames.truncate(k as usize);
        cut = true;
    }
    let writes = split_writes(&frames);
    let delay = faults.chunk_delay();
    let stream = futures::stream::unfold(
        (writes.into_iter(), 0usize, false),
        move |(mut it, n, done)| async move {
            if done {
                return None;
            }
            match it.next() {
                Some(bytes) => {
                    if n > 0 {
                        if delay.is_zero() {
                            // Pending once, so each piece goes out in its own write.
                            tokio::task::yield_now().await;
                        } else {
                            tokio::time::sleep(delay).await;
                        }
                    }
                    Some((Ok::<Bytes, std::io::Error>(bytes), (it, n + 1, false)))
                }
                None if stall.is_some() => {
                    // A hung cloud: the connection stays open and nothing more comes.
                    std::future::pending::<()>().await;
                    None
                }
                None if cut => {
                    // Let the frames already produced reach the socket, then abort.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Some((
                        Err(std::io::Error::other(
                            "emulator: stream cut by fault injection",
                        )),
                        (it, n, true),
                    ))
                }
                None => None,
            }
        },
    );
    http::respond(
        200,
        "application/vnd.amazon.eventstream",
        Body::from_stream(stream),
        &[("x-amzn-RequestId", request_id(req))],
    )
}

/// All frames' bytes, re-cut at the [`WRITE_SIZES`] cycle.
fn split_writes(frames: &[Bytes]) -> Vec<Bytes> {
    let all: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
    let all = Bytes::from(all);
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < all.len() {
        let n = WRITE_SIZES[i % WRITE_SIZES.len()].min(all.len() - at);
        out.push(all.slice(at..at + n));
        at += n;
        i += 1;
    }
    out
}
