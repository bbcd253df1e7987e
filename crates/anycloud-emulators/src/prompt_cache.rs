//! The per-deployment prompt cache of the clouds with explicit caching (Anthropic, Claude
//! on Vertex, Bedrock Converse): a prefix is cached at each breakpoint the request marks,
//! keyed by the exact bytes of everything before it (tools, then system, then messages),
//! once it reaches the model's minimum length; a later request whose prefix up to one of
//! its breakpoints matches reads it and refreshes its TTL. Reads and writes come back in
//! the cloud's own usage fields (README "Prompt caching").
//!
//! Tokens are the emulator's usual ⌈chars/4⌉ per block, so a prefix's count is the sum of
//! its blocks' and the whole prompt is the sum of all of them.
//!
//! The clouds that cache by themselves (OpenAI, Azure OpenAI, Gemini) use the same map
//! through [`PromptCache::implicit`]: every prompt's prefixes at message boundaries are
//! cached once long enough, and a later prompt reads the longest one still live.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::reply::quarter_tokens;

/// Breakpoints one request may carry (Anthropic and Bedrock alike).
pub const MAX_BREAKPOINTS: usize = 4;

/// A cache entry's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    FiveMinutes,
    OneHour,
}

impl Ttl {
    /// `"5m"` / `"1h"`, the only values either cloud accepts.
    pub fn parse(s: &str) -> Option<Ttl> {
        match s {
            "5m" => Some(Ttl::FiveMinutes),
            "1h" => Some(Ttl::OneHour),
            _ => None,
        }
    }

    fn duration(self) -> Duration {
        match self {
            Ttl::FiveMinutes => Duration::from_secs(300),
            Ttl::OneHour => Duration::from_secs(3_600),
        }
    }
}

/// The prefix up to one breakpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breakpoint {
    /// Hash of the model and every block before the breakpoint.
    pub key: u64,
    /// Tokens of that prefix.
    pub tokens: u64,
    pub ttl: Ttl,
}

/// A request's blocks in cache order, hashed as they are added.
#[derive(Debug)]
pub struct Prefix {
    hasher: DefaultHasher,
    tokens: u64,
    pub breakpoints: Vec<Breakpoint>,
}

impl Prefix {
    pub fn new(model: &str) -> Prefix {
        let mut hasher = DefaultHasher::new();
        model.hash(&mut hasher);
        Prefix {
            hasher,
            tokens: 0,
            breakpoints: Vec::new(),
        }
    }

    /// Adds one block (`section` keeps a tool apart from a message with the same JSON).
    pub fn block(&mut self, section: &str, block: &Value) {
        let mut b = block.clone();
        if let Some(o) = b.as_object_mut() {
            o.remove("cache_control");
        }
        let text = match b.get("text").and_then(Value::as_str) {
            Some(t) => t.to_string(),
            None => b.to_string(),
        };
        (section, b.to_string()).hash(&mut self.hasher);
        self.tokens += quarter_tokens(text.chars().count());
    }

    /// Marks a breakpoint after the blocks added so far.
    pub fn mark(&mut self, ttl: Ttl) {
        self.breakpoints.push(Breakpoint {
            key: self.hasher.finish(),
            tokens: self.tokens,
            ttl,
        });
    }

    /// Tokens of the whole prompt.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }
}

/// What one request read from and wrote to the cache, in tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUsage {
    pub read: u64,
    pub write_5m: u64,
    pub write_1h: u64,
}

impl CacheUsage {
    pub fn write(&self) -> u64 {
        self.write_5m + self.write_1h
    }

    /// Anthropic's usage fields for a prompt of `total` tokens (`input_tokens` excludes the
    /// cache reads and writes).
    pub fn anthropic_usage(&self, total: u64, output: u64) -> Value {
        json!({"input_tokens": total - self.read - self.write(), "output_tokens": output,
            "cache_creation_input_tokens": self.write(), "cache_read_input_tokens": self.read,
            "cache_creation": {"ephemeral_5m_input_tokens": self.write_5m,
                               "ephemeral_1h_input_tokens": self.write_1h}})
    }
}

/// One emulator's cache: prefix key → expiry.
#[derive(Debug, Default)]
pub struct PromptCache {
    entries: Mutex<HashMap<u64, Instant>>,
}

impl PromptCache {
    /// The entries still live at `now` (expired ones dropped), locked.
    fn live(&self, now: Instant) -> std::sync::MutexGuard<'_, HashMap<u64, Instant>> {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.retain(|_, expires| *expires > now);
        entries
    }

    /// Reads the longest live prefix among `prefix`'s breakpoints (refreshing it) and writes
    /// every later breakpoint of at least `min_tokens`; tokens between two breakpoints are
    /// written with the TTL of the later one.
    pub fn account(&self, prefix: &Prefix, min_tokens: u64) -> CacheUsage {
        let now = Instant::now();
        let mut entries = self.live(now);
        let eligible: Vec<&Breakpoint> = prefix
            .breakpoints
            .iter()
            .filter(|b| b.tokens >= min_tokens)
            .collect();
        let hit = eligible.iter().rposition(|b| entries.contains_key(&b.key));
        let mut usage = CacheUsage::default();
        let mut end = 0;
        if let Some(i) = hit {
            let b = eligible[i];
            entries.insert(b.key, now + b.ttl.duration());
            usage.read = b.tokens;
            end = b.tokens;
        }
        let start = hit.map_or(0, |i| i + 1);
        for b in &eligible[start..] {
            let written = b.tokens.saturating_sub(end);
            match b.ttl {
                Ttl::FiveMinutes => usage.write_5m += written,
                Ttl::OneHour => usage.write_1h += written,
            }
            end = end.max(b.tokens);
            entries.insert(b.key, now + b.ttl.duration());
        }
        usage
    }

    /// Implicit caching: the tokens of the longest live prefix among `prefixes` (counted
    /// as `rule` says; 0 below its minimum), then every prefix of at least the minimum
    /// is cached for five minutes (refreshed by a hit), as the clouds keep them.
    pub fn implicit(&self, prefixes: &[Breakpoint], rule: Implicit) -> u64 {
        let now = Instant::now();
        let mut entries = self.live(now);
        let hit = prefixes
            .iter()
            .rev()
            .find(|b| b.tokens >= rule.min && entries.contains_key(&b.key))
            .map_or(0, |b| {
                rule.min + (b.tokens - rule.min) / rule.step.max(1) * rule.step.max(1)
            });
        for b in prefixes.iter().filter(|b| b.tokens >= rule.min) {
            entries.insert(b.key, now + b.ttl.duration());
        }
        hit
    }
}

/// What an implicit cache (OpenAI, Azure OpenAI, Gemini) may hit: the prompt's prefixes
/// at each message boundary (tools first, then messages in order), each as the hash of the
/// model, an optional routing key and everything before it, with its token count as
/// [`crate::reply::prompt_tokens`] counts (so the last prefix is the whole prompt).
pub fn implicit_prefixes(
    model: &str,
    key: Option<&str>,
    tools: &[Value],
    messages: &[Value],
) -> Vec<Breakpoint> {
    let mut hasher = DefaultHasher::new();
    ("implicit", model, key).hash(&mut hasher);
    Value::Array(tools.to_vec()).to_string().hash(&mut hasher);
    let mut tokens = crate::reply::schema_tokens(tools);
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        m.to_string().hash(&mut hasher);
        tokens += crate::reply::message_tokens(m);
        out.push(Breakpoint {
            key: hasher.finish(),
            tokens,
            ttl: Ttl::FiveMinutes,
        });
    }
    out
}

/// How an implicit cache counts a hit: from `min` tokens on, in steps of `step` (OpenAI:
/// 1024 and 128; Gemini: its model's minimum and 1).
#[derive(Debug, Clone, Copy)]
pub struct Implicit {
    pub min: u64,
    pub step: u64,
}

impl Implicit {
    /// OpenAI and Azure OpenAI: prompts from 1024 tokens, hits in 128-token increments.
    pub const OPENAI: Implicit = Implicit {
        min: 1_024,
        step: 128,
    };

    /// Gemini's implicit caching: 1024 tokens on Flash models, 4096 on Pro.
    pub fn gemini(model: &str) -> Implicit {
        Implicit {
            min: if model.contains("pro") { 4_096 } else { 1_024 },
            step: 1,
        }
    }
}

/// Claude's minimum cacheable prompt: 2048 tokens on Haiku, 1024 on the larger models.
pub fn claude_min_tokens(model: &str) -> u64 {
    if model.contains("haiku") {
        2_048
    } else {
        1_024
    }
}

/// Reads an Anthropic request's `cache_control` breakpoints (tools, then system, then
/// messages) as Anthropic validates them; `Err` is the message of its 400.
pub fn anthropic_prefix(
    model: &str,
    body: &serde_json::Map<String, Value>,
) -> Result<Prefix, String> {
    let mut p = Prefix::new(model);
    let mut last_ttl = Ttl::OneHour;
    let mut visit = |p: &mut Prefix, section: &str, block: &Value| -> Result<(), String> {
        p.block(section, block);
        let Some(cc) = block.get("cache_control") else {
            return Ok(());
        };
        if cc.get("type").and_then(Value::as_str) != Some("ephemeral") {
            return Err(format!(
                "{section}.cache_control.type: Input should be 'ephemeral'"
            ));
        }
        let ttl = match cc.get("ttl") {
            None => Ttl::FiveMinutes,
            Some(v) => v.as_str().and_then(Ttl::parse).ok_or_else(|| {
                format!("{section}.cache_control.ttl: Input should be '5m' or '1h'")
            })?,
        };
        if ttl == Ttl::OneHour && last_ttl == Ttl::FiveMinutes {
            return Err("a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block. Note that blocks are processed in the following order: `tools`, `system`, `messages`.".into());
        }
        last_ttl = ttl;
        p.mark(ttl);
        Ok(())
    };
    for t in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        visit(&mut p, "tools", t)?;
    }
    match body.get("system") {
        Some(Value::String(s)) => visit(&mut p, "system", &json!({"type": "text", "text": s}))?,
        Some(Value::Array(blocks)) => {
            for b in blocks {
                visit(&mut p, "system", b)?;
            }
        }
        _ => {}
    }
    for m in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        match m.get("content") {
            Some(Value::String(s)) => visit(&mut p, role, &json!({"type": "text", "text": s}))?,
            Some(Value::Array(blocks)) => {
                for b in blocks {
                    visit(&mut p, role, b)?;
                }
            }
            _ => {}
        }
    }
    if p.breakpoints.len() > MAX_BREAKPOINTS {
        return Err(format!(
            "A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {}.",
            p.breakpoints.len()
        ));
    }
    Ok(p)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn body(system: &str, turns: &[&str]) -> serde_json::Map<String, Value> {
        let messages: Vec<Value> = turns
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let role = if i % 2 == 0 { "user" } else { "assistant" };
                json!({"role": role, "content": [{"type": "text", "text": t}]})
            })
            .collect();
        let mut b = json!({
            "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
            "messages": messages,
        });
        b.as_object_mut().cloned().unwrap_or_default()
    }

    #[test]
    fn writes_once_then_reads_and_ignores_short_prefixes() {
        let cache = PromptCache::default();
        let long = "x".repeat(4_096 * 4);
        let b = body(&long, &["hi"]);
        let p = anthropic_prefix("claude-sonnet", &b).expect("valid");
        assert_eq!(p.breakpoints.len(), 1);
        let first = cache.account(&p, 1_024);
        assert_eq!((first.read, first.write_5m), (0, 4_096));
        let second = cache.account(&p, 1_024);
        assert_eq!((second.read, second.write()), (4_096, 0));
        // On Haiku (2048 minimum) a 1 500-token system prompt is never cached.
        let short = body(&"y".repeat(1_500 * 4), &["hi"]);
        let p = anthropic_prefix("claude-haiku", &short).expect("valid");
        let u = cache.account(&p, claude_min_tokens("claude-haiku"));
        assert_eq!(u, CacheUsage::default());
        assert_eq!(cache.account(&p, 2_048), CacheUsage::default());
    }

    #[test]
    fn implicit_hits_count_from_the_minimum_in_steps() {
        let cache = PromptCache::default();
        let turn = |n: usize| -> Vec<Value> {
            (0..n)
                .map(|i| {
                    json!({"role": if i % 2 == 0 {"user"} else {"assistant"},
                                "content": format!("{i}{}", "w".repeat(1_999))})
                })
                .collect()
        };
        // 504 tokens a message: a first prompt of three (1 512) is written, not read.
        let first = implicit_prefixes("gpt-4o", None, &[], &turn(3));
        assert_eq!(first.last().map(|b| b.tokens), Some(1_512));
        assert_eq!(cache.implicit(&first, Implicit::OPENAI), 0);
        // The next turn reads the first prompt whole, rounded down to 128s: 1 408.
        let second = implicit_prefixes("gpt-4o", None, &[], &turn(5));
        assert_eq!(cache.implicit(&second, Implicit::OPENAI), 1_408);
        // Another routing key is another cache; Gemini counts every token.
        let keyed = implicit_prefixes("gpt-4o", Some("k"), &[], &turn(5));
        assert_eq!(cache.implicit(&keyed, Implicit::OPENAI), 0);
        let g = implicit_prefixes("gemini-2.0-flash", None, &[], &turn(3));
        assert_eq!(cache.implicit(&g, Implicit::gemini("gemini-2.0-flash")), 0);
        let g = implicit_prefixes("gemini-2.0-flash", None, &[], &turn(5));
        assert_eq!(
            cache.implicit(&g, Implicit::gemini("gemini-2.0-flash")),
            1_512
        );
        // Short prompts never hit.
        let short = implicit_prefixes("gpt-4o", None, &[], &turn(1));
        cache.implicit(&short, Implicit::OPENAI);
        assert_eq!(cache.implicit(&short, Implicit::OPENAI), 0);
    }

    #[test]
    fn anthropic_rules_on_breakpoints_are_enforced() {
        let mut b = body("s", &["a"]);
        b["system"][0]["cache_control"] = json!({"type": "ephemeral", "ttl": "10m"});
        assert!(anthropic_prefix("m", &b)
            .unwrap_err()
            .contains("'5m' or '1h'"));
        let mut b = body("s", &["a", "b", "c"]);
        b["messages"][0]["content"][0]["cache_control"] = json!({"type": "ephemeral", "ttl": "1h"});
        assert!(anthropic_prefix("m", &b)
            .unwrap_err()
            .contains("must not come after"));
        let mut b = body("s", &["a", "b", "c", "d", "e"]);
        for i in 0..4 {
            b["messages"][i]["content"][0]["cache_control"] = json!({"type": "ephemeral"});
        }
        assert!(anthropic_prefix("m", &b).unwrap_err().contains("Found 5"));
    }
}
