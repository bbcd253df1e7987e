//! Upstream clouds behind one trait.
//!
//! [`Provider`] is what the server's dispatcher calls; each cloud module is a
//! translation from the canonical model (`anycloud-types`) to that cloud's
//! wire format and back, nothing more. Layout per cloud: `mod.rs` (the trait
//! impl), `wire.rs` (serde types for the cloud's JSON), `convert.rs` (pure
//! functions to and from the canonical model), `stream.rs` (the chunk state
//! machine, a [`pump::Decode`] run by the one [`pump::pump`] loop), `auth.rs`.
//!
//! Timeouts are the provider's job: connect (client builder), first byte
//! (until response headers) and between chunks (inside the event stream), all
//! from the cloud's config.

pub mod anthropic;
pub mod auto_cache;
pub mod azure;
pub mod bedrock;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod oci;
pub mod openai;
pub mod pump;
pub mod registry;
pub mod sse;
pub mod trace_context;
pub mod vertex;

pub use error::{ProviderError, ProviderErrorKind};
pub use registry::{build_provider, Providers};

use anycloud_types::{
    ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, ProviderKind, StreamEvent,
};
use async_trait::async_trait;
use futures::Stream;
use std::pin::Pin;

/// Canonical stream events from one upstream attempt.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, ProviderError>> + Send>>;

/// Per-attempt context the dispatcher hands a provider.
#[derive(Debug, Clone, Default)]
pub struct CallCtx {
    /// The gateway's request id, sent upstream where the cloud has a header
    /// for client request ids.
    pub request_id: String,
    /// W3C `traceparent` to pass on.
    pub traceparent: Option<String>,
}

/// One cloud. `target` is the deployment's cloud-side id (Azure deployment
/// name, Bedrock model id, …); `req.model` is the client's public name and
/// must not be sent upstream.
#[async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> ProviderKind;

    /// Non-streaming chat.
    async fn chat(
        &self,
        target: &str,
        req: &ChatRequest,
        ctx: &CallCtx,
    ) -> Result<ChatResponse, ProviderError>;

    /// Streaming chat. Returns once the cloud has answered 200 (the first
    /// byte), so a failure before that can still fail over; errors after it
    /// arrive as `Err` items in the stream. Usage is always requested from
    /// the cloud (metering needs it) and arrives as [`StreamEvent::Usage`].
    async fn chat_stream(
        &self,
        target: &str,
        req: &ChatRequest,
        ctx: &CallCtx,
    ) -> Result<EventStream, ProviderError>;

    async fn embed(
        &self,
        target: &str,
        req: &EmbeddingsRequest,
        ctx: &CallCtx,
    ) -> Result<EmbeddingsResponse, ProviderError>;
}
