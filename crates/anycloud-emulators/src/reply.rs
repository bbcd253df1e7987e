//! Deterministic reply generation shared by every emulated cloud.
//!
//! Nothing here is random: the same request to the same emulator gives the same text,
//! tool call, token counts and embedding vector, so tests can assert on exact values.
//!
//! - Text: `Hello from {cloud} ({model}). You said: {last user text, max 200 chars}`.
//! - Tool call (request has `tools`, `tool_choice` is not `"none"`, last message is `user`):
//!   the forced tool or the first one; arguments built from its JSON schema.
//! - Last message is a `tool` result: `Tool result received from {cloud}: {content}`.
//! - JSON mode: `{"cloud":"{cloud}","answer":"{text}"}`.
//! - Story (last user text starts with [`STORY_PREFIX`]): a text of [`STORY_WORDS`] words
//!   derived from the prompt alone, the same from every emulated cloud and model, so a
//!   stream continued on another cloud can be compared byte for byte with one that was not.
//! - Prefill (the emulator's model continues a final assistant message, `prefill` below):
//!   the reply to the conversation without that message; when the message is a prefix of
//!   it, only the rest.
//! - Token counts: prompt = Σ(4 + ⌈chars/4⌉) + ⌈tool schema chars/4⌉; completion = words
//!   (min 1), or ⌈argument chars/4⌉ for a tool call. `max_tokens` truncates (finish `length`).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Longest echo of the user's text in a reply, in characters.
pub const MAX_ECHO_CHARS: usize = 200;

/// A user text starting with this gets a story: a long, cloud-independent reply.
pub const STORY_PREFIX: &str = "story:";

/// Words in a story reply.
pub const STORY_WORDS: usize = 48;

/// A generated tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// JSON text of the arguments object.
    pub arguments: String,
}

/// What the assistant says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    Text(String),
    Tool(ToolCall),
}

/// A complete generated reply with its accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub body: ReplyBody,
    /// `stop`, `length` or `tool_calls`.
    pub finish_reason: &'static str,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens read from the cloud's implicit cache (OpenAI, Azure OpenAI, Gemini:
    /// [`crate::prompt_cache::PromptCache::implicit`]); 0 until the cloud accounts them.
    pub cached_tokens: u64,
}

/// The parts of a (validated) chat request that decide the reply.
#[derive(Debug, Clone, Copy)]
pub struct ChatInput<'a> {
    pub cloud: &'a str,
    pub model: &'a str,
    pub messages: &'a [Value],
    pub tools: &'a [Value],
    pub tool_choice: Option<&'a Value>,
    pub max_tokens: Option<u64>,
    pub json_mode: bool,
    /// The model continues a final assistant message (Anthropic, Claude on Bedrock and
    /// Vertex, Gemini) rather than answering after it (OpenAI, Azure, OCI).
    pub prefill: bool,
}

/// The text of a message `content`: a string, or the `text` parts of an array joined by spaces.
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// ⌈n/4⌉ as a token count.
pub fn quarter_tokens(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX)
}

/// Whitespace-separated words, at least 1.
pub fn word_tokens(text: &str) -> u64 {
    u64::try_from(text.split_whitespace().count().max(1)).unwrap_or(u64::MAX)
}

/// Prompt tokens of a chat request.
pub fn prompt_tokens(messages: &[Value], tools: &[Value]) -> u64 {
    let msgs: u64 = messages.iter().map(message_tokens).sum();
    msgs + schema_tokens(tools)
}

/// One message's share of [`prompt_tokens`].
pub fn message_tokens(m: &Value) -> u64 {
    let mut chars = content_text(m.get("content")).chars().count();
    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
        chars += calls
            .iter()
            .filter_map(|c| c.pointer("/function/arguments").and_then(Value::as_str))
            .map(|a| a.chars().count())
            .sum::<usize>();
    }
    4 + quarter_tokens(chars)
}

/// The tools' share of [`prompt_tokens`].
pub fn schema_tokens(tools: &[Value]) -> u64 {
    if tools.is_empty() {
        0
    } else {
        quarter_tokens(Value::Array(tools.to_vec()).to_string().chars().count())
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let hex = hex::encode(h.finalize());
    hex.chars().take(24).collect()
}

/// The tool the reply should call, if any.
fn chosen_tool<'a>(input: &ChatInput<'a>) -> Option<&'a Value> {
    if input.tools.is_empty() {
        return None;
    }
    let last_role = input
        .messages
        .last()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str);
    if last_role != Some("user") {
        return None;
    }
    match input.tool_choice {
        Some(Value::String(s)) if s == "none" => None,
        Some(Value::Object(o)) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)?;
            input
                .tools
                .iter()
                .find(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(name))
        }
        _ => input.tools.first(),
    }
}

/// The final assistant message's text, when the request ends with one.
fn final_assistant(messages: &[Value]) -> Option<String> {
    let last = messages.last()?;
    (last.get("role").and_then(Value::as_str) == Some("assistant"))
        .then(|| content_text(last.get("content")))
}

/// A story of [`STORY_WORDS`] words picked by the prompt's hash: sentences of eight
/// words, each capitalised and ending with a full stop.
pub fn story(prompt: &str) -> String {
    const WORDS: [&str; 32] = [
        "river", "lantern", "quietly", "mountain", "copper", "whisper", "harbor", "meadow",
        "ancient", "signal", "winter", "orchard", "bright", "careful", "engine", "shadow",
        "garden", "distant", "thunder", "pocket", "silver", "window", "morning", "bridge",
        "patient", "forest", "hollow", "ember", "compass", "velvet", "falcon", "tide",
    ];
    let digest = Sha256::digest(prompt.as_bytes());
    let mut out = String::new();
    for i in 0..STORY_WORDS {
        let b = digest[i % digest.len()].wrapping_add(u8::try_from(i / digest.len()).unwrap_or(0));
        let w = WORDS[usize::from(b) % WORDS.len()];
        if i % 8 == 0 {
            if i > 0 {
                out.push(' ');
            }
            let mut c = w.chars();
            if let Some(f) = c.next() {
                out.extend(f.to_uppercase());
                out.push_str(c.as_str());
            }
        } else {
            out.push(' ');
            out.push_str(w);
        }
        if i % 8 == 7 {
            out.push('.');
        }
    }
    out
}

/// Generate the reply for a chat request.
pub fn chat_reply(input: &ChatInput<'_>) -> Reply {
    if let (true, Some(prefill)) = (input.prefill, final_assistant(input.messages)) {
        let n = input.messages.len().saturating_sub(1);
        let whole = chat_reply(&ChatInput {
            messages: &input.messages[..n],
            max_tokens: None,
            ..*input
        });
        if let ReplyBody::Text(t) = &whole.body {
            let rest = t.strip_prefix(prefill.as_str()).unwrap_or(t);
            return text_reply(
                rest.to_string(),
                prompt_tokens(input.messages, input.tools),
                input.max_tokens,
            );
        }
        return whole;
    }
    let prompt = prompt_tokens(input.messages, input.tools);
    let last_user = input
        .messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default();

    if let Some(tool) = chosen_tool(input) {
        let name = tool
            .pointer("/function/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let params = tool
            .pointer("/function/parameters")
            .cloned()
            .unwrap_or(Value::Null);
        let mut arguments = args_from_schema(&params).to_string();
        let id = format!(
            "call_{}",
            short_hash(&[input.cloud, input.model, name, &arguments, &last_user])
        );
        let mut completion = quarter_tokens(arguments.chars().count()).max(1);
        let mut finish = "tool_calls";
        if let Some(max) = input.max_tokens {
            if max < completion {
                let keep = usize::try_from(max.saturating_mul(4)).unwrap_or(usize::MAX);
                arguments = truncate_chars(&arguments, keep);
                completion = max;
                finish = "length";
            }
        }
        return Reply {
            body: ReplyBody::Tool(ToolCall {
                id,
                name: name.to_string(),
                arguments,
            }),
            finish_reason: finish,
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_tokens: 0,
        };
    }

    let last = input.messages.last();
    let text = if last.and_then(|m| m.get("role")).and_then(Value::as_str) == Some("tool") {
        format!(
            "Tool result received from {}: {}",
            input.cloud,
            content_text(last.and_then(|m| m.get("content")))
        )
    } else if let Some(topic) = last_user.strip_prefix(STORY_PREFIX) {
        story(topic)
    } else {
        format!(
            "Hello from {} ({}). You said: {}",
            input.cloud,
            input.model,
            truncate_chars(&last_user, MAX_ECHO_CHARS)
        )
    };
    let text = if input.json_mode {
        format!(
            "{{\"cloud\":{},\"answer\":{}}}",
            Value::String(input.cloud.to_string()),
            Value::String(text)
        )
    } else {
        text
    };
    text_reply(text, prompt, input.max_tokens)
}

/// A text reply, cut to `max_tokens` words (finish `length`) when it is longer.
fn text_reply(mut text: String, prompt: u64, max_tokens: Option<u64>) -> Reply {
    let mut completion = word_tokens(&text);
    let mut finish = "stop";
    if let Some(max) = max_tokens {
        if max < completion {
            let keep = usize::try_from(max).unwrap_or(usize::MAX);
            text = text
                .split_whitespace()
                .take(keep)
                .collect::<Vec<_>>()
                .join(" ");
            completion = max;
            finish = "length";
        }
    }
    Reply {
        body: ReplyBody::Text(text),
        finish_reason: finish,
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: 0,
    }
}

/// Arguments object built from a JSON schema: for each property in `required` (or every
/// property when there is no `required`): string → `"Oslo"` if the name contains "city",
/// else `"example"`; integer → 1; number → 1.5; boolean → true; array → []; object → {}
/// (filled recursively only when the nested schema itself has `required` properties);
/// `enum`/`const` → the first allowed value.
pub fn args_from_schema(schema: &Value) -> Value {
    let mut out = Map::new();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Value::Object(out);
    };
    let names: Vec<&str> = match schema.get("required").and_then(Value::as_array) {
        Some(req) => req.iter().filter_map(Value::as_str).collect(),
        None => props.keys().map(String::as_str).collect(),
    };
    for name in names {
        let prop = props.get(name).unwrap_or(&Value::Null);
        out.insert(name.to_string(), value_for(name, prop));
    }
    Value::Object(out)
}

fn value_for(name: &str, prop: &Value) -> Value {
    if let Some(c) = prop.get("const") {
        return c.clone();
    }
    if let Some(first) = prop
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let ty = match prop.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if prop.get("properties").is_some() => "object",
        _ => "string",
    };
    match ty {
        "integer" => Value::from(1),
        "number" => Value::from(1.5),
        "boolean" => Value::Bool(true),
        "array" => Value::Array(Vec::new()),
        "object" => {
            let has_required = prop
                .get("required")
                .and_then(Value::as_array)
                .is_some_and(|r| !r.is_empty());
            if has_required {
                args_from_schema(prop)
            } else {
                Value::Object(Map::new())
            }
        }
        "null" => Value::Null,
        _ if name.to_ascii_lowercase().contains("city") => Value::from("Oslo"),
        _ => Value::from("example"),
    }
}

/// A deterministic unit-length embedding of `text` with `dims` dimensions, derived from
/// SHA-256 of the text (and a block counter for more than 16 dimensions).
pub fn embedding(text: &str, dims: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(dims);
    let mut block: u32 = 0;
    while out.len() < dims {
        let digest = Sha256::new()
            .chain_update(text.as_bytes())
            .chain_update(block.to_le_bytes())
            .finalize();
        for pair in digest.chunks_exact(2) {
            if out.len() == dims {
                break;
            }
            let v = u16::from_le_bytes([pair[0], pair[1]]);
            out.push(f32::from(v) / 32767.5 - 1.0);
        }
        block = block.wrapping_add(1);
    }
    let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut out {
            *x /= norm;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input<'a>(messages: &'a [Value], tools: &'a [Value]) -> ChatInput<'a> {
        ChatInput {
            cloud: "c1",
            model: "m1",
            messages,
            tools,
            tool_choice: None,
            max_tokens: None,
            json_mode: false,
            prefill: false,
        }
    }

    #[test]
    fn text_reply_and_usage() {
        let msgs = vec![json!({"role":"user","content":"hi there"})];
        let r = chat_reply(&input(&msgs, &[]));
        assert_eq!(
            r.body,
            ReplyBody::Text("Hello from c1 (m1). You said: hi there".into())
        );
        assert_eq!(r.finish_reason, "stop");
        assert_eq!(r.prompt_tokens, 4 + 2);
        assert_eq!(r.completion_tokens, 8);
    }

    #[test]
    fn truncation_and_json_mode() {
        let msgs = vec![json!({"role":"user","content":"hi"})];
        let mut i = input(&msgs, &[]);
        i.max_tokens = Some(3);
        let r = chat_reply(&i);
        assert_eq!(r.body, ReplyBody::Text("Hello from c1".into()));
        assert_eq!((r.finish_reason, r.completion_tokens), ("length", 3));
        i.max_tokens = None;
        i.json_mode = true;
        let ReplyBody::Text(t) = chat_reply(&i).body else {
            panic!("text expected")
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v["cloud"], "c1");
        assert!(t.starts_with("{\"cloud\":\"c1\",\"answer\":"));
    }

    #[test]
    fn stories_are_the_same_everywhere_and_prefill_gets_the_rest() {
        let msgs = vec![json!({"role":"user","content":"story: a lighthouse"})];
        let mut a = input(&msgs, &[]);
        let ReplyBody::Text(whole) = chat_reply(&a).body else {
            panic!("text expected")
        };
        assert_eq!(whole.split(' ').count(), STORY_WORDS);
        assert!(!whole.contains("c1") && whole.ends_with('.'));
        a.cloud = "other";
        a.model = "m2";
        assert_eq!(chat_reply(&a).body, ReplyBody::Text(whole.clone()));
        let cut = whole.char_indices().nth(37).map_or(0, |(i, _)| i);
        let mut with_prefill = msgs.clone();
        with_prefill.push(json!({"role":"assistant","content": &whole[..cut]}));
        let mut p = input(&with_prefill, &[]);
        p.prefill = true;
        let r = chat_reply(&p);
        assert_eq!(r.body, ReplyBody::Text(whole[cut..].to_string()));
        assert_eq!(r.finish_reason, "stop");
        // A model without prefill answers after the assistant message instead.
        p.prefill = false;
        assert_eq!(chat_reply(&p).body, ReplyBody::Text(whole));
    }

    #[test]
    fn schema_args() {
        let schema = json!({"type":"object","properties":{
            "city":{"type":"string"},"n":{"type":"integer"},"x":{"type":"number"},
            "b":{"type":"boolean"},"l":{"type":"array"},"o":{"type":"object"},
            "unit":{"type":"string","enum":["celsius","fahrenheit"]},"skip":{"type":"string"}},
            "required":["city","n","x","b","l","o","unit"]});
        assert_eq!(
            args_from_schema(&schema),
            json!({"city":"Oslo","n":1,"x":1.5,"b":true,"l":[],"o":{},"unit":"celsius"})
        );
        let no_req = json!({"properties":{"name":{"type":"string"}}});
        assert_eq!(args_from_schema(&no_req), json!({"name":"example"}));
    }

    #[test]
    fn embeddings_are_unit_and_deterministic() {
        let a = embedding("hello", 40);
        assert_eq!(a.len(), 40);
        assert_eq!(a, embedding("hello", 40));
        assert_ne!(a, embedding("hellp", 40));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
    }
}
