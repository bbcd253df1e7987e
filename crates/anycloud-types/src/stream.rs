//! Canonical stream events.
//!
//! A provider's stream decoder turns its cloud's chunks (SSE, AWS
//! event-stream, …) into these; an ingress encoder turns them into the
//! client's format. Tool calls are keyed by `index` (their position among the
//! response's tool calls), matching how OpenAI and Anthropic stream them.

use crate::{FinishReason, Usage};

#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The response has started; `id` and `model` as the cloud named them.
    Start { id: String, model: String },
    /// A piece of assistant text.
    TextDelta { text: String },
    /// A tool call begins. Always precedes its argument deltas.
    ToolCallStart {
        index: u32,
        id: String,
        name: String,
    },
    /// A piece of a tool call's JSON arguments.
    ToolCallDelta { index: u32, arguments: String },
    /// The model finished.
    Finish { reason: FinishReason },
    /// Usage for the whole response (may come after `Finish`).
    Usage(Usage),
}
