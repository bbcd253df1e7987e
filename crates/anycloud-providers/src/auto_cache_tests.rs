#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use anycloud_types::{Message, Tool};
use serde_json::json;

fn msg(role: Role, text: &str) -> Message {
    Message {
        role,
        content: vec![ContentBlock::text(text)],
        name: None,
    }
}

/// A system prompt of ~1 500 tokens and `turns` user/assistant pairs of ~100 tokens each,
/// then a new user question.
fn agent(turns: usize) -> ChatRequest {
    let mut messages = vec![msg(Role::System, &"s".repeat(6_000))];
    for t in 0..turns {
        messages.push(msg(Role::User, &format!("{t}{}", "q".repeat(400))));
        messages.push(msg(Role::Assistant, &format!("{t}{}", "a".repeat(400))));
    }
    messages.push(msg(Role::User, "next?"));
    ChatRequest::new("claude", messages)
}

fn marks(r: &ChatRequest) -> Vec<CacheAt> {
    r.cache.breakpoints.iter().map(|b| b.at).collect()
}

fn block(message: usize) -> CacheAt {
    CacheAt::Block { message, block: 0 }
}

#[test]
fn marks_the_stable_history_the_previous_turns_end_and_the_system_prompt() {
    let first = agent(0);
    let r = with_auto_breakpoints(&first, ProviderKind::Anthropic, "claude-sonnet-4-5");
    assert_eq!(
        marks(&r),
        vec![block(0)],
        "turn one: only the system prompt"
    );
    let third = agent(2);
    let r = with_auto_breakpoints(&third, ProviderKind::Bedrock, "eu.anthropic.claude-sonnet");
    // Stable history ends at the second answer (4), the previous turn's at the first (2).
    assert_eq!(marks(&r), vec![block(4), block(2), block(0)]);
    assert!(r
        .cache
        .breakpoints
        .iter()
        .all(|b| b.ttl == CacheTtl::FiveMinutes));
}

#[test]
fn nothing_for_other_models_or_prefixes_below_the_minimum() {
    let r = agent(2);
    assert!(matches!(
        with_auto_breakpoints(&r, ProviderKind::Vertex, "gemini-2.5-pro"),
        Cow::Borrowed(_)
    ));
    assert!(matches!(
        with_auto_breakpoints(&r, ProviderKind::AzureOpenai, "claude"),
        Cow::Borrowed(_)
    ));
    // Haiku caches from 2 048 tokens: the 1 500-token system prompt alone is too short,
    // the system prompt and two turns (~1 900) still are, so nothing at all is marked…
    let haiku = with_auto_breakpoints(&r, ProviderKind::Anthropic, "claude-haiku-4-5");
    assert!(matches!(haiku, Cow::Borrowed(_)), "{:?}", marks(&haiku));
    // …until the history grows past it.
    let longer = agent(4);
    let haiku = with_auto_breakpoints(&longer, ProviderKind::Anthropic, "claude-haiku-4-5");
    assert_eq!(marks(&haiku), vec![block(8), block(6)]);
}

#[test]
fn the_clients_breakpoints_count_toward_four_and_one_hour_ones_are_not_preceded() {
    let mut r = agent(3);
    r.tools = vec![Tool {
        name: "search".into(),
        description: Some("d".repeat(5_000)),
        parameters: json!({"type": "object"}),
        strict: None,
    }];
    let all = with_auto_breakpoints(&r, ProviderKind::Anthropic, "claude-opus-4-1");
    assert_eq!(
        marks(&all),
        vec![block(6), block(4), block(0), CacheAt::Tool(0)]
    );
    // Two of the client's (one on the system prompt): room for two, never a duplicate.
    r.cache.breakpoints = vec![
        CacheBreakpoint {
            at: CacheAt::Tool(0),
            ttl: CacheTtl::FiveMinutes,
        },
        CacheBreakpoint {
            at: block(0),
            ttl: CacheTtl::FiveMinutes,
        },
    ];
    let two = with_auto_breakpoints(&r, ProviderKind::Anthropic, "claude-opus-4-1");
    assert_eq!(
        marks(&two),
        vec![CacheAt::Tool(0), block(0), block(6), block(4)]
    );
    // A one-hour breakpoint on the first answer: five-minute marks only after it.
    r.cache.breakpoints = vec![CacheBreakpoint {
        at: block(2),
        ttl: CacheTtl::OneHour,
    }];
    let after = with_auto_breakpoints(&r, ProviderKind::Anthropic, "claude-opus-4-1");
    assert_eq!(marks(&after), vec![block(2), block(6), block(4)]);
    // Four already: nothing added.
    r.cache.breakpoints = (0..4)
        .map(|i| CacheBreakpoint {
            at: block(i * 2),
            ttl: CacheTtl::FiveMinutes,
        })
        .collect();
    assert!(matches!(
        with_auto_breakpoints(&r, ProviderKind::Anthropic, "claude-opus-4-1"),
        Cow::Borrowed(_)
    ));
}

#[test]
fn a_tool_loop_ends_its_stable_history_before_the_newest_tool_results() {
    let mut r = agent(0);
    r.messages.pop();
    r.messages.push(msg(Role::User, "look it up"));
    r.messages.push(Message {
        role: Role::Assistant,
        content: vec![
            ContentBlock::text("Looking."),
            ContentBlock::ToolUse {
                id: "t1".into(),
                name: "search".into(),
                arguments: "{}".into(),
            },
        ],
        name: None,
    });
    r.messages.push(Message {
        role: Role::Tool,
        content: vec![ContentBlock::ToolResult {
            tool_use_id: "t1".into(),
            content: vec![ContentBlock::text("found")],
            is_error: false,
        }],
        name: None,
    });
    let m = with_auto_breakpoints(&r, ProviderKind::Anthropic, "claude-sonnet-4-5");
    assert_eq!(
        marks(&m),
        vec![
            CacheAt::Block {
                message: 2,
                block: 1
            },
            block(0)
        ]
    );
}
