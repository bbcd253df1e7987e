//! Azure OpenAI emulator (provider-wire-formats §2): classic deployment URLs with a dated
//! `api-version`, v1 URLs with the deployment in `model`, `api-key` / Entra ID bearer auth,
//! content-filter annotations and errors, Azure's error and throttling shapes, and a
//! loopback Entra ID client-credentials token endpoint.

use std::time::{Duration, Instant};

use axum::http::Method;
use axum::response::Response;
use base64::Engine as _;
use rand::RngCore;
use serde_json::{json, Value};

use crate::chat::{self, ApiError, Flavor, Meta};
use crate::embeddings;
use crate::faults::InjectedFailure;
use crate::http::{self, Incoming};
use crate::openai::completion_id;
use crate::reply;
use crate::Shared;

/// Lifetime of issued Entra tokens, in seconds.
pub const TOKEN_LIFETIME_SECS: u64 = 3599;
/// The phrase that makes the emulated prompt filter block a request.
pub const CONTENT_FILTER_TRIGGER: &str = "trigger-content-filter";
const SCOPES: [&str; 2] = [
    "https://cognitiveservices.azure.com/.default",
    "https://ai.azure.com/.default",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Chat,
    Embeddings,
}

#[derive(Debug)]
enum Route {
    /// `/openai/deployments/{deployment}/...`
    Classic(String, Op),
    /// `/openai/v1/...`
    V1(Op),
    V1Models,
}

fn route(req: &Incoming) -> Option<Route> {
    let path = req.path.trim_end_matches('/');
    if req.method == Method::GET && path == "/openai/v1/models" {
        return Some(Route::V1Models);
    }
    if req.method != Method::POST {
        return None;
    }
    let op = |tail: &str| match tail {
        "chat/completions" => Some(Op::Chat),
        "embeddings" => Some(Op::Embeddings),
        _ => None,
    };
    if let Some(tail) = path.strip_prefix("/openai/v1/") {
        return op(tail).map(Route::V1);
    }
    let rest = path.strip_prefix("/openai/deployments/")?;
    let (dep, tail) = rest.split_once('/')?;
    if dep.is_empty() {
        return None;
    }
    op(tail).map(|o| Route::Classic(dep.to_string(), o))
}

fn headers(req: &Incoming) -> Vec<(&'static str, String)> {
    vec![
        (
            "apim-request-id",
            format!("00000000-0000-4000-8000-{:012}", req.seq),
        ),
        ("x-ms-region", "Emulated Region".to_string()),
        ("x-request-id", format!("req_emu{:08}", req.seq)),
    ]
}

fn azure_error(req: &Incoming, status: u16, code: &str, message: &str) -> Response {
    http::json(
        status,
        &json!({"error": {"code": code, "message": message}}),
        &headers(req),
    )
}

fn not_found(req: &Incoming) -> Response {
    azure_error(req, 404, "404", "Resource not found")
}

fn api_error(req: &Incoming, e: &ApiError) -> Response {
    http::json(e.status, &e.body(), &headers(req))
}

/// The error an injected failure produces, in Azure's shape (429 with the throttling text).
pub(crate) fn injected_error(req: &Incoming, f: InjectedFailure) -> Response {
    let version = req
        .query_param("api-version")
        .unwrap_or_else(|| "v1".to_string());
    let operation = match route(req) {
        Some(Route::Classic(_, Op::Embeddings)) | Some(Route::V1(Op::Embeddings)) => {
            "Embeddings_Create"
        }
        _ => "ChatCompletions_Create",
    };
    let retry = f.retry_after_secs.unwrap_or(1);
    let (code, message) = match f.status {
        429 => ("429".to_string(), format!(
            "Requests to the {operation} Operation under Azure OpenAI API version {version} have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after {retry} seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."
        )),
        500 => ("InternalServerError".to_string(), "The server had an error while processing your request.".to_string()),
        503 => ("ServiceUnavailable".to_string(), "The service is temporarily unable to process your request. Please try again later.".to_string()),
        s => (s.to_string(), format!("Injected failure with status {s}.")),
    };
    let mut h = headers(req);
    if let Some(s) = f.retry_after_secs {
        h.push(("retry-after", s.to_string()));
        h.push(("retry-after-ms", s.saturating_mul(1000).to_string()));
    }
    if f.status == 429 {
        h.push(("policy-id", "DeploymentRatelimit-Token".to_string()));
    }
    http::json(
        f.status,
        &json!({"error": {"code": code, "message": message}}),
        &h,
    )
}

fn authorized(shared: &Shared, req: &Incoming, v1: bool) -> bool {
    if let Some(k) = req.header("api-key") {
        return k == shared.config.api_key;
    }
    match req.bearer() {
        Some(t) if v1 && t == shared.config.api_key => true,
        Some(t) => shared.token_valid(t),
        None => false,
    }
}

/// Serve one model-endpoint request.
pub(crate) async fn handle(shared: &Shared, req: &Incoming) -> Response {
    let Some(route) = route(req) else {
        return not_found(req);
    };
    let version = req.query_param("api-version");
    match (&route, version.as_deref()) {
        (Route::Classic(..), None) => return not_found(req),
        (Route::Classic(..), Some(v)) if !shared.config.api_versions.iter().any(|a| a == v) => {
            return azure_error(req, 400, "BadRequest", "API version not supported")
        }
        (Route::V1(_) | Route::V1Models, Some(v)) if !matches!(v, "preview" | "latest" | "v1") => {
            return azure_error(req, 400, "BadRequest", "API version not supported")
        }
        _ => {}
    }
    let v1 = !matches!(route, Route::Classic(..));
    if !authorized(shared, req, v1) {
        return azure_error(
            req,
            401,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        );
    }
    let (deployment, op, body) = match route {
        Route::V1Models => {
            let data: Vec<Value> = shared
                .config
                .models
                .iter()
                .map(|m| json!({"id": m, "object": "model", "created": 1_700_000_000u64, "owned_by": "system"}))
                .collect();
            return http::json(200, &json!({"object": "list", "data": data}), &headers(req));
        }
        Route::Classic(dep, op) => {
            if !deployment_exists(shared, &dep) {
                return deployment_not_found(req);
            }
            match body(req) {
                Ok(b) => (dep, op, b),
                Err(e) => return api_error(req, &e),
            }
        }
        Route::V1(op) => {
            let b = match body(req) {
                Ok(b) => b,
                Err(e) => return api_error(req, &e),
            };
            match b.get("model").and_then(Value::as_str) {
                Some(m) if deployment_exists(shared, m) => (m.to_string(), op, b),
                Some(_) => return deployment_not_found(req),
                None => {
                    let e = ApiError::invalid(
                        "you must provide a model parameter",
                        Some("model"),
                        None,
                    );
                    return api_error(req, &e);
                }
            }
        }
    };
    let result = match op {
        Op::Chat => chat(shared, req, &deployment, &body, v1),
        Op::Embeddings => embeddings::validate(&body, v1).map(|p| {
            http::json(
                200,
                &embeddings::response_body(&p, &deployment),
                &headers(req),
            )
        }),
    };
    result.unwrap_or_else(|e| api_error(req, &e))
}

fn deployment_exists(shared: &Shared, dep: &str) -> bool {
    shared.config.models.iter().any(|m| m == dep)
}

fn deployment_not_found(req: &Incoming) -> Response {
    azure_error(
        req,
        404,
        "DeploymentNotFound",
        "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.",
    )
}

fn body(req: &Incoming) -> Result<serde_json::Map<String, Value>, ApiError> {
    if !req.has_json_content_type() {
        return Err(ApiError::invalid(
            "Unsupported Content-Type; expected application/json.",
            None,
            None,
        ));
    }
    chat::parse_body(&req.body)
}

/// The model name Azure reports for a chat deployment.
pub(crate) fn reported_model(deployment: &str) -> String {
    format!("{deployment}-2024-08-06")
}

fn content_filter_error() -> Value {
    let safe = json!({"filtered": false, "severity": "safe"});
    json!({"error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
        "type": null, "param": "prompt", "code": "content_filter", "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
            "hate": safe, "jailbreak": {"filtered": true, "detected": true},
            "self_harm": safe, "sexual": safe, "violence": safe}}}})
}

fn chat(
    shared: &Shared,
    req: &Incoming,
    deployment: &str,
    body: &serde_json::Map<String, Value>,
    v1: bool,
) -> Result<Response, ApiError> {
    let params = chat::validate(body, v1)?;
    if params.user_text().contains(CONTENT_FILTER_TRIGGER) {
        return Ok(http::json(400, &content_filter_error(), &headers(req)));
    }
    let input = params.input(&shared.config.name, deployment);
    let mut reply = reply::chat_reply(&input);
    chat::account_implicit(shared, &input, body, &mut reply);
    let meta = Meta {
        id: completion_id(&shared.config.name, req),
        created: http::unix_now(),
        model: reported_model(deployment),
        flavor: Flavor::Azure,
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

// ---------------------------------------------------------------------------------------
// Entra ID token endpoint
// ---------------------------------------------------------------------------------------

fn aad_error(status: u16, error: &str, description: &str, code: u32) -> Response {
    http::json(
        status,
        &json!({"error": error, "error_description": description, "error_codes": [code],
            "timestamp": "2025-01-01 00:00:00Z",
            "trace_id": "00000000-0000-0000-0000-000000000000",
            "correlation_id": "00000000-0000-0000-0000-000000000000"}),
        &[],
    )
}

/// If `req` is a token request for this emulator's tenant path, answer it.
pub(crate) fn token_endpoint(shared: &Shared, req: &Incoming) -> Option<Response> {
    let entra = shared.config.entra.as_ref()?;
    let tenant = req
        .path
        .strip_suffix("/oauth2/v2.0/token")?
        .strip_prefix('/')?;
    if tenant.is_empty() || tenant.contains('/') {
        return None;
    }
    if req.method != Method::POST {
        return Some(aad_error(
            405,
            "invalid_request",
            "AADSTS900561: The endpoint only accepts POST requests.",
            900_561,
        ));
    }
    if tenant != entra.tenant_id {
        let d = format!("AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.");
        return Some(aad_error(400, "invalid_request", &d, 90002));
    }
    let form_ct = req
        .header("content-type")
        .and_then(|c| c.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_ct {
        return Some(aad_error(
            400,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
            900_144,
        ));
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match get("grant_type") {
        Some("client_credentials") => {}
        None => return Some(aad_error(
            400,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
            900_144,
        )),
        Some(g) => {
            let d = format!("AADSTS70003: The app requested an unsupported grant type '{g}'.");
            return Some(aad_error(400, "unsupported_grant_type", &d, 70003));
        }
    }
    if get("client_id") != Some(entra.client_id.as_str()) {
        let d = format!(
            "AADSTS700016: Application with identifier '{}' was not found in the directory '{tenant}'.",
            get("client_id").unwrap_or_default()
        );
        return Some(aad_error(400, "unauthorized_client", &d, 700_016));
    }
    if get("client_secret") != Some(entra.client_secret.as_str()) {
        return Some(aad_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.", 7_000_215));
    }
    let scope = get("scope").unwrap_or_default();
    if !SCOPES.contains(&scope) {
        let d = format!("AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).");
        return Some(aad_error(400, "invalid_scope", &d, 1_002_012));
    }
    let token = issue_token(tenant, &entra.client_id, scope);
    shared.store_token(
        &token,
        Instant::now() + Duration::from_secs(TOKEN_LIFETIME_SECS),
    );
    Some(http::json(
        200,
        &json!({"token_type": "Bearer", "expires_in": TOKEN_LIFETIME_SECS,
            "ext_expires_in": TOKEN_LIFETIME_SECS, "access_token": token}),
        &[],
    ))
}

/// A JWT-looking opaque token: real header and claims, random signature.
fn issue_token(tenant: &str, client_id: &str, scope: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = http::unix_now();
    let header = b64.encode(json!({"typ": "JWT", "alg": "RS256", "kid": "emulator"}).to_string());
    let aud = scope.trim_end_matches("/.default");
    let claims = b64.encode(
        json!({"aud": aud, "iss": format!("https://sts.windows.net/{tenant}/"), "tid": tenant,
            "appid": client_id, "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME_SECS})
        .to_string(),
    );
    let mut sig = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut sig);
    format!("{header}.{claims}.{}", b64.encode(sig))
}
