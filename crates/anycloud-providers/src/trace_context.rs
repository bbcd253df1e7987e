//! Where the `traceparent` sent to a cloud comes from.
//!
//! Without tracing, the client's own header is passed on as it came
//! ([`crate::CallCtx::traceparent`]). With tracing on, the server installs a
//! source that formats the current attempt span's context, so the cloud's
//! spans hang under that attempt. A plain function pointer in a `OnceLock`:
//! one atomic load per upstream call when tracing is off.

use std::sync::OnceLock;

type Source = fn() -> Option<String>;

static SOURCE: OnceLock<Source> = OnceLock::new();

/// Installs the source of per-attempt trace context (once per process).
pub fn set_source(f: Source) {
    let _ = SOURCE.set(f);
}

impl crate::CallCtx {
    /// The `traceparent` header for this upstream call, if any.
    pub fn traceparent_header(&self) -> Option<String> {
        SOURCE
            .get()
            .and_then(|f| f())
            .or_else(|| self.traceparent.clone())
    }
}
