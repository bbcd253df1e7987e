//! The canonical model in the middle of the gateway.
//!
//! Every ingress API (OpenAI chat completions, embeddings and Responses, the
//! Anthropic Messages API) parses into these types, and every provider (OpenAI and
//! OpenAI-compatible, Azure OpenAI, Bedrock, Vertex, Anthropic, OCI) translates from
//! them to its own wire format and back. Nothing here knows
//! about HTTP or any one cloud.
//!
//! Neighbours: `anycloud-providers` (egress translations), `anycloud-server`
//! (ingress translations), `anycloud-router` (reads [`ChatRequest::needs`]).

pub mod chat;
pub mod embeddings;
pub mod ids;
pub mod stream;
pub mod usage;

pub use chat::*;
pub use embeddings::*;
pub use ids::*;
pub use stream::*;
pub use usage::*;
