//! The admin API (`/admin/v1`, product.md §3.3): every route requires the admin token
//! from `server.admin_token` as `Authorization: Bearer` — 401 without a token, 403 with a
//! wrong one or a client key (and 403 when no admin token is configured at all).

pub mod ledger;

use crate::error::ApiError;
use crate::state::AppState;
use axum::http::HeaderMap;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

/// Checks the admin token, comparing in constant time so timing reveals nothing.
pub fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(presented) = crate::auth::presented_key(headers, false) else {
        return Err(ApiError::Unauthorized {
            message: "the admin API needs `Authorization: Bearer <admin token>`".into(),
        });
    };
    let forbidden = || ApiError::Forbidden {
        message: "this token may not use the admin API".into(),
        code: "admin_token_required",
        route: Vec::new(),
    };
    let Some(token) = state.config.server.admin_token.as_ref() else {
        return Err(forbidden());
    };
    if bool::from(presented.as_bytes().ct_eq(token.expose_secret().as_bytes())) {
        Ok(())
    } else {
        Err(forbidden())
    }
}
