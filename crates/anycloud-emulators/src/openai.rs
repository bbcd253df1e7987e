//! OpenAI-compatible emulator: `POST /v1/chat/completions`, `POST /v1/embeddings`,
//! `GET /v1/models[/{id}]`, `Authorization: Bearer` auth and OpenAI's error shapes
//! (provider-wire-formats §1).

use axum::http::Method;
use axum::response::Response;
use serde_json::{json, Value};

use crate::chat::{self, ApiError, Flavor, Meta};
use crate::embeddings;
use crate::faults::InjectedFailure;
use crate::http::{self, Incoming};
use crate::reply;
use crate::Shared;

fn headers(req: &Incoming) -> Vec<(&'static str, String)> {
    vec![
        ("x-request-id", format!("req_emu{:08}", req.seq)),
        ("openai-version", "2020-10-01".to_string()),
        ("openai-processing-ms", "1".to_string()),
    ]
}

fn error(req: &Incoming, e: &ApiError) -> Response {
    http::json(e.status, &e.body(), &headers(req))
}

/// Show at most a few characters of a presented key.
pub(crate) fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() >= 12 {
        let head: String = chars.iter().take(3).collect();
        let tail: String = chars.iter().skip(chars.len() - 4).collect();
        format!("{head}*{tail}")
    } else {
        "*".repeat(chars.len().min(8))
    }
}

/// The error an injected failure produces, in OpenAI's shape.
pub(crate) fn injected_error(req: &Incoming, f: InjectedFailure) -> Response {
    let (message, kind, code) = match f.status {
        429 => (
            "Rate limit reached for requests on this emulated organization. Please try again later.",
            "requests",
            Some("rate_limit_exceeded"),
        ),
        500 => ("The server had an error while processing your request. Sorry about that!", "server_error", None),
        502 => ("Bad gateway.", "server_error", None),
        503 => (
            "The engine is currently overloaded, please try again later.",
            "service_unavailable_error",
            Some("server_is_overloaded"),
        ),
        504 => ("The server did not respond in time.", "server_error", Some("timeout")),
        s if s >= 500 => ("The server had an error while processing your request.", "server_error", None),
        _ => ("Injected failure.", "invalid_request_error", None),
    };
    let e = ApiError {
        status: f.status,
        message: message.to_string(),
        kind,
        param: None,
        code: code.map(str::to_string),
    };
    let mut h = headers(req);
    if let Some(s) = f.retry_after_secs {
        h.push(("retry-after", s.to_string()));
        h.push(("retry-after-ms", s.saturating_mul(1000).to_string()));
    }
    http::json(e.status, &e.body(), &h)
}

fn check_auth(shared: &Shared, req: &Incoming) -> Result<(), ApiError> {
    let unauthorized = |message: String| ApiError {
        status: 401,
        message,
        kind: "invalid_request_error",
        param: None,
        code: Some("invalid_api_key".to_string()),
    };
    match req.bearer() {
        Some(k) if k == shared.config.api_key => Ok(()),
        Some(k) => Err(unauthorized(format!(
            "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
            mask_key(k)
        ))),
        None => Err(unauthorized(
            "Incorrect API key provided: You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).".to_string(),
        )),
    }
}

fn check_model(shared: &Shared, model: &str) -> Result<(), ApiError> {
    if shared.config.models.iter().any(|m| m == model) {
        Ok(())
    } else {
        Err(ApiError {
            status: 404,
            message: format!("The model `{model}` does not exist or you do not have access to it."),
            kind: "invalid_request_error",
            param: Some("model".to_string()),
            code: Some("model_not_found".to_string()),
        })
    }
}

fn json_body(req: &Incoming) -> Result<serde_json::Map<String, Value>, ApiError> {
    if !req.has_json_content_type() {
        return Err(ApiError::invalid(
            format!(
                "Invalid Content-Type header ({}), expected application/json.",
                req.header("content-type").unwrap_or("none")
            ),
            None,
            None,
        ));
    }
    chat::parse_body(&req.body)
}

/// Serve one model-endpoint request.
pub(crate) async fn handle(shared: &Shared, req: &Incoming) -> Response {
    let path = req.path.trim_end_matches('/');
    let route = match (path, &req.method) {
        ("/v1/chat/completions", &Method::POST) => Route::Chat,
        ("/v1/embeddings", &Method::POST) => Route::Embeddings,
        ("/v1/models", &Method::GET) => Route::Models,
        (p, &Method::GET) if p.starts_with("/v1/models/") => {
            Route::Model(p.trim_start_matches("/v1/models/"))
        }
        _ => {
            let e = ApiError {
                status: 404,
                message: format!("Invalid URL ({} {})", req.method, req.path),
                kind: "invalid_request_error",
                param: None,
                code: None,
            };
            return error(req, &e);
        }
    };
    let result = match check_auth(shared, req) {
        Err(e) => Err(e),
        Ok(()) => match route {
            Route::Chat => chat(shared, req),
            Route::Embeddings => embeddings(shared, req),
            Route::Models => Ok(http::json(200, &models_body(shared), &headers(req))),
            Route::Model(id) => {
                check_model(shared, id).map(|()| http::json(200, &model_json(id), &headers(req)))
            }
        },
    };
    result.unwrap_or_else(|e| error(req, &e))
}

enum Route<'a> {
    Chat,
    Embeddings,
    Models,
    Model(&'a str),
}

fn model_json(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 1_700_000_000u64, "owned_by": "anycloud-emulator"})
}

fn models_body(shared: &Shared) -> Value {
    let data: Vec<Value> = shared.config.models.iter().map(|m| model_json(m)).collect();
    json!({"object": "list", "data": data})
}

fn chat(shared: &Shared, req: &Incoming) -> Result<Response, ApiError> {
    let body = json_body(req)?;
    let params = chat::validate(&body, true)?;
    check_model(shared, &params.model)?;
    let input = params.input(&shared.config.name, &params.model);
    let mut reply = reply::chat_reply(&input);
    chat::account_implicit(shared, &input, &body, &mut reply);
    let meta = Meta {
        id: completion_id(&shared.config.name, req),
        created: http::unix_now(),
        model: params.model.clone(),
        flavor: Flavor::OpenAi,
    };
    if params.stream {
        let mut events = chat::stream_events(&meta, &reply, params.include_usage);
        // OpenAI's in-band failure: an error object as a data chunk, then the end.
        http::inject_stream_error(&mut events, &shared.faults, |kind| {
            json!({"error": {"message": "The server had an error while processing your request. Sorry about that!", "type": kind, "param": null, "code": null}}).to_string()
        });
        Ok(http::sse(events, &shared.faults, &headers(req)))
    } else {
        Ok(http::json(
            200,
            &chat::completion_body(&meta, &reply),
            &headers(req),
        ))
    }
}

fn embeddings(shared: &Shared, req: &Incoming) -> Result<Response, ApiError> {
    let body = json_body(req)?;
    let params = embeddings::validate(&body, true)?;
    check_model(shared, &params.model)?;
    Ok(http::json(
        200,
        &embeddings::response_body(&params, &params.model),
        &headers(req),
    ))
}

/// `chatcmpl-` + a hash of the cloud name, the request sequence number and the body.
pub(crate) fn completion_id(cloud: &str, req: &Incoming) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(cloud.as_bytes())
        .chain_update(req.seq.to_le_bytes())
        .chain_update(&req.body)
        .finalize();
    let hex = hex::encode(digest);
    format!("chatcmpl-{}", hex.get(..29).unwrap_or(&hex))
}
