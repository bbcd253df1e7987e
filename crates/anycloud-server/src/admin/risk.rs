//! `GET /admin/v1/risk?from=&to=` (the `anycloud risk` document) and
//! `POST /admin/v1/simulate?from=&to=` with a candidate config's TOML as the body (the
//! `anycloud simulate` document), both built by `anycloud-risk` over this gateway's config
//! and store. README "Vendor risk" documents the fields.

use crate::error::ApiError;
use crate::state::AppState;
use anycloud_risk::{Period, RiskError};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Days, NaiveDate};
use serde::Deserialize;
use std::sync::Arc;

/// The period of both endpoints (UTC days, `to` exclusive; default: the 30 days up to
/// and including today).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodParams {
    /// First day (YYYY-MM-DD), inclusive.
    pub from: Option<String>,
    /// Last day (YYYY-MM-DD), exclusive.
    pub to: Option<String>,
}

/// The risk document: `period`, `concentration.{cloud,provider,jurisdiction}` each
/// `{hhi, band, entries}`, `single_points_of_failure`, `outage`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // the schema of a document serialised by anycloud-risk
pub struct RiskDocument {
    #[schema(value_type = Object)]
    period: (),
    #[schema(value_type = Object)]
    concentration: (),
    #[schema(value_type = Vec<Object>)]
    single_points_of_failure: (),
    #[schema(value_type = Vec<Object>)]
    outage: (),
}

/// The simulation: `period`, `replayed`, `replayed_as_plain_chat`, `actual`, `candidate`
/// (each `{by_cloud, refused, hhi, commitments, revenue_share}`).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // the schema of a document serialised by anycloud-risk
pub struct SimulationDocument {
    #[schema(value_type = Object)]
    period: (),
    replayed: u64,
    replayed_as_plain_chat: u64,
    #[schema(value_type = Object)]
    actual: (),
    #[schema(value_type = Object)]
    candidate: (),
}

fn date(v: &str, name: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
        ApiError::invalid(
            format!("`{name}` must be an ISO 8601 date (YYYY-MM-DD), got `{v}`"),
            Some(name),
        )
    })
}

fn period(uri: &Uri, today: NaiveDate) -> Result<Period, ApiError> {
    let q: PeriodParams = super::query(uri)?;
    let to = match &q.to {
        Some(v) => date(v, "to")?,
        None => today.checked_add_days(Days::new(1)).unwrap_or(today),
    };
    let from = match &q.from {
        Some(v) => date(v, "from")?,
        None => to.checked_sub_days(Days::new(30)).unwrap_or(to),
    };
    Period::new(from, to).map_err(|e| ApiError::invalid(e.to_string(), Some("from")))
}

fn risk_error(e: RiskError) -> ApiError {
    match e {
        RiskError::Invalid(m) => ApiError::invalid(m, None),
        other => {
            tracing::error!(error = %other, "risk document failed");
            ApiError::Internal {
                message: "the ledger could not be read".into(),
            }
        }
    }
}

#[utoipa::path(get, path = "/admin/v1/risk", tag = "risk",
    security(("admin_token" = [])),
    params(PeriodParams),
    responses(
        (status = 200, description = "Concentration, single points of failure, outage drill", body = RiskDocument),
        (status = 400, description = "Invalid period", body = super::ErrorBody),
        (status = 401, description = "No or wrong admin token", body = super::ErrorBody),
        (status = 403, description = "Not the admin token", body = super::ErrorBody),
    ))]
pub async fn risk(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    super::require_admin(&state, &headers)?;
    let today = chrono::Utc::now().date_naive();
    let period = period(&uri, today)?;
    let doc = anycloud_risk::report::build(state.store.as_ref(), &state.config, period, today)
        .await
        .map_err(risk_error)?;
    Ok(Json(doc).into_response())
}

#[utoipa::path(post, path = "/admin/v1/simulate", tag = "risk",
    security(("admin_token" = [])),
    params(PeriodParams),
    request_body(content = String, content_type = "application/toml",
        description = "The candidate config (a whole anycloud.toml); `${VAR}` references are not resolved from the gateway's environment"),
    responses(
        (status = 200, description = "The period's served requests replayed under the candidate", body = SimulationDocument),
        (status = 400, description = "Invalid period or candidate config (each problem with its line)", body = super::ErrorBody),
        (status = 401, description = "No or wrong admin token", body = super::ErrorBody),
        (status = 403, description = "Not the admin token", body = super::ErrorBody),
    ))]
pub async fn simulate(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    super::require_admin(&state, &headers)?;
    let today = chrono::Utc::now().date_naive();
    let period = period(&uri, today)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::invalid("The candidate config must be UTF-8 TOML.", None))?;
    // The gateway's environment holds its secrets: a candidate's `${VAR}` gets a
    // placeholder instead (a replay never contacts a cloud, so credentials do not matter).
    let candidate =
        anycloud_config::parse_str(text, std::path::Path::new("candidate.toml"), &|_| {
            Some("unused-by-simulation".into())
        })
        .map_err(|e| ApiError::invalid(format!("Invalid candidate config: {e}"), None))?;
    let sim = anycloud_risk::simulate::simulate(
        state.store.as_ref(),
        &state.config,
        &candidate,
        period,
        today,
        &|_| {},
    )
    .await
    .map_err(risk_error)?;
    Ok(Json(sim).into_response())
}
