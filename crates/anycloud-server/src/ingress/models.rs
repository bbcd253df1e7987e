//! `GET /v1/models` and `GET /v1/models/{id}`: the models this key's tenant
//! may use.

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::request_id::RouteInfo;
use crate::state::AppState;
use anycloud_config::TenantConfig;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;

fn allowed(t: &TenantConfig, model: &str) -> bool {
    t.models
        .as_ref()
        .is_none_or(|m| m.iter().any(|x| x == model))
}

fn model_object(name: &str) -> Value {
    json!({"id": name, "object": "model", "created": 1_735_689_600, "owned_by": "anycloud"})
}

fn with_info(mut resp: Response, model: String) -> Response {
    resp.extensions_mut().insert(RouteInfo {
        api: "models",
        model,
        cloud: "none".into(),
    });
    resp
}

pub async fn list(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let resp = match authenticate(&state.directory, &headers).await {
        Ok(p) => {
            let data: Vec<Value> = state
                .routes
                .model_names()
                .iter()
                .filter(|m| allowed(&p.tenant, m))
                .map(|m| model_object(m))
                .collect();
            axum::Json(json!({"object": "list", "data": data})).into_response()
        }
        Err(e) => e.into_response(),
    };
    with_info(resp, "none".into())
}

pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let label = state.model_label(&id);
    let resp = match authenticate(&state.directory, &headers).await {
        Ok(p) if state.routes.model_index(&id).is_some() && allowed(&p.tenant, &id) => {
            axum::Json(model_object(&id)).into_response()
        }
        Ok(_) => ApiError::NotFound {
            message: format!("The model `{id}` does not exist or you do not have access to it."),
            param: Some("model".into()),
            code: "model_not_found",
        }
        .into_response(),
        Err(e) => e.into_response(),
    };
    with_info(resp, label)
}
