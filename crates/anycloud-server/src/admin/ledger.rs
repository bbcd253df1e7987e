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
