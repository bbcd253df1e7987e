//! Payload capture on the request path: whether a principal's tenant captures, and the
//! hand-off of one request's bodies to the sealer and the capture queue. Sealing, key
//! rotation, redaction and the queue itself are `anycloud_governance::capture`.

pub use anycloud_governance::capture::*;

use serde_json::Value;

/// Whether this principal's tenant captures payloads (and a key is configured).
pub fn wants(state: &crate::state::AppState, p: &crate::auth::Principal) -> bool {
    p.tenant.capture && state.governance.sealer.enabled()
}

/// Seals and stores one request's bodies off the request path.
pub fn store<R: serde::Serialize>(
    state: &std::sync::Arc<crate::state::AppState>,
    request_id: &str,
    p: &crate::auth::Principal,
    request: &impl serde::Serialize,
    response: Option<&R>,
) {
    let body = serde_json::json!({
        "request": serde_json::to_value(request).unwrap_or(Value::Null),
        "response": response.and_then(|r| serde_json::to_value(r).ok()),
    });
    let record = match state
        .governance
        .sealer
        .seal(request_id, &p.tenant.name, body)
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "payload capture failed");
            return;
        }
    };
    state.governance.captures.push(record);
}
