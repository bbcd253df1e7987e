//! The OpenAI Responses API with stored state: `POST /v1/responses`,
//! `GET`/`DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`.
//!
//! The conversation lives in the gateway, not in one cloud: each stored
//! response keeps the whole canonical conversation so far, and
//! `previous_response_id` replays it to whichever cloud the router picks
//! now. Stored state is per tenant (another tenant's key gets 404) and
//! expires after `responses.retention_days`.

pub mod stream;
pub mod wire;

use crate::auth::authenticate;
use crate::body::read_json;
use crate::dispatch::{failover, open_stream};
use crate::error::ApiError;
use crate::outcome::Tracker;
use crate::request_id::{RequestId, RouteInfo};
use crate::state::AppState;
use anycloud_providers::{CallCtx, EventStream};
use anycloud_store::StoredResponse;
use anycloud_types::{ChatRequest, ContentBlock, Message, Role, SamplingParams, StreamEvent};
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use stream::ResponsesEncoder;
use wire::{CreateResponse, Echo};

/// What a stored response keeps.
#[derive(Debug, Serialize, Deserialize)]
struct StoredDoc {
    response: Value,
    input_items: Vec<Value>,
    /// The whole conversation through this response (instructions excluded:
    /// they are not carried over by `previous_response_id`).
    conversation: Vec<Message>,
}

fn rid_of(req: &Request) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}

fn not_found(id: &str, param: &str) -> ApiError {
    ApiError::NotFound {
        message: format!("No response found with id '{id}'."),
        param: Some(param.into()),
        code: if param == "previous_response_id" {
            "previous_response_not_found"
        } else {
            "response_not_found"
        },
    }
}

fn store_error(e: anycloud_store::StoreError) -> ApiError {
    tracing::error!(error = %e, "responses store failed");
    ApiError::Internal {
        message: "The gateway's store is unavailable.".into(),
    }
}

async fn load(
    state: &AppState,
    tenant: &str,
    id: &str,
    param: &str,
) -> Result<StoredDoc, ApiError> {
    let stored = state
        .store
        .get_response(tenant, id, chrono::Utc::now())
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(id, param))?;
    let unreadable = || ApiError::Internal {
        message: "A stored response could not be read.".into(),
    };
    let plain: Value = match &stored.key_id {
        // Sealed: 12-byte nonce, then AES-256-GCM ciphertext bound to the id.
        Some(key_id) if stored.body.len() > 12 => {
            let record = anycloud_store::CaptureRecord {
                request_id: stored.id.clone(),
                at: stored.created_at,
                tenant: stored.tenant.clone(),
                key_id: key_id.clone(),
                nonce: stored.body[..12].to_vec(),
                ciphertext: stored.body[12..].to_vec(),
            };
            state.governance.sealer.open(&record).map_err(|e| {
                tracing::error!(error = %e, "a stored response could not be unsealed");
                unreadable()
            })?
        }
        Some(_) => return Err(unreadable()),
        None => serde_json::from_slice(&stored.body).map_err(|_| unreadable())?,
    };
    serde_json::from_value(plain).map_err(|_| unreadable())
}

async fn save(state: &AppState, tenant: &str, id: &str, doc: &StoredDoc) -> Result<(), ApiError> {
    let encode_err = |_| ApiError::Internal {
        message: "A response could not be stored.".into(),
    };
    // Encrypted at rest with the capture key when one is configured.
    let (key_id, body) = if state.governance.sealer.enabled() {
        let value = serde_json::to_value(doc).map_err(encode_err)?;
        let rec = state
            .governance
            .sealer
            .seal_exact(id, tenant, value)
            .map_err(|e| {
                tracing::error!(error = %e, "a response could not be sealed");
                ApiError::Internal {
                    message: "A response could not be stored.".into(),
                }
            })?;
        let mut body = rec.nonce;
        body.extend_from_slice(&rec.ciphertext);
        (Some(rec.key_id), body)
    } else {
        (None, serde_json::to_vec(doc).map_err(encode_err)?)
    };
    let now = chrono::Utc::now();
    let days = i64::from(state.config.responses.retention_days);
    state
        .store
        .put_response(&StoredResponse {
            id: id.to_string(),
            tenant: tenant.to_string(),
            created_at: now,
            expires_at: now + chrono::Duration::days(days),
            key_id,
            body,
        })
        .await
        .map_err(store_error)
}

fn with_info(mut resp: Response, info: RouteInfo) -> Response {
    resp.extensions_mut().insert(info);
    resp
}

pub async fn create(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let rid = rid_of(&req);
    let mut info = RouteInfo {
        api: "responses",
        model: "unknown".into(),
        cloud: "none".into(),
    };
    let mut tracker = None;
    let resp = match run(&state, rid, req, &mut info, &mut tracker).await {
        Ok(r) => r,
        Err(e) => {
            if let Some(t) = &tracker {
                t.set_route(e.route());
            }
            e.into_response()
        }
    };
    if let Some(t) = tracker {
        t.finish(resp.status().as_u16());
    }
    with_info(resp, info)
}

/// Everything parsed from a create request.
struct Prepared {
    chat: ChatRequest,
    echo: Echo,
    input_items: Vec<Value>,
    /// Conversation through this turn's input (without instructions).
    conversation: Vec<Message>,
}

async fn prepare(
    state: &AppState,
    tenant: &str,
    w: CreateResponse,
    seed: &str,
) -> Result<Prepared, ApiError> {
    if let Some(t) = w.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
        return Err(ApiError::invalid(
            format!("temperature {t} is out of range 0..2."),
            Some("temperature"),
        ));
    }
    if w.max_output_tokens == Some(0) {
        return Err(ApiError::invalid(
            "max_output_tokens must be at least 1.",
            Some("max_output_tokens"),
        ));
    }
    if w.metadata.as_ref().is_some_and(|m| m.len() > 16) {
        return Err(ApiError::invalid(
            "metadata may hold at most 16 keys.",
            Some("metadata"),
        ));
    }
    let input_items = wire::normalise_input(w.input, seed)?;
    let new_messages = wire::items_to_messages(&input_items)?;
    let mut conversation = match &w.previous_response_id {
        Some(prev) => {
            load(state, tenant, prev, "previous_response_id")
                .await?
                .conversation
        }
        None => Vec::new(),
    };
    conversation.extend(new_messages);
    let tools = wire::tools(w.tools.as_deref().unwrap_or(&[]))?;
    let tool_choice = w
        .tool_choice
        .as_ref()
        .map(|c| wire::tool_choice(c, &tools))
        .transpose()?;
    let response_format = w
        .text
        .as_ref()
        .map(wire::text_format)
        .transpose()?
        .flatten();
    let mut messages = Vec::with_capacity(conversation.len() + 1);
    if let Some(i) = w.instructions.as_ref().filter(|i| !i.is_empty()) {
        messages.push(Message {
            role: Role::System,
            content: vec![ContentBlock::text(i.clone())],
            name: None,
        });
    }
    messages.extend(conversation.iter().cloned());
    let stream = w.stream.unwrap_or(false);
    let echo = Echo {
        model: w.model.clone(),
        instructions: w.instructions,
        max_output_tokens: w.max_output_tokens,
        previous_response_id: w.previous_response_id,
        store: w.store.unwrap_or(true),
        temperature: w.temperature,
        top_p: w.top_p,
        tools: w.tools.unwrap_or_default(),
        tool_choice: w.tool_choice.unwrap_or_else(|| json!("auto")),
        parallel_tool_calls: w.parallel_tool_calls.unwrap_or(true),
        text: w
            .text
            .unwrap_or_else(|| json!({"format": {"type": "text"}})),
        metadata: w.metadata.unwrap_or_default(),
        user: w.user.clone(),
    };
    let chat = ChatRequest {
        model: w.model,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: w.parallel_tool_calls,
        response_format,
        params: SamplingParams {
            temperature: w.temperature,
            top_p: w.top_p,
            max_tokens: w.max_output_tokens,
            ..SamplingParams::default()
        },
        user: w.user,
        stream,
    };
    Ok(Prepared {
        chat,
        echo,
        input_items,
        conversation,
    })
}

async fn run(
    state: &Arc<AppState>,
    rid: String,
    req: Request,
    info: &mut RouteInfo,
    tracker_slot: &mut Option<Arc<Tracker>>,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let principal = authenticate(state, &parts.headers).await?;
    let tracker = Arc::new(Tracker::new(
        state.sinks.clone(),
        rid.clone(),
        info.api,
        principal.tenant.name.clone(),
        principal.key_id.clone(),
    ));
    *tracker_slot = Some(tracker.clone());
    let w: CreateResponse = read_json(body, state.config.server.max_body_bytes).await?;
    let seed = rid.trim_start_matches("req_").to_string();
    let p = prepare(state, &principal.tenant.name, w, &seed).await?;
    info.model = state.model_label(&p.chat.model);
    tracker.set_model(&info.model);
    let estimate =
        p.chat.estimate_input_tokens() + u64::from(p.chat.params.max_tokens.unwrap_or(0));
    let needs = p.chat.needs();
    tracker.set_needs(&needs, estimate);
    let plan = super::plan(state, &principal.tenant, &p.chat.model, &needs, estimate)?;
    let admission = crate::governance::admit(
        state,
        &principal,
        crate::governance::Ask {
            request_id: &rid,
            plan: &plan,
            input_tokens: p.chat.estimate_input_tokens(),
            max_output_tokens: p.chat.params.max_tokens.map(u64::from),
        },
    )
    .await?;
    tracker.set_usage_bounds(crate::outcome::UsageBounds::of(&p.chat));
    let ctx = CallCtx {
        request_id: rid.clone(),
        traceparent: super::traceparent(&parts.headers),
    };
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(state.config.server.request_timeout_ms);
    let id = format!("resp_{seed}");
    let created_at = chrono::Utc::now().timestamp();
    let tenant = principal.tenant.name.clone();

    if !p.chat.stream {
        let (chat_ref, ctx_ref) = (&p.chat, &ctx);
        let served = failover(
            state,
            &plan,
            &p.chat.model,
            deadline,
            &tracker,
            move |pr, d| async move { pr.chat(&d.target, chat_ref, ctx_ref).await },
        )
        .await?;
        info.cloud = served.cloud.clone();
        tracker.set_route(&served.decisions);
        tracker.complete_ok_attempt(Some(served.value.usage), false, None);
        let (status, incomplete) = wire::status_of(Some(served.value.finish_reason));
        let response = wire::response_object(
            &id,
            created_at,
            &p.echo,
            status,
            incomplete,
            wire::output_items(&served.value, &id),
            wire::usage(&served.value.usage),
        );
        if p.echo.store {
            let mut conversation = p.conversation;
            conversation.push(wire::assistant_message(&served.value));
            let doc = StoredDoc {
                response: response.clone(),
                input_items: p.input_items,
                conversation,
            };
            save(state, &tenant, &id, &doc).await?;
        }
        let mut resp = axum::Json(response).into_response();
        super::stamp(&mut resp, &served.cloud, &served.decisions);
        admission.stamp(&mut resp);
        return Ok(resp);
    }

    let chat = Arc::new(p.chat);
    let ctx = Arc::new(ctx);
    let served = {
        let (chat, ctx) = (chat.clone(), ctx.clone());
        failover(
            state,
            &plan,
            &chat.model.clone(),
            deadline,
            &tracker,
            move |pr, d| open_stream(pr, d.target, chat.clone(), ctx.clone()),
        )
        .await?
    };
    info.cloud = served.cloud.clone();
    tracker.set_route(&served.decisions);
    let ttft_ms = tracker.elapsed_ms();
    let (first, rest) = served.value;
    let tracker = tracker_slot.take().unwrap_or(tracker);
    let st = StreamState {
        encoder: ResponsesEncoder::new(id.clone(), created_at, p.echo.clone()),
        started: false,
        first: Some(first),
        rest,
        buf: BytesMut::with_capacity(1024),
        state: state.clone(),
        tenant,
        id,
        store: p.echo.store,
        input_items: p.input_items,
        conversation: p.conversation,
        input_estimate: chat.estimate_input_tokens(),
        tracker,
        ttft_ms,
    };
    let mut resp = Response::new(Body::from_stream(sse_body(st)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    super::stamp(&mut resp, &served.cloud, &served.decisions);
    admission.stamp(&mut resp);
    Ok(resp)
}

struct StreamState {
    encoder: ResponsesEncoder,
    started: bool,
    first: Option<StreamEvent>,
    rest: EventStream,
    buf: BytesMut,
    state: Arc<AppState>,
    tenant: String,
    id: String,
    store: bool,
    input_items: Vec<Value>,
    conversation: Vec<Message>,
    input_estimate: u64,
    tracker: Arc<Tracker>,
    ttft_ms: u64,
}

impl StreamState {
    fn estimate(&self) -> anycloud_types::Usage {
        anycloud_types::Usage {
            input_tokens: self.input_estimate,
            output_tokens: self.encoder.output_chars().div_ceil(4),
            ..Default::default()
        }
    }

    /// The upstream ended: store the conversation, then announce completion.
    async fn complete(&mut self) {
        let fallback = self.estimate();
        let (response, chat) = self.encoder.close(&mut self.buf, fallback);
        if self.store {
            let mut conversation = std::mem::take(&mut self.conversation);
            conversation.push(wire::assistant_message(&chat));
            let doc = StoredDoc {
                response: response.clone(),
                input_items: std::mem::take(&mut self.input_items),
                conversation,
            };
            if let Err(e) = save(&self.state, &self.tenant, &self.id, &doc).await {
                tracing::error!(error = ?e.kind(), "could not store a streamed response");
            }
        }
        self.encoder.completed(response, &mut self.buf);
    }
}

impl Drop for StreamState {
    fn drop(&mut self) {
        let (usage, estimated) = match self.encoder.usage() {
            Some(u) => (u, false),
            None => (self.estimate(), true),
        };
        self.tracker
            .complete_ok_attempt(Some(usage), estimated, Some(self.ttft_ms));
        self.tracker
            .finish(if self.encoder.is_done() { 200 } else { 499 });
    }
}

fn sse_body(
    st: StreamState,
) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
    futures::stream::unfold(st, |mut st| async move {
        if st.encoder.is_done() {
            return None;
        }
        if !st.started {
            st.started = true;
            st.encoder.start(&mut st.buf);
        }
        if let Some(ev) = st.first.take() {
            st.encoder.event(ev, &mut st.buf);
        } else {
            match st.rest.next().await {
                Some(Ok(ev)) => st.encoder.event(ev, &mut st.buf),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, reason = %e.reason_code(), "responses stream failed after first byte");
                    st.encoder.error(&e, &mut st.buf);
                }
                None => st.complete().await,
            }
        }
        let bytes = st.buf.split().freeze();
        Some((Ok(bytes), st))
    })
    .filter(|r| futures::future::ready(!matches!(r, Ok(b) if b.is_empty())))
}

async fn principal_tenant(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    Ok(authenticate(state, headers).await?.tenant.name.clone())
}

fn info() -> RouteInfo {
    RouteInfo {
        api: "responses",
        model: "none".into(),
        cloud: "none".into(),
    }
}

pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let tenant = principal_tenant(&state, &headers).await?;
        Ok::<_, ApiError>(load(&state, &tenant, &id, "response_id").await?.response)
    }
    .await;
    let resp = match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    };
    with_info(resp, info())
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let tenant = principal_tenant(&state, &headers).await?;
        if state
            .store
            .delete_response(&tenant, &id)
            .await
            .map_err(store_error)?
        {
            Ok(json!({"id": id, "object": "response", "deleted": true}))
        } else {
            Err(not_found(&id, "response_id"))
        }
    }
    .await;
    let resp = match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    };
    with_info(resp, info())
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
    before: Option<String>,
    order: Option<String>,
}

pub async fn input_items(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let tenant = principal_tenant(&state, &headers).await?;
        let mut items = load(&state, &tenant, &id, "response_id").await?.input_items;
        let limit = q.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::invalid(
                "limit must be between 1 and 100.",
                Some("limit"),
            ));
        }
        match q.order.as_deref() {
            None | Some("desc") => items.reverse(),
            Some("asc") => {}
            Some(_) => {
                return Err(ApiError::invalid(
                    "order must be 'asc' or 'desc'.",
                    Some("order"),
                ))
            }
        }
        let position = |cursor: &str| items.iter().position(|i| i["id"] == cursor);
        let start = match &q.after {
            Some(a) => position(a)
                .map(|p| p + 1)
                .ok_or_else(|| ApiError::invalid("Unknown 'after' cursor.", Some("after")))?,
            None => 0,
        };
        let end = match &q.before {
            Some(b) => position(b)
                .ok_or_else(|| ApiError::invalid("Unknown 'before' cursor.", Some("before")))?,
            None => items.len(),
        };
        let window: Vec<Value> = items
            .get(start..end.max(start))
            .unwrap_or(&[])
            .iter()
            .take(limit)
            .cloned()
            .collect();
        let has_more = start + window.len() < end;
        Ok(json!({
            "object": "list",
            "data": window,
            "first_id": window.first().map(|i| i["id"].clone()),
            "last_id": window.last().map(|i| i["id"].clone()),
            "has_more": has_more,
        }))
    }
    .await;
    let resp = match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    };
    with_info(resp, info())
}

/// Deletes expired responses every hour (and once at start).
pub fn spawn_purger(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match state.store.purge_responses(chrono::Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired stored responses purged"),
                Err(e) => tracing::warn!(error = %e, "purging stored responses failed"),
            }
        }
    })
}
