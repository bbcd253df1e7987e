//! Entry points for the `fuzz/` crate (cargo-fuzz) and for the regression tests that
//! replay what it found: each takes raw bytes from a cloud — a reply or a stream — and
//! runs them through the same decoders the gateway uses. (Client JSON is decoded by the
//! server's ingress; its entry points are `anycloud_server::fuzzing`.) They
//! return nothing; a decoder may refuse the bytes with an error, but must never panic,
//! loop or allocate without bound.
//!
//! Not an API: hidden from the docs and free to change with the decoders.

use crate::sse::{SseEvent, SseParser};
use crate::{anthropic, bedrock, oci, openai, vertex};
use anycloud_types::{ChatRequest, ContentBlock, EmbeddingInput, EmbeddingsRequest, Message, Role};

/// Splits `data` into chunks whose sizes come from the data itself (1 to 64 bytes), so
/// a stream decoder sees events cut at every place a network could cut them.
fn chunks(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    let mut i = 0usize;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = usize::from(data.get(i).copied().unwrap_or(7) % 64) + 1;
        i += 1;
        let (head, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        Some(head)
    })
}

/// SSE events of `data` fed in chunks, and whether the parser accepted every chunk
/// (it stops at its first error).
fn sse_split(data: &[u8]) -> (Vec<SseEvent>, bool) {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    for c in chunks(data) {
        if parser.push(c, &mut out).is_err() {
            return (out, false);
        }
    }
    (out, true)
}

/// SSE events of `data` fed in chunks, up to the parser's first error.
pub fn sse_events(data: &[u8]) -> Vec<SseEvent> {
    sse_split(data).0
}

/// The SSE parser alone, split arbitrarily; the events must not depend on the split.
pub fn sse(data: &[u8]) {
    let mut whole = Vec::new();
    let whole_ok = SseParser::new().push(data, &mut whole).is_ok();
    let (split, split_ok) = sse_split(data);
    // The same events however the bytes are cut (an invariant, not just "no panic"):
    // a difference is a bug worth a crash report.
    #[allow(clippy::panic)]
    if whole_ok && split_ok && whole != split {
        panic!("SSE events depend on how the bytes were split");
    }
}

/// What a canonical request becomes on each cloud (the encoders see client input too).
pub fn encode_everywhere(req: &ChatRequest) {
    let _ = openai::convert::request_to_wire(req, "t", openai::convert::MaxTokensField::MaxTokens);
    let _ = anthropic::convert::request_to_wire(req, Some("t"), None);
    let _ = vertex::convert::request_to_wire(req);
    let _ = bedrock::convert::request_to_wire(req);
}

/// A small valid request, for decoders that look at the request they answer.
fn any_request() -> Option<ChatRequest> {
    let hi = Message {
        role: Role::User,
        content: vec![ContentBlock::text("hi")],
        name: None,
    };
    Some(ChatRequest::new("m", vec![hi]))
}

fn embeddings_of(n: usize) -> EmbeddingsRequest {
    EmbeddingsRequest {
        model: "m".into(),
        inputs: (0..n).map(|_| EmbeddingInput::Text("x".into())).collect(),
        dimensions: None,
        user: None,
    }
}

/// OpenAI / Azure / OpenAI-compatible replies: chat, embeddings, and error bodies.
pub fn openai_response(data: &[u8]) {
    if let Ok(w) = serde_json::from_slice::<openai::wire::ChatCompletionResponse>(data) {
        let _ = openai::convert::response_from_wire(w);
    }
    if let Ok(w) = serde_json::from_slice::<openai::wire::EmbeddingsResponseWire>(data) {
        let _ = openai::convert::embeddings_response_from_wire(w);
    }
    let _ = crate::http::error_from_response(429, &reqwest::header::HeaderMap::new(), data);
}

/// An OpenAI chat-completions stream, as SSE bytes.
pub fn openai_stream(data: &[u8]) {
    let mut dec = openai::stream::ChunkDecoder::new();
    for ev in sse_events(data) {
        if dec.on_event(&ev).is_err() {
            return;
        }
    }
    let _ = dec.on_end();
}

/// Anthropic Messages replies and error bodies.
pub fn anthropic_response(data: &[u8]) {
    if let Ok(w) = serde_json::from_slice::<anthropic::wire::MessagesResponse>(data) {
        let _ = anthropic::convert::response_from_wire(w);
    }
}

/// An Anthropic Messages stream, as SSE bytes.
pub fn anthropic_stream(data: &[u8]) {
    let mut dec = anthropic::stream::EventDecoder::new();
    for ev in sse_events(data) {
        if dec.on_event(&ev).is_err() {
            return;
        }
    }
    let _ = dec.on_end();
}

/// Vertex `generateContent` and `:predict` replies, and Google error bodies.
pub fn vertex_response(data: &[u8]) {
    if let Ok(w) = serde_json::from_slice::<vertex::wire::GenerateContentResponse>(data) {
        let _ = vertex::convert::response_from_wire(w, "t", 0);
    }
    if let Ok(w) = serde_json::from_slice::<vertex::wire::PredictResponse>(data) {
        let _ = vertex::convert::predict_response(w);
    }
    let _ = vertex::errors::google_error(429, data);
}

/// A Vertex `streamGenerateContent?alt=sse` stream.
pub fn vertex_stream(data: &[u8]) {
    let mut st = vertex::stream::StreamState::new("t");
    for ev in sse_events(data) {
        if st.on_data(&ev.data).iter().any(Result::is_err) {
            return;
        }
    }
    let _ = st.on_end();
}

/// OCI Generative AI chat and embed replies, and its error bodies.
pub fn oci_response(data: &[u8]) {
    if let (Ok(w), Some(req)) = (
        serde_json::from_slice::<oci::wire::ChatResult>(data),
        any_request(),
    ) {
        let _ = oci::convert::response_from_wire(w, "id".into(), "t", &req);
    }
    if let Ok(w) = serde_json::from_slice::<oci::wire::EmbedTextResult>(data) {
        let n = usize::from(data.first().copied().unwrap_or(1) % 4);
        let _ = oci::convert::embed_from_wire(w, "t", &embeddings_of(n));
    }
    let _ = oci::convert::error_from_response(429, &reqwest::header::HeaderMap::new(), data);
}

/// An OCI chat stream, as SSE bytes.
pub fn oci_stream(data: &[u8]) {
    let mut dec = oci::stream::OciDecoder::new("id".into(), "t".into(), 10);
    for ev in sse_events(data) {
        if dec.on_event(&ev).is_err() {
            return;
        }
    }
    let _ = dec.on_end();
}

/// Bedrock Converse replies and its error bodies.
pub fn bedrock_response(data: &[u8]) {
    if let Ok(w) = serde_json::from_slice::<bedrock::wire::ConverseResponse>(data) {
        let _ = bedrock::convert::response_from_wire(w, "id".into(), "t", 0);
    }
    let _ = bedrock::convert::error_from_response(429, Some("ThrottlingException"), data);
}

/// The AWS event-stream framing alone (prelude, headers, CRCs), split arbitrarily.
pub fn event_stream(data: &[u8]) {
    let mut reader = bedrock::stream::FrameReader::new();
    let mut out = Vec::new();
    for c in chunks(data) {
        if reader.push(c, &mut out).is_err() {
            return;
        }
    }
}

/// A Bedrock ConverseStream: event-stream frames, then the Converse event decoder.
pub fn bedrock_stream(data: &[u8]) {
    let mut reader = bedrock::stream::FrameReader::new();
    let mut dec = bedrock::stream::ConverseDecoder::new("id", "t");
    let mut messages = Vec::new();
    for c in chunks(data) {
        if reader.push(c, &mut messages).is_err() {
            return;
        }
        for m in messages.drain(..) {
            if dec.on_message(&m).is_err() {
                return;
            }
        }
    }
    let _ = dec.on_end();
}

/// The SSE bytes of `event: <name>\ndata: <json>\n\n` frames, for seeds.
pub fn sse_frames<'a>(frames: impl IntoIterator<Item = (Option<&'a str>, &'a str)>) -> Vec<u8> {
    let mut out = String::new();
    for (event, data) in frames {
        if let Some(e) = event {
            out.push_str("event: ");
            out.push_str(e);
            out.push('\n');
        }
        out.push_str("data: ");
        out.push_str(data);
        out.push_str("\n\n");
    }
    out.into_bytes()
}
