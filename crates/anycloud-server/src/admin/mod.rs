//! The admin API (`/admin/v1`, product.md §3.3): the kill switch, cloud
//! state and route explain. Every route requires `server.admin_token` as
//! `Authorization: Bearer`: 401 without a bearer token, 403 with any other
//! token (a client key, a wrong token) or when no admin token is
//! configured. Errors use the OpenAI shape (`ApiError`).

pub mod clouds;
pub mod explain;
pub mod ledger;

use crate::auth::presented_key;
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::HeaderMap;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

/// Checks the admin token in constant time (no early exit on the first
/// differing byte, so response timing does not leak the token).
pub fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(presented) = presented_key(headers, false) else {
        return Err(ApiError::Unauthorized {
            message: "The admin API needs the admin token as `Authorization: Bearer <token>`."
                .into(),
        });
    };
    let Some(expected) = &state.config.server.admin_token else {
        return Err(forbidden(
            "The admin API is disabled: no `server.admin_token` is configured.",
        ));
    };
    let ok: bool = presented
        .as_bytes()
        .ct_eq(expected.expose_secret().as_bytes())
        .into();
    if ok && !presented.is_empty() {
        Ok(())
    } else {
        Err(forbidden("This token may not use the admin API."))
    }
}

fn forbidden(message: &str) -> ApiError {
    ApiError::Forbidden {
        message: message.into(),
        code: "admin_token_required",
        route: vec![],
    }
}
