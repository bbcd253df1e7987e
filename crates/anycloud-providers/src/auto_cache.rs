//! `prompt_cache = "auto"` (README "Prompt caching"): the breakpoints the gateway adds to
//! a request for a Claude deployment, so an agent that resends a growing conversation reads
//! it from the cloud's cache instead of paying for it again.
//!
//! Marked, each only when the prefix up to it reaches the model's minimum cacheable length
//! ([`claude_min_cache_tokens`]) and in this order of preference while the cloud's limit
//! of four breakpoints leaves room (the client's own breakpoints count toward it and are
//! never moved):
//!
//! 1. the end of the stable history: the last message before the newest user turn (the
//!    trailing run of user and tool-result messages), written this turn, read next turn;
//! 2. the end of the history the previous turn marked, which that turn wrote: read now.
//!    Without it a turn would find only the system prompt cached (Anthropic also looks
//!    back up to 20 blocks from a breakpoint, but a longer turn outruns that);
//! 3. the system prompt; 4. the tools — both outlive a history that changes.
//!
//! The marks are five-minute ones. Anthropic refuses a one-hour breakpoint after a
//! five-minute one, so none is placed before a client's one-hour breakpoint.
//!
//! Token counts are the gateway's estimate (about four characters a token, as
//! [`ChatRequest::estimate_input_tokens`]); a prefix slightly short of the minimum costs
//! nothing when marked: the cloud just does not cache it.

use anycloud_config::prompt_cache::{claude_min_cache_tokens, serves_claude};
use anycloud_config::PromptCacheMode;
use anycloud_types::{
    CacheAt, CacheBreakpoint, CacheTtl, ChatRequest, ContentBlock, ProviderKind, Role,
};
use std::borrow::Cow;

/// Breakpoints a request may carry on Anthropic, Vertex Claude and Bedrock alike.
pub const MAX_BREAKPOINTS: usize = 4;

/// `req` as a deployment whose `prompt_cache` is `mode` receives it: with the automatic
/// breakpoints when it is `auto`.
pub fn for_deployment<'a>(
    req: &'a ChatRequest,
    mode: PromptCacheMode,
    kind: ProviderKind,
    target: &str,
) -> Cow<'a, ChatRequest> {
    match mode {
        PromptCacheMode::Off => Cow::Borrowed(req),
        PromptCacheMode::Auto => with_auto_breakpoints(req, kind, target),
    }
}

/// `req` with the automatic breakpoints for a deployment of `target` on a `kind` cloud
/// added; unchanged when the deployment is not Claude or nothing is worth marking.
pub fn with_auto_breakpoints<'a>(
    req: &'a ChatRequest,
    kind: ProviderKind,
    target: &str,
) -> Cow<'a, ChatRequest> {
    if !serves_claude(kind, target) {
        return Cow::Borrowed(req);
    }
    let added = plan(req, claude_min_cache_tokens(target));
    if added.is_empty() {
        return Cow::Borrowed(req);
    }
    let mut r = req.clone();
    r.cache
        .breakpoints
        .extend(added.into_iter().map(|at| CacheBreakpoint {
            at,
            ttl: CacheTtl::FiveMinutes,
        }));
    Cow::Owned(r)
}

/// The places to mark, in order of preference, at most the room the client left.
fn plan(req: &ChatRequest, min_tokens: u64) -> Vec<CacheAt> {
    let client = &req.cache.breakpoints;
    let room = MAX_BREAKPOINTS.saturating_sub(client.len());
    if room == 0 {
        return Vec::new();
    }
    // Nothing goes at or before the client's last one-hour breakpoint.
    let floor = client
        .iter()
        .filter(|b| b.ttl == CacheTtl::OneHour)
        .map(|b| order_key(req, b.at))
        .max();
    let prefix = Prefixes::of(req);
    let mut wanted: Vec<(CacheAt, u64)> = Vec::with_capacity(4);
    let ends = history_ends(req);
    for &end in ends.iter().rev().take(2) {
        if let Some(at) = last_block(req, end) {
            wanted.push((at, prefix.through_message(end)));
        }
    }
    if let Some(at) = system_end(req) {
        wanted.push((at, prefix.tools + prefix.system));
    }
    if let Some(last) = req.tools.len().checked_sub(1) {
        wanted.push((CacheAt::Tool(last), prefix.tools));
    }
    wanted
        .into_iter()
        .filter(|(at, tokens)| {
            *tokens >= min_tokens
                && !client.iter().any(|b| b.at == *at)
                && floor.is_none_or(|f| order_key(req, *at) > f)
        })
        .map(|(at, _)| at)
        .take(room)
        .collect()
}

/// Where a place sits in the prompt as Claude reads it: tools, then system, then messages.
fn order_key(req: &ChatRequest, at: CacheAt) -> (u8, usize, usize) {
    match at {
        CacheAt::Tool(i) => (0, i, 0),
        CacheAt::Block { message, block } => {
            let system = req
                .messages
                .get(message)
                .is_some_and(|m| m.role.is_system());
            (if system { 1 } else { 2 }, message, block)
        }
    }
}

/// Every message that ends the history before a user turn: a non-user message followed
/// (past system messages) by a user or tool-result message. The last is the end of the
/// stable history, the one before it what the previous turn marked.
fn history_ends(req: &ChatRequest) -> Vec<usize> {
    let turns: Vec<usize> = (0..req.messages.len())
        .filter(|&i| !req.messages[i].role.is_system())
        .collect();
    let is_user = |i: usize| matches!(req.messages[i].role, Role::User | Role::Tool);
    turns
        .windows(2)
        .filter(|w| !is_user(w[0]) && is_user(w[1]))
        .map(|w| w[0])
        .collect()
}

/// The breakpoint after the last block of `messages[i]` a cloud receives (an empty text
/// block is dropped on the way).
fn last_block(req: &ChatRequest, i: usize) -> Option<CacheAt> {
    let m = req.messages.get(i)?;
    let block = m
        .content
        .iter()
        .rposition(|b| !matches!(b, ContentBlock::Text { text } if text.is_empty()))?;
    Some(CacheAt::Block { message: i, block })
}

/// The breakpoint after the system prompt: on the last system message's last text block.
fn system_end(req: &ChatRequest) -> Option<CacheAt> {
    let i = req.messages.iter().rposition(|m| m.role.is_system())?;
    let m = &req.messages[i];
    let block = m
        .content
        .iter()
        .rposition(|b| matches!(b, ContentBlock::Text { text } if !text.is_empty()))?;
    Some(CacheAt::Block { message: i, block })
}

/// Estimated tokens of the prompt's parts, in Claude's order.
struct Prefixes {
    tools: u64,
    system: u64,
    /// Cumulative tokens (tools, system and messages) through each message.
    through: Vec<u64>,
}

impl Prefixes {
    fn of(req: &ChatRequest) -> Prefixes {
        let tools: u64 = req
            .tools
            .iter()
            .map(|t| {
                chars(t.name.len() + t.description.as_ref().map_or(0, String::len))
                    + chars(t.parameters.to_string().len())
            })
            .sum();
        let system: u64 = req
            .messages
            .iter()
            .filter(|m| m.role.is_system())
            .flat_map(|m| &m.content)
            .map(block_tokens)
            .sum();
        let mut through = Vec::with_capacity(req.messages.len());
        let mut total = tools + system;
        for m in &req.messages {
            if !m.role.is_system() {
                total += m.content.iter().map(block_tokens).sum::<u64>();
            }
            through.push(total);
        }
        Prefixes {
            tools,
            system,
            through,
        }
    }

    fn through_message(&self, i: usize) -> u64 {
        self.through.get(i).copied().unwrap_or(0)
    }
}

fn chars(n: usize) -> u64 {
    (n as u64).div_ceil(4)
}

/// One block's estimated tokens (an image as about 750, as the request estimate has it).
fn block_tokens(b: &ContentBlock) -> u64 {
    match b {
        ContentBlock::Text { text } => chars(text.len()),
        ContentBlock::Image { .. } => 750,
        ContentBlock::ToolUse {
            name, arguments, ..
        } => chars(name.len() + arguments.len()),
        ContentBlock::ToolResult { content, .. } => content.iter().map(block_tokens).sum(),
    }
}

#[cfg(test)]
#[path = "auto_cache_tests.rs"]
mod tests;
