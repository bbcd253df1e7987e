//! Token usage as a cloud reports it.

use serde::{Deserialize, Serialize};

/// Tokens for one attempt. `input_tokens` includes `cached_input_tokens` and
/// `cache_write_tokens` (OpenAI's convention); providers whose clouds report them
/// separately (Anthropic, Bedrock) add them up when translating. Each kind is priced on
/// its own (README "Prompt caching").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Prompt tokens served from the cloud's cache (a subset of `input_tokens`).
    pub cached_input_tokens: u64,
    /// Prompt tokens written to the cloud's cache (Anthropic/Bedrock), a subset
    /// of `input_tokens`; all TTLs together.
    pub cache_write_tokens: u64,
    /// The part of `cache_write_tokens` written with the one-hour TTL (Anthropic's
    /// `ephemeral_1h_input_tokens`); the rest were five-minute writes.
    #[serde(default)]
    pub cache_write_1h_tokens: u64,
    /// Reasoning tokens (a subset of `output_tokens`).
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        // Saturating: the counts come from a cloud, which may send anything.
        self.input_tokens.saturating_add(self.output_tokens)
    }
}
