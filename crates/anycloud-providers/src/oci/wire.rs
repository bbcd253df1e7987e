//! Serde types for OCI Generative AI inference JSON (API `20231130`, GENERIC
//! format; provider-wire-formats §6.3–6.6). Field names follow the OCI SDK
//! model classes (camelCase on the wire). Response types are lenient
//! (`default` everywhere) because §6 was compiled from SDK sources, not seen on
//! the wire; request types skip absent fields so the cloud's defaults apply.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /20231130/actions/chat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatDetails {
    pub compartment_id: String,
    pub serving_mode: ServingMode,
    pub chat_request: GenericChatRequest,
}

/// Which model serves the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "servingType", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServingMode {
    /// A shared, pay-per-token model by name (`meta.llama-3.3-70b-instruct`) or OCID.
    #[serde(rename_all = "camelCase")]
    OnDemand { model_id: String },
    /// A dedicated AI cluster endpoint (`ocid1.generativeaiendpoint...`).
    #[serde(rename_all = "camelCase")]
    Dedicated { endpoint_id: String },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenericChatRequest {
    /// Always `GENERIC` here.
    pub api_format: String,
    pub messages: Vec<MessageWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default)]
    pub is_stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoiceWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamOptions {
    pub is_include_usage: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageWire {
    /// `SYSTEM`, `USER`, `ASSISTANT`, `TOOL` (or `DEVELOPER`).
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ContentPart>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallWire>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContentPart {
    Text {
        text: String,
    },
    #[serde(rename_all = "camelCase")]
    Image {
        image_url: ImageUrl,
    },
    /// Parts this gateway does not produce (AUDIO, VIDEO, ...).
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// `https://...` or a `data:` URL.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An assistant tool call. Non-streaming responses carry `name`/`arguments`
/// flat (SDK `FunctionCall`); the streamed chunks seen by a third-party client
/// nest them under `function` (§6.4), so both are read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `FUNCTION`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// JSON text of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionWire>,
}

impl ToolCallWire {
    pub fn name(&self) -> Option<&str> {
        self.name
            .as_deref()
            .or_else(|| self.function.as_ref()?.name.as_deref())
    }

    pub fn arguments(&self) -> Option<&str> {
        self.arguments
            .as_deref()
            .or_else(|| self.function.as_ref()?.arguments.as_deref())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionWire {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    /// `FUNCTION`.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub parameters: Value,
}

/// `{"type":"AUTO"|"NONE"|"REQUIRED"}` or `{"type":"FUNCTION","name":...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolChoiceWire {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The chat response envelope.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChatResult {
    pub model_id: Option<String>,
    pub model_version: Option<String>,
    pub chat_response: GenericChatResponse,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GenericChatResponse {
    pub api_format: Option<String>,
    pub time_created: Option<String>,
    pub choices: Vec<ChoiceWire>,
    pub usage: Option<UsageWire>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChoiceWire {
    pub index: u32,
    pub finish_reason: Option<String>,
    pub message: Option<MessageWire>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UsageWire {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: Option<PromptDetails>,
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PromptDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CompletionDetails {
    pub reasoning_tokens: u64,
}

/// One streamed SSE `data:` object (§6.4, shapes seen by a third-party
/// client). An error mid-stream is assumed to use the OCI error shape.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StreamChunk {
    pub index: Option<u32>,
    /// An object for content chunks; a string when the chunk is an error.
    pub message: Option<Value>,
    pub finish_reason: Option<String>,
    pub usage: Option<UsageWire>,
    pub code: Option<String>,
}

/// `POST /20231130/actions/embedText`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbedTextDetails {
    pub compartment_id: String,
    pub serving_mode: ServingMode,
    pub inputs: Vec<String>,
    /// `NONE` (reject over-long inputs, as OpenAI does), `START` or `END`.
    pub truncate: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EmbedTextResult {
    pub id: Option<String>,
    pub embeddings: Vec<Vec<f32>>,
    pub model_id: Option<String>,
    pub model_version: Option<String>,
    /// Not in §6.5; read when a newer service version sends it.
    pub usage: Option<UsageWire>,
}

/// OCI's error body: `{"code": "TooManyRequests", "message": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct OciErrorWire {
    pub code: String,
    pub message: String,
}
