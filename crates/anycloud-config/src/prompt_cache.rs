//! A deployment's `prompt_cache` setting (README "Prompt caching") and the facts about
//! Claude's cache that both validation and the gateway's automatic breakpoints need:
//! which deployments serve Claude, and the shortest prefix Claude caches.

use anycloud_types::ProviderKind;
use serde::Deserialize;

/// `prompt_cache = "off" | "auto"` on a deployment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptCacheMode {
    /// Only the client's own breakpoints are sent (the default).
    #[default]
    Off,
    /// The gateway adds breakpoints after the tools, the system prompt and the stable
    /// history when each prefix is long enough to cache (Claude deployments only).
    Auto,
}

/// Whether a deployment on a `kind` cloud with this `target` is served by Claude, the one
/// model family whose cache the request marks: every Anthropic deployment, Claude on
/// Vertex (`claude…` or `anthropic/…` targets, as the Vertex provider tells them apart)
/// and Claude on Bedrock (`anthropic.claude…` model and inference-profile ids).
pub fn serves_claude(kind: ProviderKind, target: &str) -> bool {
    match kind {
        ProviderKind::Anthropic => true,
        ProviderKind::Vertex => target.starts_with("claude") || target.starts_with("anthropic/"),
        ProviderKind::Bedrock => target.contains("anthropic.claude"),
        _ => false,
    }
}

/// Claude's minimum cacheable prefix in tokens: 2048 on Haiku, 1024 on the larger models
/// (Anthropic's prompt-caching documentation; the same on Vertex and Bedrock). A shorter
/// prefix is neither written nor read, so a breakpoint before it would be wasted.
pub fn claude_min_cache_tokens(target: &str) -> u64 {
    if target.contains("haiku") {
        2_048
    } else {
        1_024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_is_told_by_cloud_and_target() {
        assert!(serves_claude(ProviderKind::Anthropic, "claude-sonnet-4-5"));
        assert!(serves_claude(
            ProviderKind::Vertex,
            "claude-sonnet-4@20250514"
        ));
        assert!(serves_claude(ProviderKind::Vertex, "anthropic/x"));
        assert!(!serves_claude(ProviderKind::Vertex, "gemini-2.5-pro"));
        assert!(serves_claude(
            ProviderKind::Bedrock,
            "eu.anthropic.claude-sonnet-4-20250514-v1:0"
        ));
        assert!(!serves_claude(
            ProviderKind::Bedrock,
            "amazon.nova-pro-v1:0"
        ));
        assert!(!serves_claude(ProviderKind::AzureOpenai, "claude"));
        assert_eq!(claude_min_cache_tokens("claude-haiku-4-5"), 2_048);
        assert_eq!(claude_min_cache_tokens("claude-opus-4-1"), 1_024);
    }
}
