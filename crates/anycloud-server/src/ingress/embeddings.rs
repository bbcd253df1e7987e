//! `POST /v1/embeddings` (OpenAI shape; float or base64 output).

use crate::auth::authenticate;
use crate::body::read_json;
use crate::dispatch::failover;
use crate::error::ApiError;
use crate::outcome::Tracker;
use crate::request_id::{RequestId, RouteInfo};
use crate::state::AppState;
use anycloud_providers::openai::convert::{
    embeddings_request_from_wire, embeddings_response_to_wire,
};
use anycloud_providers::openai::wire::EmbeddingsRequestWire;
use anycloud_providers::CallCtx;
use anycloud_types::{Capability, EmbeddingInput};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

pub async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let rid = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let mut info = RouteInfo {
        api: "embeddings",
        model: "unknown".into(),
        cloud: "none".into(),
    };
    let mut tracker = None;
    let mut resp = match run(&state, rid, req, &mut info, &mut tracker).await {
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
    resp.extensions_mut().insert(info);
    resp
}

async fn run(
    state: &Arc<AppState>,
    rid: String,
    req: Request,
    info: &mut RouteInfo,
    tracker_slot: &mut Option<Tracker>,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let principal = authenticate(state, &parts.headers).await?;
    let tracker = tracker_slot.insert(Tracker::new(
        state.sinks.clone(),
        rid.clone(),
        info.api,
        principal.tenant.name.clone(),
        principal.key_id.clone(),
    ));
    let wire: EmbeddingsRequestWire = read_json(body, state.config.server.max_body_bytes).await?;
    let (emb, base64) = embeddings_request_from_wire(wire)
        .map_err(|e| ApiError::invalid(e.message, e.param.as_deref()))?;
    info.model = state.model_label(&emb.model);
    tracker.set_model(&info.model);
    let estimate: u64 = emb
        .inputs
        .iter()
        .map(|i| match i {
            EmbeddingInput::Text(t) => (t.len() as u64).div_ceil(4),
            EmbeddingInput::Tokens(t) => t.len() as u64,
        })
        .sum();
    tracker.set_needs(&[Capability::Embeddings], estimate);
    let plan = super::plan(
        state,
        &principal.tenant,
        &emb.model,
        &[Capability::Embeddings],
        estimate,
    )?;
    let admission = crate::governance::admit(
        state,
        &principal,
        crate::governance::Ask {
            request_id: &rid,
            plan: &plan,
            input_tokens: estimate,
            max_output_tokens: Some(0),
        },
    )
    .await?;
    let ctx = CallCtx {
        request_id: rid,
        traceparent: super::traceparent(&parts.headers),
    };
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(state.config.server.request_timeout_ms);
    let (emb_ref, ctx_ref) = (&emb, &ctx);
    let served = failover(
        state,
        &plan,
        &emb.model,
        deadline,
        tracker,
        move |p, d| async move { p.embed(&d.target, emb_ref, ctx_ref).await },
    )
    .await?;
    info.cloud = served.cloud.clone();
    tracker.set_route(&served.decisions);
    tracker.complete_ok_attempt(Some(served.value.usage), false, None);
    let wire = embeddings_response_to_wire(&served.value, &emb.model, base64);
    let mut resp = axum::Json(wire).into_response();
    super::stamp(&mut resp, &served.cloud, &served.decisions);
    admission.stamp(&mut resp);
    Ok(resp)
}
