//! Canonical chat request and response.
//!
//! Shaped to carry everything the clouds in the contract can express: system
//! prompts, multi-turn messages with text / image / tool-use / tool-result
//! blocks, tools and tool choice, structured output, sampling parameters.

use crate::{Capability, Usage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// System instructions. Providers with a top-level system field (Anthropic,
    /// Bedrock, Vertex) lift these out of the message list.
    System,
    /// OpenAI's newer name for system on reasoning models; kept distinct so an
    /// OpenAI-to-OpenAI hop is faithful.
    Developer,
    User,
    Assistant,
    /// A message carrying tool results (OpenAI `role: tool`). Its content is
    /// [`ContentBlock::ToolResult`] blocks.
    Tool,
}

impl Role {
    pub fn is_system(self) -> bool {
        matches!(self, Role::System | Role::Developer)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageSource {
    /// An `https://` URL the cloud fetches itself.
    Url { url: String },
    /// Inline bytes, base64-encoded, with their media type (`image/png`).
    Base64 { media_type: String, data: String },
}

impl ImageSource {
    /// Parses an OpenAI `image_url.url`, which is either a URL or a data URL.
    pub fn from_url_or_data(url: &str) -> ImageSource {
        if let Some(rest) = url.strip_prefix("data:") {
            if let Some((meta, data)) = rest.split_once(',') {
                if let Some(media_type) = meta.strip_suffix(";base64") {
                    return ImageSource::Base64 {
                        media_type: media_type.to_string(),
                        data: data.to_string(),
                    };
                }
            }
        }
        ImageSource::Url {
            url: url.to_string(),
        }
    }

    /// The OpenAI form: a URL or a `data:` URL.
    pub fn to_url_or_data(&self) -> String {
        match self {
            ImageSource::Url { url } => url.clone(),
            ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
    },
    Image {
        source: ImageSource,
        /// OpenAI's `detail` hint (`auto|low|high`), kept for a faithful hop.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// A tool call made by the assistant.
    ToolUse {
        id: String,
        name: String,
        /// The arguments as JSON text, exactly as the model produced them
        /// (OpenAI sends a string that may not even parse; clouds that want
        /// an object parse it when translating).
        arguments: String,
    },
    /// The result of a tool call, sent back by the client.
    ToolResult {
        tool_use_id: String,
        /// Text and image blocks only.
        content: Vec<ContentBlock>,
        #[serde(default)]
        is_error: bool,
    },
}

impl ContentBlock {
    pub fn text(text: impl Into<String>) -> ContentBlock {
        ContentBlock::Text { text: text.into() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentBlock>,
    /// OpenAI's optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    /// All text blocks joined, for clouds and estimators that want plain text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for block in &self.content {
            if let ContentBlock::Text { text } = block {
                out.push_str(text);
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "name", rename_all = "snake_case")]
pub enum ToolChoice {
    Auto,
    None,
    /// The model must call some tool (OpenAI `required`, Anthropic `any`).
    Required,
    /// The model must call this tool.
    Tool(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        schema: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
}

/// Sampling and length parameters. `None` means "the cloud's default".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// Maximum output tokens (OpenAI `max_completion_tokens` / `max_tokens`,
    /// Anthropic `max_tokens`, Bedrock `maxTokens`, Gemini `maxOutputTokens`).
    pub max_tokens: Option<u32>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    /// Anthropic / Gemini `top_k`.
    pub top_k: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The public model name the client asked for (routing resolves it).
    pub model: String,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub response_format: Option<ResponseFormat>,
    pub params: SamplingParams,
    /// End-user id, passed through where the cloud has a field for it.
    pub user: Option<String>,
    pub stream: bool,
    /// Prompt-caching hints: explicit breakpoints and OpenAI's cache key.
    pub cache: PromptCache,
}

/// Prompt-caching hints (README "Prompt caching"). Clouds with explicit caching get the
/// breakpoints in their own dialect; the others get nothing they would reject.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromptCache {
    /// At most four on Anthropic and Bedrock, in prompt order (tools, system, messages).
    pub breakpoints: Vec<CacheBreakpoint>,
    /// OpenAI's `prompt_cache_key`: requests sharing it share a cache (OpenAI, Azure).
    pub key: Option<String>,
}

/// The end of a prefix to cache: everything up to and including `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBreakpoint {
    pub at: CacheAt,
    pub ttl: CacheTtl,
}

/// A place in the canonical request. A system prompt's breakpoint is on a block of its
/// system message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheAt {
    /// After `tools[i]`.
    Tool(usize),
    /// After `messages[message].content[block]`.
    Block { message: usize, block: usize },
}

/// How long a cached prefix lives: five minutes (the default) or an hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CacheTtl {
    #[default]
    FiveMinutes,
    OneHour,
}

impl CacheTtl {
    /// The wire value (`"5m"` / `"1h"`) both Anthropic and Bedrock use.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheTtl::FiveMinutes => "5m",
            CacheTtl::OneHour => "1h",
        }
    }

    pub fn parse(s: &str) -> Option<CacheTtl> {
        match s {
            "5m" => Some(CacheTtl::FiveMinutes),
            "1h" => Some(CacheTtl::OneHour),
            _ => None,
        }
    }
}

impl PromptCache {
    /// The TTL of the breakpoint on `messages[message].content[block]`, if any.
    pub fn on_block(&self, message: usize, block: usize) -> Option<CacheTtl> {
        self.breakpoints
            .iter()
            .find(|b| b.at == CacheAt::Block { message, block })
            .map(|b| b.ttl)
    }

    /// The TTL of the breakpoint after `tools[i]`, if any.
    pub fn on_tool(&self, i: usize) -> Option<CacheTtl> {
        self.breakpoints
            .iter()
            .find(|b| b.at == CacheAt::Tool(i))
            .map(|b| b.ttl)
    }

    /// The TTL of a breakpoint on any block of `messages[message]`.
    pub fn on_message(&self, message: usize) -> Option<CacheTtl> {
        self.breakpoints
            .iter()
            .find(|b| matches!(b.at, CacheAt::Block { message: m, .. } if m == message))
            .map(|b| b.ttl)
    }
}

impl ChatRequest {
    /// A request for `model` with these messages and nothing else set.
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            model: model.into(),
            messages,
            tools: Vec::new(),
            tool_choice: None,
            parallel_tool_calls: None,
            response_format: None,
            params: SamplingParams::default(),
            user: None,
            stream: false,
            cache: PromptCache::default(),
        }
    }

    /// The capabilities a deployment needs to serve this request.
    pub fn needs(&self) -> Vec<Capability> {
        let mut needs = vec![Capability::Chat];
        if self.stream {
            needs.push(Capability::Stream);
        }
        if !self.tools.is_empty() || self.has_block(|b| matches!(b, ContentBlock::ToolUse { .. })) {
            needs.push(Capability::Tools);
        }
        if self.has_block(|b| matches!(b, ContentBlock::Image { .. })) {
            needs.push(Capability::Vision);
        }
        if matches!(
            self.response_format,
            Some(ResponseFormat::JsonSchema { .. })
        ) {
            needs.push(Capability::JsonSchema);
        }
        needs
    }

    fn has_block(&self, pred: impl Fn(&ContentBlock) -> bool) -> bool {
        self.messages.iter().any(|m| {
            m.content.iter().any(|b| {
                pred(b)
                    || matches!(b, ContentBlock::ToolResult { content, .. } if content.iter().any(&pred))
            })
        })
    }

    /// A cheap prompt-size estimate (about four characters a token), used for
    /// context-length checks and budget reservations before the cloud counts.
    pub fn estimate_input_tokens(&self) -> u64 {
        let mut chars = 0usize;
        for m in &self.messages {
            chars += 16;
            for b in &m.content {
                chars += match b {
                    ContentBlock::Text { text } => text.len(),
                    ContentBlock::Image { .. } => 3000,
                    ContentBlock::ToolUse {
                        name, arguments, ..
                    } => name.len() + arguments.len(),
                    ContentBlock::ToolResult { content, .. } => content
                        .iter()
                        .map(|c| match c {
                            ContentBlock::Text { text } => text.len(),
                            _ => 3000,
                        })
                        .sum(),
                };
            }
        }
        for t in &self.tools {
            chars += t.name.len() + t.description.as_ref().map_or(0, |d| d.len());
            chars += t.parameters.to_string().len();
        }
        (chars as u64).div_ceil(4)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    /// The cloud stopped for a reason with no common name (kept for metrics).
    Other,
}

impl FinishReason {
    /// The OpenAI `finish_reason` string.
    pub fn as_openai(self) -> &'static str {
        match self {
            FinishReason::Stop | FinishReason::Other => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
        }
    }

    pub fn from_openai(s: &str) -> FinishReason {
        match s {
            "stop" => FinishReason::Stop,
            "length" => FinishReason::Length,
            "tool_calls" | "function_call" => FinishReason::ToolCalls,
            "content_filter" => FinishReason::ContentFilter,
            _ => FinishReason::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The cloud's response id where it gave one.
    pub id: String,
    /// The model as the cloud named it.
    pub model: String,
    /// Unix seconds.
    pub created: i64,
    /// Text, refusal-free output: text blocks and tool-use blocks in order.
    pub content: Vec<ContentBlock>,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    /// OpenAI `system_fingerprint`, passed through when present.
    pub system_fingerprint: Option<String>,
}

impl ChatResponse {
    pub fn text(&self) -> Option<String> {
        let mut out: Option<String> = None;
        for b in &self.content {
            if let ContentBlock::Text { text } = b {
                out.get_or_insert_with(String::new).push_str(text);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages,
            tools: vec![],
            tool_choice: None,
            parallel_tool_calls: None,
            response_format: None,
            params: SamplingParams::default(),
            user: None,
            stream: false,
            cache: PromptCache::default(),
        }
    }

    #[test]
    fn needs_vision_when_an_image_is_present() {
        let r = req(vec![Message {
            role: Role::User,
            content: vec![ContentBlock::Image {
                source: ImageSource::from_url_or_data("data:image/png;base64,AAAA"),
                detail: None,
            }],
            name: None,
        }]);
        assert!(r.needs().contains(&Capability::Vision));
        assert!(!r.needs().contains(&Capability::Tools));
    }

    #[test]
    fn data_urls_round_trip() {
        let s = ImageSource::from_url_or_data("data:image/jpeg;base64,QUJD");
        assert_eq!(
            s,
            ImageSource::Base64 {
                media_type: "image/jpeg".into(),
                data: "QUJD".into()
            }
        );
        assert_eq!(s.to_url_or_data(), "data:image/jpeg;base64,QUJD");
        let u = ImageSource::from_url_or_data("https://x/y.png");
        assert_eq!(u.to_url_or_data(), "https://x/y.png");
    }
}
