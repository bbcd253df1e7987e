//! Governance that knows nothing of HTTP or the server's `AppState`: budgets and rate
//! limits, each decided locally or shared by every instance through Redis, the Redis link
//! they share, the audit chain writer and payload sealing (ARCHITECTURE.md "Crates"). The
//! server admits requests with these types and maps their refusals to API errors in one
//! place (`governance` in the server).
//!
//! - [`ratelimit`]: this instance's own GCRA; [`redis_ratelimit`]: the same algorithm in
//!   Redis; [`limits`]: picks one per check (`rate_limits_when_redis_down`).
//! - [`budget`]: reservations against tenant and key budgets, settled to the real cost;
//!   [`redis_budget`]: the same totals kept in Redis by Lua scripts.
//! - [`link`]: the Redis connection and whether it answers; [`redis_metrics`]: its series.
//! - [`audit`]: the audit trail's queue and chain keys; [`capture`]: payload sealing
//!   (AES-256-GCM, key rotation, redaction) and the capture queue.

pub mod audit;
pub mod budget;
pub mod capture;
pub mod limits;
pub mod link;
pub mod ratelimit;
pub mod redis_budget;
pub mod redis_metrics;
pub mod redis_ratelimit;
