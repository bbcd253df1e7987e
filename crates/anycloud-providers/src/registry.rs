//! Cloud name → [`Provider`], built once from the config at start-up.
//!
//! Each cloud gets its own provider (and so its own connection pool and
//! timeouts). Every `ProviderKind` has a provider; a cloud that cannot be built
//! (a cloud configured twice, bad credentials settings) fails with a
//! `ProviderError` at start-up rather than at the first request.

use crate::azure::AzureOpenAiProvider;
use crate::bedrock::BedrockProvider;
use crate::error::{ProviderError, ProviderErrorKind};
use crate::openai::OpenAiProvider;
use crate::Provider;
use anycloud_config::CloudConfig;
use anycloud_types::ProviderKind;
use std::collections::HashMap;
use std::sync::Arc;

/// Every configured cloud's provider, by cloud name.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    map: HashMap<String, Arc<dyn Provider>>,
}

impl Providers {
    pub fn from_config(clouds: &[CloudConfig]) -> Result<Providers, ProviderError> {
        let mut map = HashMap::with_capacity(clouds.len());
        for cloud in clouds {
            if map.contains_key(&cloud.name) {
                return Err(ProviderError::new(
                    ProviderErrorKind::Unsupported,
                    format!("cloud {} is configured twice", cloud.name),
                ));
            }
            map.insert(cloud.name.clone(), build_provider(cloud)?);
        }
        Ok(Providers { map })
    }

    /// Adds or replaces one cloud's provider (tests, hot reload).
    pub fn insert(&mut self, cloud: impl Into<String>, provider: Arc<dyn Provider>) {
        self.map.insert(cloud.into(), provider);
    }

    pub fn get(&self, cloud: &str) -> Option<&Arc<dyn Provider>> {
        self.map.get(cloud)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Cloud names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.map.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

/// The provider for one cloud.
pub fn build_provider(cloud: &CloudConfig) -> Result<Arc<dyn Provider>, ProviderError> {
    match cloud.provider {
        ProviderKind::Openai | ProviderKind::OpenaiCompatible => {
            Ok(Arc::new(OpenAiProvider::new(cloud)?))
        }
        ProviderKind::AzureOpenai => Ok(Arc::new(AzureOpenAiProvider::new(cloud)?)),
        ProviderKind::Oci => Ok(Arc::new(crate::oci::OciProvider::new(cloud)?)),
        ProviderKind::Bedrock => Ok(Arc::new(BedrockProvider::new(cloud)?)),
        ProviderKind::Vertex => Ok(Arc::new(crate::vertex::VertexProvider::new(cloud)?)),
        ProviderKind::Anthropic => Ok(Arc::new(crate::anthropic::AnthropicProvider::new(cloud)?)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod tests {
    use super::*;

    /// A `CloudConfig` from TOML-ish `key = "value"` lines (JSON under the hood,
    /// so the test needs no TOML parser).
    pub(crate) fn cloud_from_toml(src: &str) -> CloudConfig {
        let mut obj = serde_json::Map::new();
        for line in src.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once('=').unwrap();
            let v = v.trim();
            let value = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                Some(s) => serde_json::Value::String(s.to_string()),
                None => serde_json::from_str(v).unwrap(),
            };
            obj.insert(k.trim().to_string(), value);
        }
        serde_json::from_value(serde_json::Value::Object(obj)).unwrap()
    }

    #[test]
    fn builds_openai_family_and_refuses_the_rest() {
        let clouds = vec![
            cloud_from_toml("name = \"oa\"\nprovider = \"openai\"\napi_key = \"k\""),
            cloud_from_toml("name = \"local\"\nprovider = \"openai_compatible\"\nbase_url = \"http://127.0.0.1:1/v1\""),
            cloud_from_toml("name = \"az\"\nprovider = \"azure_openai\"\nbase_url = \"https://r.openai.azure.com\"\napi_key = \"k\""),
        ];
        let p = Providers::from_config(&clouds).unwrap();
        assert_eq!(p.names(), vec!["az", "local", "oa"]);
        assert_eq!(p.get("oa").unwrap().kind(), ProviderKind::Openai);
        assert_eq!(
            p.get("local").unwrap().kind(),
            ProviderKind::OpenaiCompatible
        );
        assert_eq!(p.get("az").unwrap().kind(), ProviderKind::AzureOpenai);
        assert!(p.get("nope").is_none());
    }

    #[test]
    fn duplicate_names_and_missing_settings_are_errors() {
        let c = cloud_from_toml("name = \"oa\"\nprovider = \"openai\"");
        assert!(Providers::from_config(&[c.clone(), c]).is_err());
        let c = cloud_from_toml("name = \"l\"\nprovider = \"openai_compatible\"");
        assert_eq!(
            build_provider(&c).unwrap_err().kind,
            ProviderErrorKind::Unsupported
        );
        let c =
            cloud_from_toml("name = \"az\"\nprovider = \"azure_openai\"\nbase_url = \"https://r\"");
        assert_eq!(
            build_provider(&c).unwrap_err().kind,
            ProviderErrorKind::Unsupported
        );
    }
}
