//! Serde types for Bedrock Runtime's Converse / ConverseStream JSON and the Titan
//! embeddings body (provider-wire-formats §3.3–§3.5, §3.9).
//!
//! Our own types rather than the SDK's: the SDK's model types are not serde types, and
//! the gateway only needs the fields it maps. Unknown response fields (`metrics`, `trace`,
//! the stream's `p` padding) are ignored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest {
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    /// Model-specific extras (`top_k` for Claude).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<Value>,
}

/// A `system` entry: text, or a `cachePoint` ending the cached prefix before it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum SystemBlock {
    Text(String),
    CachePoint(CachePoint),
}

/// `{"type": "default"}`: the end of a prefix to cache (README "Prompt caching"). Bedrock
/// caches for five minutes; the gateway sends no TTL.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CachePoint {
    #[serde(rename = "type")]
    pub kind: String,
}

impl CachePoint {
    pub fn new() -> CachePoint {
        CachePoint {
            kind: "default".into(),
        }
    }
}

impl Default for CachePoint {
    fn default() -> Self {
        CachePoint::new()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    /// `user` or `assistant`.
    pub role: String,
    pub content: Vec<ContentBlock>,
}

/// One content block: a union with exactly one member set on the wire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlock {
    Text(String),
    Image(ImageBlock),
    ToolUse(ToolUseBlock),
    ToolResult(ToolResultBlock),
    Json(Value),
    CachePoint(CachePoint),
    /// Blocks the gateway does not map (reasoning, documents, …) are kept opaque.
    #[serde(untagged)]
    Other(Value),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageBlock {
    /// png | jpeg | gif | webp
    pub format: String,
    pub source: ImageSource,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageSource {
    /// Base64 on the JSON wire.
    pub bytes: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlock {
    pub tool_use_id: String,
    pub name: String,
    pub input: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ToolResultBlock {
    pub tool_use_id: String,
    pub content: Vec<ContentBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    pub tools: Vec<ToolEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum ToolEntry {
    ToolSpec(ToolSpec),
    CachePoint(CachePoint),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: InputSchema,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputSchema {
    pub json: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    pub output: Output,
    #[serde(default)]
    pub stop_reason: String,
    #[serde(default)]
    pub usage: Option<TokenUsage>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Output {
    pub message: Option<Message>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    #[serde(default)]
    pub cache_write_input_tokens: u64,
}

// ---- ConverseStream event payloads (the member structure, not wrapped in its name) ----

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStart {
    #[serde(default)]
    pub content_block_index: u32,
    pub start: Option<StartUnion>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartUnion {
    pub tool_use: Option<ToolUseStart>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseStart {
    pub tool_use_id: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockDelta {
    #[serde(default)]
    pub content_block_index: u32,
    pub delta: Option<DeltaUnion>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaUnion {
    pub text: Option<String>,
    pub tool_use: Option<ToolUseDelta>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ToolUseDelta {
    /// A fragment of the input's JSON text.
    #[serde(default)]
    pub input: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStop {
    #[serde(default)]
    pub stop_reason: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub usage: Option<TokenUsage>,
}

/// `{"message": "..."}` (sometimes `Message`) in error bodies and exception frames.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default, alias = "Message")]
    pub message: Option<String>,
}

// ---- Titan Text Embeddings (InvokeModel) ----

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TitanEmbedRequest {
    pub input_text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanEmbedResponse {
    pub embedding: Vec<f32>,
    #[serde(default)]
    pub input_text_token_count: u64,
}
