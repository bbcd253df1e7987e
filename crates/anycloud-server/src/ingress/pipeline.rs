//! The one request path every client API runs through (README "Architecture"):
//!
//! 1. authenticate (bearer, or also `x-api-key` for APIs that accept it);
//! 2. open the request's [`Tracker`] (ledger, audit, metrics, access log, traces and
//!    budget settlement all read its outcome);
//! 3. read the body (size-limited) and parse the API's wire request;
//! 4. translate it to the canonical request ([`Api::parse`]);
//! 5. plan the route and admit it (rate limits, budget reservation);
//! 6. dispatch with failover — hedged for every non-streaming request;
//! 7. encode the answer ([`Api::encode`], or the SSE relay for a stream), stamp the
//!    route headers, capture the payload when the tenant asks for it;
//! 8. render any error once, in the API's own error shape.
//!
//! An [`Api`] supplies only its wire translation; everything above happens here, once,
//! so a governance feature added to this path applies to every API alike.

use super::relay::{NoStream, Relay, SseEncoder, StreamCapture};
use crate::auth::{authenticate_with, Principal};
use crate::body::{parse_json, read_bytes};
use crate::dispatch::{call_chat, failover, failover_hedged, open_stream};
use crate::error::ApiError;
use crate::outcome::Tracker;
use crate::request_id::{RequestId, RouteInfo};
use crate::state::AppState;
use anycloud_governance::Ask;
use anycloud_providers::{CallCtx, Provider, ProviderError};
use anycloud_router::Deployment;
use anycloud_types::{
    Capability, ChatRequest, ChatResponse, EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse,
    Usage,
};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A canonical request a cloud can answer: what routing, admission and dispatch need
/// to know about it.
pub trait Upstream: Send + Sync + 'static {
    /// The canonical answer.
    type Answer: Send + 'static;
    fn model(&self) -> &str;
    fn needs(&self) -> Vec<Capability>;
    /// The prompt's size in tokens, estimated before any cloud counts it.
    fn input_tokens(&self) -> u64;
    /// The request's output cap, if it set one.
    fn max_output_tokens(&self) -> Option<u64>;
    /// The chat request to stream, when the client asked for a stream.
    fn stream(&self) -> Option<&ChatRequest>;
    /// One non-streaming attempt on deployment `d`.
    fn call<'a>(
        &'a self,
        provider: Arc<dyn Provider>,
        d: &'a Deployment,
        ctx: &'a CallCtx,
    ) -> impl Future<Output = Result<Self::Answer, ProviderError>> + Send + 'a;
    fn usage(answer: &Self::Answer) -> Usage;
    /// Its cache-affinity keys, when it can hit a prompt cache.
    fn affinity_keys(&self, _tenant: &str) -> Option<crate::affinity::Keys> {
        None
    }
}

impl Upstream for ChatRequest {
    type Answer = ChatResponse;
    fn model(&self) -> &str {
        &self.model
    }
    fn needs(&self) -> Vec<Capability> {
        ChatRequest::needs(self)
    }
    fn input_tokens(&self) -> u64 {
        self.estimate_input_tokens()
    }
    fn max_output_tokens(&self) -> Option<u64> {
        self.params.max_tokens.map(u64::from)
    }
    fn stream(&self) -> Option<&ChatRequest> {
        self.stream.then_some(self)
    }
    #[allow(clippy::manual_async_fn)]
    fn call<'a>(
        &'a self,
        provider: Arc<dyn Provider>,
        d: &'a Deployment,
        ctx: &'a CallCtx,
    ) -> impl Future<Output = Result<ChatResponse, ProviderError>> + Send + 'a {
        async move { call_chat(provider, d, self, ctx).await }
    }
    fn usage(answer: &ChatResponse) -> Usage {
        answer.usage
    }
    fn affinity_keys(&self, tenant: &str) -> Option<crate::affinity::Keys> {
        crate::affinity::keys(tenant, self)
    }
}

impl Upstream for EmbeddingsRequest {
    type Answer = EmbeddingsResponse;
    fn model(&self) -> &str {
        &self.model
    }
    fn needs(&self) -> Vec<Capability> {
        vec![Capability::Embeddings]
    }
    fn input_tokens(&self) -> u64 {
        self.inputs
            .iter()
            .map(|i| match i {
                EmbeddingInput::Text(t) => (t.len() as u64).div_ceil(4),
                EmbeddingInput::Tokens(t) => t.len() as u64,
            })
            .sum()
    }
    fn max_output_tokens(&self) -> Option<u64> {
        Some(0)
    }
    fn stream(&self) -> Option<&ChatRequest> {
        None
    }
    #[allow(clippy::manual_async_fn)]
    fn call<'a>(
        &'a self,
        provider: Arc<dyn Provider>,
        d: &'a Deployment,
        ctx: &'a CallCtx,
    ) -> impl Future<Output = Result<EmbeddingsResponse, ProviderError>> + Send + 'a {
        async move { provider.embed(&d.target, self, ctx).await }
    }
    fn usage(answer: &EmbeddingsResponse) -> Usage {
        answer.usage
    }
}

/// One client API: its wire formats and their translation, nothing else. A value of
/// the type is what encoding the answer needs besides the canonical request (options
/// the client set, like Chat's `stream_options.include_usage`), made by [`Api::parse`].
pub trait Api: Send + Sync + Sized + 'static {
    /// The API's name in metrics, the ledger, audit actions (`ai.<name>`) and logs.
    const NAME: &'static str;
    /// Whether the key may also come as Anthropic's `x-api-key` header.
    const X_API_KEY: bool = false;
    /// The request body as the client sends it.
    type Wire: DeserializeOwned + Send;
    /// The canonical request it becomes.
    type Canon: Upstream;

    /// Wire request → canonical request (400s for what the API refuses).
    fn parse(
        ctx: &RequestCtx,
        wire: Self::Wire,
    ) -> impl Future<Output = Result<(Self::Canon, Self), ApiError>> + Send;

    /// Canonical answer → the client's JSON (the model it names is [`RequestCtx::model`]).
    fn encode(
        self,
        ctx: &RequestCtx,
        answer: &<Self::Canon as Upstream>::Answer,
    ) -> impl Future<Output = Result<impl Serialize + Send + use<Self>, ApiError>> + Send;

    /// The encoder for a streamed answer. An API without streams keeps this refusal
    /// (never reached: its canonical request never asks for a stream, `Upstream::stream`).
    fn sse(
        self,
        _ctx: &RequestCtx,
        _canon: &Self::Canon,
    ) -> Result<impl SseEncoder + use<Self>, ApiError> {
        Err::<NoStream, _>(ApiError::invalid(
            format!("The {} API cannot stream.", Self::NAME),
            Some("stream"),
        ))
    }

    /// An error in the API's own shape.
    fn render_error(e: ApiError) -> Response {
        e.into_response()
    }
}

/// Everything known about one request as it goes down the path.
#[derive(Debug)]
pub struct RequestCtx {
    pub state: Arc<AppState>,
    pub request_id: String,
    pub principal: Principal,
    pub tracker: Arc<Tracker>,
    /// What providers get: the request id and the client's trace context.
    pub call: CallCtx,
    /// Unix seconds when the request arrived (the `created` of its answer).
    pub created: i64,
    /// For the metrics and headers middleware: the API, model and serving cloud.
    info: RouteInfo,
    /// True once a stream owns the tracker (it finishes it when the stream ends).
    streamed: bool,
}

impl RequestCtx {
    /// The request id without its `req_` prefix: the unique part of answer ids.
    pub fn id_suffix(&self) -> &str {
        self.request_id.trim_start_matches("req_")
    }

    /// The id of this request's answer: `prefix` and the request id's unique part.
    pub fn answer_id(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.id_suffix())
    }

    pub fn tenant(&self) -> &str {
        &self.principal.tenant.name
    }

    /// The model the client asked for, once the request is parsed. (It is the metrics
    /// label too: routing refuses a model the config does not name before any answer.)
    pub fn model(&self) -> &str {
        &self.info.model
    }
}

fn with_info(mut resp: Response, info: RouteInfo) -> Response {
    resp.extensions_mut().insert(info);
    resp
}

/// The axum handler for API `A`.
pub async fn handle<A: Api>(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let info = RouteInfo {
        api: A::NAME,
        model: "unknown".into(),
        cloud: "none".into(),
    };
    let (parts, body) = req.into_parts();
    let principal = match authenticate_with(&state.directory, &parts.headers, A::X_API_KEY).await {
        Ok(p) => p,
        Err(e) => return with_info(A::render_error(e), info),
    };
    let tracker = Arc::new(Tracker::new(
        state.sinks.clone(),
        request_id.clone(),
        A::NAME,
        principal.tenant.name.clone(),
        principal.key_id.clone(),
    ));
    let mut ctx = RequestCtx {
        call: CallCtx {
            request_id: request_id.clone(),
            traceparent: super::traceparent(&parts.headers),
        },
        state,
        request_id,
        principal,
        tracker,
        created: chrono::Utc::now().timestamp(),
        info,
        streamed: false,
    };
    let resp = match run::<A>(&mut ctx, body).await {
        Ok(r) => r,
        Err(e) => {
            ctx.tracker.set_route(e.route());
            A::render_error(e)
        }
    };
    if !ctx.streamed {
        ctx.tracker.finish(resp.status().as_u16());
    }
    with_info(resp, ctx.info)
}

async fn run<A: Api>(ctx: &mut RequestCtx, body: Body) -> Result<Response, ApiError> {
    let state = ctx.state.clone();
    let bytes = read_bytes(body, state.config.server.max_body_bytes).await?;
    let wire: A::Wire = parse_json(&bytes)?;
    // The request as the client sent it, for tenants that capture payloads.
    let captured: Option<Value> = state
        .governance
        .captures(&ctx.principal)
        .then(|| serde_json::from_slice(&bytes).unwrap_or(Value::Null));
    drop(bytes);
    let (canon, api) = A::parse(ctx, wire).await?;
    ctx.info.model = state.model_label(canon.model());
    ctx.tracker.set_model(&ctx.info.model);
    let input_tokens = canon.input_tokens();
    let max_output_tokens = canon.max_output_tokens();
    let needs = canon.needs();
    let estimate = input_tokens + max_output_tokens.unwrap_or(0);
    ctx.tracker.set_needs(&needs, estimate);
    // Cache affinity: where this conversation's cache lives, as a hint to the router.
    // With one deployment there is nothing to prefer: no hashing, no Redis round trip.
    let affinity_keys = state
        .routes
        .model_index(canon.model())
        .filter(|&i| state.routes.deployments(i).len() > 1)
        .and_then(|_| canon.affinity_keys(ctx.tenant()));
    let affine = match &affinity_keys {
        Some(k) => state.affinity.lookup(k).await,
        None => None,
    };
    let plan = super::plan(
        &state,
        &ctx.principal.tenant,
        canon.model(),
        &needs,
        estimate,
        affine.as_ref().map(crate::affinity::Served::hint),
    )?;
    let continuations = canon.stream().map_or(0, |chat| {
        state
            .config
            .routing
            .continuations(&state.config.models, &chat.model)
    });
    let ask = Ask {
        request_id: &ctx.request_id,
        plan: &plan,
        deployments: state.routes.deployments(plan.model_index),
        input_tokens,
        max_output_tokens,
        continuations,
    };
    let admission = (state.governance.admit(&ctx.principal, ask).await)
        .inspect_err(|r| state.metrics.refused(r))?;
    // A cloud's usage report is billed within what this request allowed it.
    ctx.tracker.set_usage_bounds(crate::outcome::UsageBounds {
        max_output_tokens,
        input_estimate: input_tokens,
    });
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(state.config.server.request_timeout_ms);

    if let Some(chat) = canon.stream() {
        let encoder = api.sse(ctx, &canon)?;
        let call = &ctx.call;
        let served = failover(
            &state,
            &plan,
            canon.model(),
            deadline,
            &ctx.tracker,
            move |p, d| async move { open_stream(p, &d, chat, call).await },
        )
        .await?;
        ctx.info.cloud = served.cloud.clone();
        ctx.tracker.set_route(&served.decisions);
        if let Some(k) = &affinity_keys {
            state.affinity.record(k, &served.deployment);
        }
        let ttft_ms = ctx.tracker.elapsed_ms();
        let (first, rest) = served.value;
        let capture = captured.map(|request| StreamCapture::new(&ctx.principal, request));
        let resume = super::resume::Resume::new(
            &state,
            super::resume::ResumeRequest {
                principal: &ctx.principal,
                chat,
                needs: &needs,
                estimate,
                call: &ctx.call,
                deadline,
            },
            &served.cloud,
            &served.decisions,
        );
        let relay = Relay::new(
            encoder,
            first,
            rest,
            ctx.state.clone(),
            ctx.tracker.clone(),
            input_tokens,
            ttft_ms,
            capture,
        )
        .resumable(resume);
        // From here the stream finishes the tracker, however it ends.
        ctx.streamed = true;
        let mut resp = relay.into_response();
        super::stamp(&mut resp, &served.cloud, &served.decisions, &admission);
        return Ok(resp);
    }

    let (canon_ref, call) = (&canon, &ctx.call);
    let served = failover_hedged(
        &state,
        &plan,
        canon.model(),
        deadline,
        &ctx.tracker,
        move |p, d| async move { canon_ref.call(p, &d, call).await },
    )
    .await?;
    ctx.info.cloud = served.cloud.clone();
    ctx.tracker.set_route(&served.decisions);
    if let Some(k) = &affinity_keys {
        state.affinity.record(k, &served.deployment);
    }
    ctx.tracker.complete_ok_attempt(
        Some(<A::Canon as Upstream>::usage(&served.value)),
        false,
        None,
    );
    let out = api.encode(ctx, &served.value).await?;
    if let Some(request) = &captured {
        state
            .governance
            .capture(&ctx.request_id, &ctx.principal, request, Some(&out));
    }
    let mut resp = axum::Json(out).into_response();
    super::stamp(&mut resp, &served.cloud, &served.decisions, &admission);
    Ok(resp)
}
