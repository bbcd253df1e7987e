//! Canonical embeddings request and response.

use crate::Usage;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Text(String),
    Tokens(Vec<u32>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsRequest {
    /// The public model name the client asked for.
    pub model: String,
    pub inputs: Vec<EmbeddingInput>,
    pub dimensions: Option<u32>,
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsResponse {
    /// The model as the cloud named it.
    pub model: String,
    /// One vector per input, in input order.
    pub vectors: Vec<Vec<f32>>,
    pub usage: Usage,
}
