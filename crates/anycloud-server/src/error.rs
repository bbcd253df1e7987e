//! One error type for every client-facing failure, rendered in one place in
//! the OpenAI error shape (`{"error":{"message","type","param","code"}}`)
//! or, for `/v1/messages`, Anthropic's (`{"type":"error","error":{"type",
//! "message"}}`), with the right status. Messages never contain secrets: they are built
//! from our own text, config names and the clouds' error messages.

use anycloud_governance::ratelimit::format_reset;
use anycloud_governance::{Admission, Limited, Refusal};
use anycloud_providers::ProviderError;
use anycloud_router::{reason::header_value, Decision};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub enum ApiError {
    /// 400: the request is malformed or has a bad field.
    InvalidRequest {
        message: String,
        param: Option<String>,
        code: Option<&'static str>,
    },
    /// 400: no deployment of the model has a capability the request needs.
    Unservable {
        message: String,
        route: Vec<Decision>,
    },
    /// 401: no key, a malformed key, or an unknown or revoked key.
    Unauthorized { message: String },
    /// 403: policy forbids this model or every cloud that could serve it.
    Forbidden {
        message: String,
        code: &'static str,
        route: Vec<Decision>,
    },
    /// 404: unknown model or object.
    NotFound {
        message: String,
        param: Option<String>,
        code: &'static str,
    },
    /// 409: the object already exists.
    Conflict { message: String },
    /// 405 on a known path with the wrong method.
    MethodNotAllowed,
    /// 413: body larger than `server.max_body_bytes`.
    PayloadTooLarge { limit: usize },
    /// A cloud rejected the request as the client's error (e.g. 400, or an
    /// Azure content filter): passed through with the cloud's status.
    Upstream {
        error: ProviderError,
        route: Vec<Decision>,
        cloud: String,
    },
    /// 502/503/504: no cloud could serve; `route` lists each attempt. 429 when every
    /// attempt was rate limited, with the soonest `retry_after` any cloud gave (seconds),
    /// so SDKs back off and retry as they would against the cloud itself.
    NoCloud {
        status: StatusCode,
        message: String,
        route: Vec<Decision>,
        retry_after: Option<u64>,
    },
    /// 500: a bug or an unavailable store. The message is generic.
    Internal { message: String },
    /// 503: the gateway cannot decide right now (e.g. budgets while the shared Redis is
    /// unreachable and `store.redis_down.budgets = "refuse"`); retry shortly.
    Unavailable {
        message: String,
        code: &'static str,
        retry_after: u64,
    },
    /// 429: a rate limit (`rate_limit_exceeded`) or budget (`budget_exceeded`) refused
    /// the request; `headers` are the `x-ratelimit-*` headers.
    TooManyRequests {
        message: String,
        code: &'static str,
        retry_after: Option<u64>,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
}

/// The one place governance's refusals become API errors (README "Governance: tenants,
/// keys, budgets, limits, audit, capture"; ARCHITECTURE.md "The request path", step 7).
impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        match r {
            Refusal::Backlog { queue } => ApiError::Unavailable {
                message: format!(
                    "The gateway cannot record more requests right now (its {queue} queue is full while the store catches up); try again shortly."
                ),
                code: "bookkeeping_backlog",
                retry_after: 1,
            },
            Refusal::KeyStoreUnavailable => ApiError::Unavailable {
                message: "The gateway's key store is unavailable; try again shortly.".into(),
                code: "key_store_unavailable",
                retry_after: 1,
            },
            Refusal::RateLimited(l) => rate_limited(l),
            Refusal::BudgetExceeded { exceeded, limits } => ApiError::TooManyRequests {
                message: exceeded.message,
                code: "budget_exceeded",
                retry_after: exceeded.retry_after,
                headers: ratelimit_headers(&limits),
            },
            Refusal::BudgetUnavailable { message } => ApiError::Unavailable {
                message,
                code: "budget_unavailable",
                retry_after: 1,
            },
        }
    }
}

fn rate_limited(l: Limited) -> ApiError {
    let Limited {
        label,
        kind,
        limit,
        cost,
        state,
        retry_after,
        ..
    } = &l;
    let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let message = if *kind == "tokens" && cost > limit {
        format!(
            "This request needs about {cost} tokens, more than the {label} limit of {limit} tokens per minute allows at once; lower max_tokens or the prompt."
        )
    } else {
        format!(
            "Rate limit reached for {label}: {limit} {kind} per minute (this request: {cost}, remaining: {}). Please try again in {}.",
            state.remaining,
            format_reset(*retry_after)
        )
    };
    ApiError::TooManyRequests {
        message,
        code: "rate_limit_exceeded",
        retry_after: Some(secs),
        headers: ratelimit_headers(&l.limits),
    }
}

/// The `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers for the limits a
/// request fell under: on every answer admission let through, and on its refusals.
pub fn ratelimit_headers(a: &Admission) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for (kind, st) in [("requests", a.requests), ("tokens", a.tokens)] {
        let Some(st) = st else { continue };
        for (name, value) in [
            (format!("x-ratelimit-limit-{kind}"), st.limit.to_string()),
            (
                format!("x-ratelimit-remaining-{kind}"),
                st.remaining.to_string(),
            ),
            (format!("x-ratelimit-reset-{kind}"), format_reset(st.reset)),
        ] {
            if let (Ok(h), Ok(v)) = (
                HeaderName::try_from(name),
                HeaderValue::try_from(value.as_str()),
            ) {
                out.push((h, v));
            }
        }
    }
    out
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> ApiError {
        ApiError::InvalidRequest {
            message: message.into(),
            param: param.map(str::to_string),
            code: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { .. } | ApiError::Unservable { .. } => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Upstream { error, .. } => error
                .status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .filter(|s| s.is_client_error())
                .unwrap_or(StatusCode::BAD_REQUEST),
            ApiError::NoCloud { status, .. } => *status,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// Low-cardinality name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest { .. } => "invalid_request",
            ApiError::Unservable { .. } => "unservable",
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict { .. } => "conflict",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Upstream { .. } => "upstream_rejected",
            ApiError::NoCloud { .. } => "no_cloud",
            ApiError::Internal { .. } => "internal",
            ApiError::Unavailable { code, .. } => code,
            ApiError::TooManyRequests { code, .. } => code,
        }
    }

    /// The route decisions to show in `x-anycloud-route`, if any.
    pub fn route(&self) -> &[Decision] {
        match self {
            ApiError::Forbidden { route, .. }
            | ApiError::Unservable { route, .. }
            | ApiError::Upstream { route, .. }
            | ApiError::NoCloud { route, .. } => route,
            _ => &[],
        }
    }

    /// The OpenAI-shaped error object (the value of `"error"`).
    pub fn openai_object(&self) -> Value {
        let (message, kind, param, code): (String, &str, Option<String>, Option<&str>) = match self
        {
            ApiError::InvalidRequest {
                message,
                param,
                code,
            } => (
                message.clone(),
                "invalid_request_error",
                param.clone(),
                *code,
            ),
            ApiError::Unservable { message, .. } => (
                message.clone(),
                "invalid_request_error",
                Some("model".into()),
                Some("model_capability_mismatch"),
            ),
            ApiError::Unauthorized { message } => (
                message.clone(),
                "authentication_error",
                None,
                Some("invalid_api_key"),
            ),
            ApiError::Forbidden { message, code, .. } => {
                (message.clone(), "permission_error", None, Some(code))
            }
            ApiError::NotFound {
                message,
                param,
                code,
            } => (
                message.clone(),
                "not_found_error",
                param.clone(),
                Some(code),
            ),
            ApiError::Conflict { message } => (
                message.clone(),
                "invalid_request_error",
                None,
                Some("conflict"),
            ),
            ApiError::MethodNotAllowed => (
                "Method not allowed on this path.".into(),
                "invalid_request_error",
                None,
                Some("method_not_allowed"),
            ),
            ApiError::PayloadTooLarge { limit } => (
                format!("Request body is larger than the gateway's limit of {limit} bytes."),
                "invalid_request_error",
                None,
                Some("request_too_large"),
            ),
            ApiError::Upstream { error, .. } => {
                if let Some(body) = &error.client_body {
                    // Accept the cloud's envelope or its inner object.
                    return body.get("error").cloned().unwrap_or_else(|| body.clone());
                }
                (error.message.clone(), "invalid_request_error", None, None)
            }
            ApiError::NoCloud {
                message, status, ..
            } if *status == StatusCode::TOO_MANY_REQUESTS => (
                message.clone(),
                "rate_limit_error",
                None,
                Some("rate_limit_exceeded"),
            ),
            ApiError::NoCloud { message, .. } => (
                message.clone(),
                "api_error",
                None,
                Some("no_cloud_available"),
            ),
            ApiError::Internal { message } => {
                (message.clone(), "api_error", None, Some("internal_error"))
            }
            ApiError::Unavailable { message, code, .. } => {
                (message.clone(), "api_error", None, Some(code))
            }
            ApiError::TooManyRequests { message, code, .. } => {
                (message.clone(), "rate_limit_error", None, Some(code))
            }
        };
        json!({"message": message, "type": kind, "param": param, "code": code})
    }
}

/// Which API's error shape a response uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    OpenAi,
    Anthropic,
}

impl ApiError {
    /// The Anthropic `error.type` for this error: derived from the same
    /// [`ApiError::status`], so both shapes always agree on the status.
    pub fn anthropic_type(&self) -> &'static str {
        anycloud_providers::anthropic::wire::error_type_for_status(self.status().as_u16())
    }

    /// The Anthropic-shaped body, `{"type":"error","error":{"type","message"}}`
    /// (for `/v1/messages`).
    pub fn anthropic_body(&self) -> Value {
        let message = self.openai_object()["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| self.kind().to_string());
        json!({"type": "error", "error": {"type": self.anthropic_type(), "message": message}})
    }

    /// The response in Anthropic's error shape, with the same status and
    /// headers as the OpenAI one.
    pub fn into_anthropic_response(self) -> Response {
        self.render(Shape::Anthropic)
    }

    fn render(self, shape: Shape) -> Response {
        let body = match shape {
            Shape::OpenAi => json!({ "error": self.openai_object() }),
            Shape::Anthropic => self.anthropic_body(),
        };
        let mut resp = (self.status(), axum::Json(body)).into_response();
        let route = self.route();
        if !route.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&header_value(route)) {
                resp.headers_mut().insert("x-anycloud-route", v);
            }
        }
        if let ApiError::Upstream { error, cloud, .. } = &self {
            if let Ok(v) = HeaderValue::from_str(cloud) {
                resp.headers_mut().insert("x-anycloud-cloud", v);
            }
            let _ = error;
        }
        if let ApiError::TooManyRequests { headers, .. } = &self {
            for (h, v) in headers {
                resp.headers_mut().insert(h.clone(), v.clone());
            }
        }
        if let ApiError::TooManyRequests {
            retry_after: Some(s),
            ..
        }
        | ApiError::NoCloud {
            retry_after: Some(s),
            ..
        } = &self
        {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(*s));
        }
        if let ApiError::Unavailable { retry_after, .. } = &self {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from(*retry_after),
            );
        }
        resp.extensions_mut().insert(ErrorKind(self.kind()));
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.render(Shape::OpenAi)
    }
}

/// Marks a response as an error of this kind, for the metrics layer.
#[derive(Debug, Clone, Copy)]
pub struct ErrorKind(pub &'static str);
