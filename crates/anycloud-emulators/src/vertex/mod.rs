//! Google Vertex AI emulator (provider-wire-formats §4, §5.6): Gemini `generateContent`,
//! `streamGenerateContent` (SSE with `alt=sse`, a JSON array without), `predict` for
//! text-embedding models, Claude `rawPredict`/`streamRawPredict` on
//! `publishers/anthropic`, the Gemini Developer API (`/v1beta/models/...` with
//! `x-goog-api-key`), and the OAuth token endpoint (`oauth.rs`).
//!
//! Checks made like Vertex: OAuth bearer tokens this emulator issued (401 UNAUTHENTICATED
//! otherwise; API keys are refused on Vertex URLs), project (403 PERMISSION_DENIED) and
//! location (404 NOT_FOUND) in the path, known models (404), bodies (`gemini.rs`,
//! `claude.rs`). Errors use the Google RPC shape; an injected 429 is RESOURCE_EXHAUSTED
//! with a `RetryInfo` detail.

mod claude;
mod gemini;
pub(crate) mod oauth;

use axum::http::Method;
use axum::response::Response;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{json, Value};

use crate::faults::InjectedFailure;
use crate::http::{self, Incoming};
use crate::{EmulatedCloud, EmulatorConfig, Shared};

/// Lifetime of issued access tokens unless configured otherwise (Google's).
pub const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 3599;

/// The emulated Google project and its service account. `Debug` leaves the private key out.
#[derive(Clone, PartialEq, Eq)]
pub struct VertexSettings {
    pub project_id: String,
    pub region: String,
    pub client_email: String,
    pub private_key_id: String,
    /// PKCS#8 PEM.
    pub private_key_pem: String,
    /// SPKI PEM; the token endpoint verifies assertions with it.
    pub public_key_pem: String,
    /// `expires_in` of issued tokens.
    pub token_lifetime_secs: u64,
}

impl std::fmt::Debug for VertexSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VertexSettings")
            .field("project_id", &self.project_id)
            .field("region", &self.region)
            .field("client_email", &self.client_email)
            .field("token_lifetime_secs", &self.token_lifetime_secs)
            .finish_non_exhaustive()
    }
}

/// A fresh 2048-bit RSA key pair as (PKCS#8 private PEM, SPKI public PEM).
pub fn generate_key_pair() -> Result<(String, String), String> {
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|e| e.to_string())?;
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?
        .to_string();
    let public = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?;
    Ok((private, public))
}

impl VertexSettings {
    /// The key file a client loads; `token_uri` is where the emulator's `/token` is.
    pub fn service_account_json(&self, token_uri: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.private_key_id,
            "private_key": self.private_key_pem,
            "client_email": self.client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        })
        .to_string()
    }
}

impl EmulatorConfig {
    /// A Vertex AI emulator for `project_id` in `region` serving `models` (Gemini and
    /// embedding model ids under `publishers/google`, Claude ids under
    /// `publishers/anthropic`). Generates the service account's RSA key pair; the Gemini
    /// Developer API key is `api_key` (`AIza-emulator-{name}`).
    pub fn vertex(
        name: impl Into<String>,
        project_id: impl Into<String>,
        region: impl Into<String>,
        models: Vec<String>,
    ) -> Result<Self, String> {
        let name = name.into();
        let project_id = project_id.into();
        let (private_key_pem, public_key_pem) = generate_key_pair()?;
        Ok(Self {
            cloud: EmulatedCloud::Vertex,
            api_key: format!("AIza-emulator-{name}"),
            name,
            models,
            api_versions: Vec::new(),
            entra: None,
            oci: None,
            aws: None,
            vertex: Some(VertexSettings {
                client_email: format!("anycloud@{project_id}.iam.gserviceaccount.com"),
                project_id,
                region: region.into(),
                private_key_id: "emulator-key-1".into(),
                private_key_pem,
                public_key_pem,
                token_lifetime_secs: DEFAULT_TOKEN_LIFETIME_SECS,
            }),
        })
    }

    /// Builder-style: the `expires_in` of issued tokens (to test refresh).
    pub fn with_token_lifetime(mut self, secs: u64) -> Self {
        if let Some(v) = self.vertex.as_mut() {
            v.token_lifetime_secs = secs;
        }
        self
    }
}

/// `{"error":{"code","message","status"[,"details"]}}`.
pub(crate) fn google_error(
    status: u16,
    rpc: &str,
    message: &str,
    details: Option<Value>,
) -> Response {
    let mut err = json!({"code": status, "message": message, "status": rpc});
    if let Some(d) = details {
        err["details"] = d;
    }
    http::json(status, &json!({"error": err}), &[])
}

pub(crate) fn invalid_argument(message: &str) -> Response {
    google_error(400, "INVALID_ARGUMENT", message, None)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publisher {
    Google,
    Anthropic,
}

#[derive(Debug)]
enum Route {
    /// `/v1/projects/{p}/locations/{l}/publishers/{pub}/models/{model}:{method}`
    Vertex {
        project: String,
        location: String,
        publisher: Publisher,
        model: String,
        method: String,
    },
    /// `/v1beta/models/{model}:{method}` (Gemini Developer API).
    Gemini { model: String, method: String },
}

fn route(req: &Incoming) -> Option<Route> {
    let path = req.path.as_str();
    let split_method = |tail: &str| {
        let (m, method) = tail.rsplit_once(':')?;
        (!m.is_empty() && !m.contains('/')).then(|| (m.to_string(), method.to_string()))
    };
    if let Some(tail) = path
        .strip_prefix("/v1beta/models/")
        .or_else(|| path.strip_prefix("/v1/models/"))
    {
        let (model, method) = split_method(tail)?;
        return Some(Route::Gemini { model, method });
    }
    let rest = path.strip_prefix("/v1/projects/")?;
    let segs: Vec<&str> = rest.splitn(7, '/').collect();
    let [project, "locations", location, "publishers", publisher, "models", tail] = segs[..] else {
        return None;
    };
    let publisher = match publisher {
        "google" => Publisher::Google,
        "anthropic" => Publisher::Anthropic,
        _ => return None,
    };
    let (model, method) = split_method(tail)?;
    Some(Route::Vertex {
        project: project.to_string(),
        location: location.to_string(),
        publisher,
        model,
        method,
    })
}

fn not_found(req: &Incoming) -> Response {
    google_error(
        404,
        "NOT_FOUND",
        &format!(
            "The requested URL {} was not found on this server.",
            req.path
        ),
        None,
    )
}

/// The error an injected failure produces: Google's shape, with `RetryInfo` on a 429.
/// A 529 on a Claude URL is Anthropic's `overloaded_error`.
pub(crate) fn injected_error(req: &Incoming, f: InjectedFailure) -> Response {
    let claude = matches!(
        route(req),
        Some(Route::Vertex {
            publisher: Publisher::Anthropic,
            ..
        })
    );
    if claude && f.status == 529 {
        return claude::overloaded();
    }
    let (rpc, message) = match f.status {
        400 => ("INVALID_ARGUMENT", "Request contains an invalid argument."),
        401 => ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
        403 => ("PERMISSION_DENIED", "Permission denied."),
        404 => ("NOT_FOUND", "Requested entity was not found."),
        429 => ("RESOURCE_EXHAUSTED", "Resource exhausted. Please try again later. Please refer to https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."),
        503 => ("UNAVAILABLE", "The service is currently unavailable."),
        504 => ("DEADLINE_EXCEEDED", "Deadline exceeded."),
        _ => ("INTERNAL", "Internal error encountered."),
    };
    let details = (f.status == 429).then(|| {
        json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": format!("{}s", f.retry_after_secs.unwrap_or(1))}])
    });
    google_error(f.status, rpc, message, details)
}

/// Serve one model-endpoint request.
pub(crate) async fn handle(shared: &Shared, req: &Incoming) -> Response {
    let Some(v) = shared.config.vertex.as_ref() else {
        return not_found(req);
    };
    let Some(route) = route(req) else {
        return not_found(req);
    };
    if req.method != Method::POST {
        return not_found(req);
    }
    match route {
        Route::Gemini { model, method } => {
            let key = req
                .header("x-goog-api-key")
                .map(str::to_string)
                .or_else(|| req.query_param("key"));
            match key {
                None => {
                    return google_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.", None)
                }
                Some(k) if k != shared.config.api_key => {
                    return google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                        Some(json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}])))
                }
                Some(_) => {}
            }
            if !known_model(shared, &model) {
                return google_error(404, "NOT_FOUND", &format!("models/{model} is not found for API version v1beta, or is not supported for {method}."), None);
            }
            gemini::handle(shared, req, &model, &method, gemini::Api::Developer)
        }
        Route::Vertex {
            project,
            location,
            publisher,
            model,
            method,
        } => {
            match req.bearer() {
                Some(t) if shared.token_valid(t) => {}
                Some(_) => return google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.", None),
                None => return google_error(401, "UNAUTHENTICATED", "API keys are not supported by this API. Expected OAuth2 access token or other authentication credentials that assert a principal. See https://cloud.google.com/docs/authentication", None),
            }
            let resource = format!(
                "projects/{project}/locations/{location}/publishers/{}/models/{model}",
                if publisher == Publisher::Google {
                    "google"
                } else {
                    "anthropic"
                }
            );
            if project != v.project_id {
                return google_error(403, "PERMISSION_DENIED", &format!("Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/{resource}' (or it may not exist)."), None);
            }
            if location != v.region {
                return google_error(
                    404,
                    "NOT_FOUND",
                    &format!(
                        "Location {location} is not served for project {project} by this endpoint."
                    ),
                    None,
                );
            }
            if !known_model(shared, &model) {
                return google_error(404, "NOT_FOUND", &format!("Publisher Model `{resource}` was not found or your project does not have access to it. Please ensure you are using a valid model version."), None);
            }
            match publisher {
                Publisher::Google => {
                    gemini::handle(shared, req, &model, &method, gemini::Api::Vertex)
                }
                Publisher::Anthropic => claude::handle(shared, req, &model, &method),
            }
        }
    }
}

fn known_model(shared: &Shared, model: &str) -> bool {
    shared.config.models.iter().any(|m| m == model)
}

/// The request body as a JSON object, or the error Google gives.
pub(crate) fn json_body(req: &Incoming) -> Result<serde_json::Map<String, Value>, String> {
    if !req.has_json_content_type() {
        return Err("Invalid JSON payload: Content-Type must be application/json.".to_string());
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("Invalid JSON payload received. Expected an object.".to_string()),
        Err(e) => Err(format!("Invalid JSON payload received. {e}")),
    }
}
