use super::*;
use std::path::Path;

const CFG: &str = r#"
[[clouds]]
name = "azure-us"
provider = "azure_openai"
base_url = "https://x.openai.azure.com"
api_key = "k"
api_version = "2024-10-21"
jurisdiction = "us"
[[clouds]]
name = "local-eu"
provider = "openai_compatible"
base_url = "http://127.0.0.1:1/v1"
jurisdiction = "eu"
[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-prod"
capabilities = ["chat", "stream", "tools", "vision"]
[[models.deployments]]
cloud = "local-eu"
target = "llama"
capabilities = ["chat", "stream"]
valid_until = "2030-01-01"
[[tenants]]
name = "any"
[[tenants]]
name = "eu-only"
jurisdictions = ["eu"]
[[tenants]]
name = "narrow"
models = ["other"]
"#;

struct Drained(&'static str);
impl CloudState for Drained {
    fn is_drained(&self, c: &str) -> bool {
        c == self.0
    }
    fn is_breaker_open(&self, _: &str) -> bool {
        false
    }
}

fn setup() -> (anycloud_config::Config, RoutingTable) {
    let cfg = CFG.replace("models = [\"other\"]", "models = []");
    let c = anycloud_config::parse_str(&cfg, Path::new("t.toml"), &|_| None).ok();
    let c = c.unwrap_or_else(|| unreachable!());
    let t = RoutingTable::new(&c);
    (c, t)
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap_or_default()
}

#[test]
fn config_order_and_header_rendering() {
    let (c, t) = setup();
    let input = RouteInput {
        model: "gpt-4o",
        tenant: &c.tenants[0],
        needs: &[Capability::Chat],
        date: date("2026-11-22"),
        estimated_tokens: 10,
    };
    let plan = route(&t, &input, &NoState).unwrap_or_else(|e| unreachable!("{e:?}"));
    assert_eq!(plan.candidates, vec![0, 1]);
    assert!(plan.declined.is_empty());
}

#[test]
fn vision_declines_the_cloud_without_it() {
    let (c, t) = setup();
    let input = RouteInput {
        model: "gpt-4o",
        tenant: &c.tenants[0],
        needs: &[Capability::Chat, Capability::Vision],
        date: date("2026-11-22"),
        estimated_tokens: 10,
    };
    let plan = route(&t, &input, &Drained("none")).unwrap_or_else(|e| unreachable!("{e:?}"));
    assert_eq!(plan.candidates, vec![0]);
    assert_eq!(
        reason::header_value(&plan.declined),
        "local-eu:declined(capability:vision)"
    );
}

#[test]
fn jurisdiction_window_and_drain() {
    let (c, t) = setup();
    let eu = &c.tenants[1];
    let input = RouteInput {
        model: "gpt-4o",
        tenant: eu,
        needs: &[Capability::Chat],
        date: date("2026-11-22"),
        estimated_tokens: 10,
    };
    let plan = route(&t, &input, &NoState).unwrap_or_else(|e| unreachable!("{e:?}"));
    assert_eq!(plan.candidates, vec![1]);
    assert_eq!(
        plan.declined[0].to_string(),
        "azure-us:declined(jurisdiction)"
    );

    let later = RouteInput {
        date: date("2031-01-01"),
        ..input.clone()
    };
    match route(&t, &later, &NoState) {
        Err(RouteError::NoCandidate {
            declined,
            forbidden,
        }) => {
            assert!(forbidden);
            assert_eq!(
                reason::header_value(&declined),
                "azure-us:declined(jurisdiction) local-eu:declined(outside_window)"
            );
        }
        other => unreachable!("{other:?}"),
    }
    match route(&t, &input, &Drained("local-eu")) {
        Err(RouteError::NoCandidate { forbidden, .. }) => assert!(!forbidden),
        other => unreachable!("{other:?}"),
    }
}

#[test]
fn unknown_model_suggests_close_names_and_allow_list_is_enforced() {
    let (c, t) = setup();
    let input = RouteInput {
        model: "gpt-4",
        tenant: &c.tenants[0],
        needs: &[],
        date: date("2026-11-22"),
        estimated_tokens: 1,
    };
    match route(&t, &input, &NoState) {
        Err(RouteError::UnknownModel { suggestions, .. }) => {
            assert_eq!(suggestions, vec!["gpt-4o".to_string()])
        }
        other => unreachable!("{other:?}"),
    }
    let narrow = &c.tenants[2];
    let input = RouteInput {
        model: "gpt-4o",
        tenant: narrow,
        ..input
    };
    assert!(matches!(
        route(&t, &input, &NoState),
        Err(RouteError::ModelNotAllowed { .. })
    ));
}
