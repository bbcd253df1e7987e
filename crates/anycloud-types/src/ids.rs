//! Identifier newtypes and closed enums used as metric labels and config keys.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The kind of upstream a cloud speaks. Closed set: metric labels come from
/// [`ProviderKind::as_str`], never from free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Openai,
    OpenaiCompatible,
    AzureOpenai,
    Bedrock,
    Vertex,
    Anthropic,
    Oci,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 7] = [
        ProviderKind::Openai,
        ProviderKind::OpenaiCompatible,
        ProviderKind::AzureOpenai,
        ProviderKind::Bedrock,
        ProviderKind::Vertex,
        ProviderKind::Anthropic,
        ProviderKind::Oci,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::OpenaiCompatible => "openai_compatible",
            ProviderKind::AzureOpenai => "azure_openai",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::Vertex => "vertex",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Oci => "oci",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A capability a deployment offers and a request may need. Closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Chat,
    Stream,
    Tools,
    Vision,
    JsonSchema,
    Embeddings,
    /// Accepts a final assistant message and continues it (README "Streams that survive
    /// a cloud failing"): what a resumed stream's continuation needs.
    Prefill,
}

impl Capability {
    pub const ALL: [Capability; 7] = [
        Capability::Chat,
        Capability::Stream,
        Capability::Tools,
        Capability::Vision,
        Capability::JsonSchema,
        Capability::Embeddings,
        Capability::Prefill,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Chat => "chat",
            Capability::Stream => "stream",
            Capability::Tools => "tools",
            Capability::Vision => "vision",
            Capability::JsonSchema => "json_schema",
            Capability::Embeddings => "embeddings",
            Capability::Prefill => "prefill",
        }
    }

    pub fn parse(s: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which client-facing API a request came in through (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IngressApi {
    ChatCompletions,
    Embeddings,
    Messages,
    Responses,
    Models,
}

impl IngressApi {
    pub fn as_str(self) -> &'static str {
        match self {
            IngressApi::ChatCompletions => "chat_completions",
            IngressApi::Embeddings => "embeddings",
            IngressApi::Messages => "messages",
            IngressApi::Responses => "responses",
            IngressApi::Models => "models",
        }
    }
}
