//! The web dashboard at `/ui`, served by the gateway itself: server-rendered
//! HTML, SVG charts drawn here, one small script that refreshes panels.
//!
//! - `session`  — login with the admin token → random session id in an
//!   HttpOnly, SameSite=Strict cookie; a per-session CSRF token for POSTs.
//! - `recorder` — the outcome sink that keeps the last 15 minutes per cloud
//!   and the last route decisions, in memory.
//! - `panels`   — the dashboard's panels (also served one by one for refresh).
//! - `audit_page`, `ledger_page`, `risk_page` — the audit viewer, the ledger report and
//!   the vendor-risk document.
//! - `chart`, `html` — SVG charts, escaping, the page frame, CSS and JS.
//!
//! Every page but the login form and the static assets needs a session;
//! without one it redirects to `/ui/login`. Drain and restore go through
//! `admin::clouds::set_drained`, the same audited code as the admin API.

pub mod audit_page;
pub mod chart;
pub mod html;
pub mod ledger_page;
pub mod panels;
pub mod recorder;
pub mod risk_page;
pub mod session;

use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use session::Session;
use std::sync::Arc;

/// How long a wrong token waits before its answer.
const FAILED_LOGIN_DELAY: std::time::Duration = std::time::Duration::from_millis(400);

/// The dashboard's share of the application state.
#[derive(Debug)]
pub struct UiState {
    pub sessions: session::Sessions,
    pub recorder: Arc<recorder::Recorder>,
}

impl UiState {
    pub fn new<'a>(clouds: impl IntoIterator<Item = &'a str>) -> UiState {
        UiState {
            sessions: session::Sessions::default(),
            recorder: Arc::new(recorder::Recorder::new(clouds)),
        }
    }
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/ui", get(dashboard))
        .route("/ui/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/panel/{name}", get(panel))
        .route("/ui/clouds/{name}/{action}", post(cloud_action))
        .route("/ui/mcp/{name}/{action}", post(mcp_action))
        .route("/ui/audit", get(audit))
        .route("/ui/ledger", get(ledger))
        .route("/ui/ledger.csv", get(ledger_csv))
        .route("/ui/risk", get(risk))
        .route("/ui/static/app.css", get(css))
        .route("/ui/static/app.js", get(js))
}

/// Security headers for every dashboard page: no framing, no caching of
/// admin data, nothing loaded from elsewhere.
fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(body),
    )
        .into_response()
}

fn to_login() -> Response {
    Redirect::to("/ui/login").into_response()
}

/// The session, or the redirect to log in.
fn session(state: &AppState, headers: &HeaderMap) -> Result<(String, Session), Response> {
    state.ui.sessions.get(headers).ok_or_else(to_login)
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        html::CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        html::JS,
    )
        .into_response()
}

async fn login_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if state.ui.sessions.get(&headers).is_some() {
        return Redirect::to("/ui").into_response();
    }
    html(StatusCode::OK, html::login(None))
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn login(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let Some(admin) = &state.config.server.admin_token else {
        return html(
            StatusCode::FORBIDDEN,
            html::login(Some(
                "The dashboard is disabled: set server.admin_token in the config.",
            )),
        );
    };
    let form: LoginForm = serde_urlencoded::from_bytes(&body).unwrap_or(LoginForm {
        token: String::new(),
    });
    if !crate::admin_auth::token_matches(&form.token, admin) {
        tracing::warn!("dashboard: failed login");
        // Slows down guessing; holds no lock and blocks no other request.
        tokio::time::sleep(FAILED_LOGIN_DELAY).await;
        return html(
            StatusCode::UNAUTHORIZED,
            html::login(Some("That is not the admin token.")),
        );
    }
    let id = state.ui.sessions.create();
    // Who looked is part of the trail (the session id stays out of it).
    state.governance.audit.admin(
        "admin.ui.login",
        None,
        serde_json::Value::Null,
        serde_json::json!({"via": "dashboard"}),
    );
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                session::set_cookie(&id, state.config.server.secure_cookies),
            ),
            (header::LOCATION, "/ui".to_string()),
        ],
    )
        .into_response()
}

async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some((id, s)) = state.ui.sessions.get(&headers) {
        let form: Option<CsrfForm> = serde_urlencoded::from_bytes(&body).ok();
        if !form.is_some_and(|f| s.csrf_ok(&f.csrf)) {
            return csrf_refused();
        }
        state.ui.sessions.remove(&id);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                session::clear_cookie(state.config.server.secure_cookies),
            ),
            (header::LOCATION, "/ui/login".to_string()),
        ],
    )
        .into_response()
}

fn csrf_refused() -> Response {
    html(
        StatusCode::FORBIDDEN,
        "<!doctype html><p>This form has expired or did not come from the dashboard. <a href=\"/ui\">Back to the dashboard</a>.</p>".into(),
    )
}

async fn dashboard(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let (_, s) = match session(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut body = String::new();
    for (name, title, wide) in panels::PANELS {
        let inner = panels::render(&state, name, &s.csrf)
            .await
            .unwrap_or_default();
        body.push_str(&html::panel(
            name,
            title,
            if wide { "wide" } else { "" },
            &inner,
        ));
    }
    html(
        StatusCode::OK,
        html::page("Dashboard", html::Nav::Dashboard, &s.csrf, &body),
    )
}

async fn panel(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let (_, s) = match session(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match panels::render(&state, &name, &s.csrf).await {
        Some(fragment) => html(StatusCode::OK, fragment),
        None => html(StatusCode::NOT_FOUND, "no such panel".into()),
    }
}

async fn cloud_action(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (_, s) = match session(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let form: Option<CsrfForm> = serde_urlencoded::from_bytes(&body).ok();
    if !form.is_some_and(|f| s.csrf_ok(&f.csrf)) {
        return csrf_refused();
    }
    let drained = match action.as_str() {
        "drain" => true,
        "restore" => false,
        _ => return html(StatusCode::NOT_FOUND, "unknown action".into()),
    };
    if crate::admin::clouds::set_drained(&state, &name, drained)
        .await
        .is_none()
    {
        return html(
            StatusCode::NOT_FOUND,
            format!("No cloud named `{}` is configured.", html::esc(&name)),
        );
    }
    Redirect::to("/ui#panel-clouds").into_response()
}

/// The MCP panel's Drain / Restore buttons (`mcp::admin::set_drained`, audited).
async fn mcp_action(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (_, s) = match session(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let form: Option<CsrfForm> = serde_urlencoded::from_bytes(&body).ok();
    if !form.is_some_and(|f| s.csrf_ok(&f.csrf)) {
        return csrf_refused();
    }
    let drained = match action.as_str() {
        "drain" => true,
        "restore" => false,
        _ => return html(StatusCode::NOT_FOUND, "unknown action".into()),
    };
    if crate::mcp::admin::set_drained(&state, &name, drained).is_none() {
        return html(
            StatusCode::NOT_FOUND,
            format!("No MCP server named `{}` is configured.", html::esc(&name)),
        );
    }
    Redirect::to("/ui#panel-mcp").into_response()
}

async fn audit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(f): Query<audit_page::Filters>,
) -> Response {
    let (_, s) = match session(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let body = audit_page::render(&state, &f).await;
    html(
        StatusCode::OK,
        html::page("Audit trail", html::Nav::Audit, &s.csrf, &body),
    )
}

async fn ledger(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(range): Query<ledger_page::Range>,
) -> Response {
    let (_, s) = match session(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let body = ledger_page::render(&state, &range).await;
    html(
        StatusCode::OK,
        html::page("Ledger report", html::Nav::Ledger, &s.csrf, &body),
    )
}

async fn risk(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(range): Query<ledger_page::Range>,
) -> Response {
    let (_, s) = match session(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let body = risk_page::render(&state, &range).await;
    html(
        StatusCode::OK,
        html::page("Vendor risk", html::Nav::Risk, &s.csrf, &body),
    )
}

async fn ledger_csv(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(range): Query<ledger_page::Range>,
) -> Response {
    if let Err(r) = session(&state, &headers) {
        return r;
    }
    let result = match range.dates() {
        Ok((from, to)) => ledger_page::build(&state, from, to)
            .await
            .and_then(|r| ledger_page::csv(&r))
            .map(|csv| (from, to, csv)),
        Err(e) => Err(e),
    };
    match result {
        Ok((from, to, csv)) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"anycloud-ledger-{from}-to-{to}.csv\""),
                ),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
            csv,
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}
