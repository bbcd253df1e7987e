//! `GET /admin/v1/ledger/report?from=&to=&group_by=&format=`: the same report as
//! `anycloud report` (`anycloud_ledger::report`), as JSON (default), CSV or a text table.

use crate::error::ApiError;
use crate::state::AppState;
use anycloud_ledger::report::{self, GroupBy, ReportFormat, ReportRequest};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use std::collections::HashMap;
use std::sync::Arc;

fn date(q: &HashMap<String, String>, name: &str) -> Result<NaiveDate, ApiError> {
    let v = q.get(name).ok_or_else(|| {
        ApiError::invalid(format!("`{name}` is required (YYYY-MM-DD)"), Some(name))
    })?;
    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
        ApiError::invalid(
            format!("`{name}` must be an ISO 8601 date (YYYY-MM-DD), got `{v}`"),
            Some(name),
        )
    })
}

/// The ledger report (`anycloud_ledger::report::Report::to_json`; this type only documents
/// it). Amounts are US dollars (numbers, from nano-dollar sums).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // the schema of a document serialised by anycloud-ledger
pub struct LedgerReportDocument {
    #[schema(format = Date)]
    from: String,
    /// Exclusive.
    #[schema(format = Date)]
    to: String,
    /// `{scope: "all", requests, input_tokens, output_tokens, cached_tokens,
    /// cache_write_tokens, reasoning_tokens, cache_hit_ratio, cost_usd, saved_by_caching_usd}`.
    #[schema(value_type = Object)]
    total: (),
    /// The same figures per cloud (`cloud`), when grouped by cloud.
    #[schema(value_type = Vec<Object>)]
    clouds: (),
    #[schema(value_type = Vec<Object>)]
    models: (),
    #[schema(value_type = Vec<Object>)]
    tenants: (),
    /// Each revenue-share agreement: accrued, cap, projection.
    #[schema(value_type = Vec<Object>)]
    revenue_share: (),
    /// Each commitment: spent, remaining, on track.
    #[schema(value_type = Vec<Object>)]
    commitments: (),
}

#[utoipa::path(get, path = "/admin/v1/ledger/report", tag = "ledger",
    security(("admin_token" = [])),
    params(
        ("from" = String, Query, format = Date, description = "First day (UTC), YYYY-MM-DD"),
        ("to" = String, Query, format = Date, description = "Day after the last (exclusive), YYYY-MM-DD"),
        ("group_by" = Option<String>, Query, description = "Any of cloud, model, tenant, comma-separated; all by default"),
        ("format" = Option<String>, Query, description = "json (default), csv or table"),
    ),
    responses(
        (status = 200, description = "Spend, tokens, caching, revenue share and commitments for the period",
            content((LedgerReportDocument = "application/json"), (String = "text/csv"), (String = "text/plain"))),
        (status = 400, description = "A missing or malformed date, an empty range, an unknown group or format", body = super::ErrorBody),
        (status = 401, description = "No or wrong admin token", body = super::ErrorBody),
        (status = 403, description = "Not the admin token", body = super::ErrorBody),
    ))]
pub async fn report(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    super::require_admin(&state, &headers)?;
    let (from, to) = (date(&q, "from")?, date(&q, "to")?);
    let group_by = match q.get("group_by") {
        Some(g) => {
            GroupBy::parse(g).map_err(|e| ApiError::invalid(e.to_string(), Some("group_by")))?
        }
        None => GroupBy::default(),
    };
    let format = match q.get("format") {
        Some(f) => {
            ReportFormat::parse(f).map_err(|e| ApiError::invalid(e.to_string(), Some("format")))?
        }
        None => ReportFormat::Json,
    };
    let req = ReportRequest {
        from,
        to,
        group_by,
        today: chrono::Utc::now().date_naive(),
    };
    let built = report::build(
        state.store.as_ref(),
        &state.config.agreements,
        &req,
        &|_, _| {},
    )
    .await
    .map_err(|e| match e {
        anycloud_ledger::LedgerError::Invalid(m) => ApiError::invalid(m, Some("from")),
        other => {
            tracing::error!(error = %other, "ledger report failed");
            ApiError::Internal {
                message: "the ledger could not be read".into(),
            }
        }
    })?;
    let body = built.render(format).map_err(|_| ApiError::Internal {
        message: "the report could not be rendered".into(),
    })?;
    let content_type = match format {
        ReportFormat::Json => "application/json",
        ReportFormat::Csv => "text/csv; charset=utf-8",
        ReportFormat::Table => "text/plain; charset=utf-8",
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}
