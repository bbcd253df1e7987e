//! Converse prompt caching: `cachePoint` blocks in `toolConfig.tools`, `system` and message
//! content mark the end of a cached prefix (tools, then system, then messages), as Bedrock
//! places and checks them; reads and writes are reported in `cacheReadInputTokens` /
//! `cacheWriteInputTokens` (README "Prompt caching").

use serde_json::{json, Map, Value};

use super::converse::Invalid;
use crate::prompt_cache::{self, CacheUsage, Prefix, Ttl, MAX_BREAKPOINTS};

/// Models that cache on Bedrock: Claude and Nova.
fn caches(model: &str) -> bool {
    model.contains("anthropic.claude") || model.contains("amazon.nova")
}

/// Bedrock's minimum prefix: Claude's own, 1K on Nova.
fn min_tokens(model: &str) -> u64 {
    if model.contains("amazon.nova") {
        1_024
    } else {
        prompt_cache::claude_min_tokens(model)
    }
}

/// One list (`toolConfig.tools`, `system`, a message's `content`) into the prefix. A
/// `cachePoint` must follow a block of its own list and not another `cachePoint`.
fn list(p: &mut Prefix, at: &str, section: &str, blocks: &[Value]) -> Result<(), Invalid> {
    let mut after_block = false;
    for b in blocks {
        let Some(cp) = b.get("cachePoint") else {
            p.block(section, b);
            after_block = true;
            continue;
        };
        if !after_block {
            return Err(format!("The cachePoint in {at} must follow a content block; a cachePoint cannot start a list or follow another cachePoint."));
        }
        if cp.get("type").and_then(Value::as_str) != Some("default") {
            return Err(format!(
                "1 validation error detected: Value at '{at}.cachePoint.type' failed to satisfy constraint: Member must satisfy enum value set: [default]"
            ));
        }
        let ttl = match cp.get("ttl") {
            None => Ttl::FiveMinutes,
            Some(v) => v.as_str().and_then(Ttl::parse).ok_or_else(|| {
                format!("1 validation error detected: Value at '{at}.cachePoint.ttl' failed to satisfy constraint: Member must satisfy enum value set: [5m, 1h]")
            })?,
        };
        p.mark(ttl);
        after_block = false;
    }
    Ok(())
}

/// The request's cache prefix; `Err` is Bedrock's ValidationException for a misplaced,
/// malformed or unsupported `cachePoint`.
pub(crate) fn prefix(model: &str, body: &Map<String, Value>) -> Result<Prefix, Invalid> {
    let mut p = Prefix::new(model);
    let empty = Vec::new();
    let tools = body
        .get("toolConfig")
        .and_then(|t| t.get("tools"))
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    list(&mut p, "toolConfig.tools", "tools", tools)?;
    let system = body
        .get("system")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    list(&mut p, "system", "system", system)?;
    for (i, m) in body
        .get("messages")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
        .iter()
        .enumerate()
    {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let content = m.get("content").and_then(Value::as_array).unwrap_or(&empty);
        list(&mut p, &format!("messages.{i}.content"), role, content)?;
    }
    if p.breakpoints.is_empty() {
        return Ok(p);
    }
    if !caches(model) {
        return Err(format!(
            "You invoked an unsupported model or your request did not allow prompt caching. {model} does not support cachePoint."
        ));
    }
    if p.breakpoints.len() > MAX_BREAKPOINTS {
        return Err(format!(
            "The number of cachePoint blocks ({}) exceeds the maximum of {MAX_BREAKPOINTS}.",
            p.breakpoints.len()
        ));
    }
    Ok(p)
}

/// Replaces `usage` (Converse's) with the cache's reads and writes when the request marked
/// breakpoints: `inputTokens` excludes both, `totalTokens` includes them.
pub(crate) fn apply(cache: &prompt_cache::PromptCache, p: &Prefix, model: &str, usage: &mut Value) {
    if p.breakpoints.is_empty() {
        return;
    }
    let c: CacheUsage = cache.account(p, min_tokens(model));
    let total = p.tokens();
    let output = usage["outputTokens"].as_u64().unwrap_or(0);
    *usage = json!({"inputTokens": total - c.read - c.write(), "outputTokens": output,
        "totalTokens": total + output, "cacheReadInputTokens": c.read,
        "cacheWriteInputTokens": c.write()});
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn misplaced_cache_points_are_rejected_like_bedrock() {
        let claude = "anthropic.claude-3-5-sonnet-20240620-v1:0";
        let first = body(
            json!({"messages": [{"role": "user", "content": [{"cachePoint": {"type": "default"}}, {"text": "hi"}]}]}),
        );
        assert!(prefix(claude, &first)
            .unwrap_err()
            .contains("must follow a content block"));
        let twice = body(
            json!({"system": [{"text": "s"}, {"cachePoint": {"type": "default"}}, {"cachePoint": {"type": "default"}}],
            "messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
        );
        assert!(prefix(claude, &twice).is_err());
        let kind = body(
            json!({"system": [{"text": "s"}, {"cachePoint": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
        );
        assert!(prefix(claude, &kind).unwrap_err().contains("[default]"));
        let ok = body(
            json!({"system": [{"text": "s"}, {"cachePoint": {"type": "default"}}],
            "messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
        );
        assert_eq!(prefix(claude, &ok).map(|p| p.breakpoints.len()), Ok(1));
        assert!(prefix("meta.llama3-70b-instruct-v1:0", &ok)
            .unwrap_err()
            .contains("does not support cachePoint"));
    }

    #[test]
    fn usage_reports_writes_then_reads() {
        let claude = "anthropic.claude-3-5-sonnet-20240620-v1:0";
        let cache = prompt_cache::PromptCache::default();
        let b = body(
            json!({"system": [{"text": "s".repeat(8_000)}, {"cachePoint": {"type": "default"}}],
            "messages": [{"role": "user", "content": [{"text": "hello"}]}]}),
        );
        let p = prefix(claude, &b).expect("valid");
        let mut u = json!({"inputTokens": 1, "outputTokens": 3, "totalTokens": 4});
        apply(&cache, &p, claude, &mut u);
        assert_eq!(u["cacheWriteInputTokens"], 2_000);
        assert_eq!(u["cacheReadInputTokens"], 0);
        assert_eq!(u["inputTokens"], 2);
        let mut u = json!({"inputTokens": 1, "outputTokens": 3, "totalTokens": 4});
        apply(&cache, &p, claude, &mut u);
        assert_eq!(
            (
                u["cacheReadInputTokens"].as_u64(),
                u["cacheWriteInputTokens"].as_u64()
            ),
            (Some(2_000), Some(0))
        );
        assert_eq!(u["totalTokens"], 2_005);
    }
}
