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
        seed: 1,
        spend: &NoSpend,
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
        seed: 1,
        spend: &NoSpend,
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
        seed: 1,
        spend: &NoSpend,
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
        seed: 1,
        spend: &NoSpend,
    };
    match route(&t, &input, &NoState) {
        Err(RouteError::UnknownModel { suggestions, .. }) => {
            assert_eq!(suggestions, vec!["gpt-4o".to_string()])
        }
        other => unreachable!("{other:?}"),
    }
    let narrow = &c.tenants[2];
    // A tenant with an allow-list is never told about models outside it.
    let input_narrow = RouteInput {
        tenant: narrow,
        ..input
    };
    match route(&t, &input_narrow, &NoState) {
        Err(RouteError::UnknownModel { suggestions, .. }) => assert!(
            suggestions
                .iter()
                .all(|s| narrow.models.as_ref().is_some_and(|m| m.contains(s))),
            "{suggestions:?}"
        ),
        other => unreachable!("{other:?}"),
    }
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

const AGREEMENTS: &str = r#"
[routing]
strategy = "STRATEGY"
[[clouds]]
name = "azure-us"
provider = "openai_compatible"
base_url = "http://127.0.0.1:1/v1"
jurisdiction = "us"
[[clouds]]
name = "aws-eu"
provider = "bedrock"
region = "eu-central-1"
jurisdiction = "eu"
[[clouds]]
name = "gcp-eu"
provider = "openai_compatible"
base_url = "http://127.0.0.1:2/v1"
jurisdiction = "eu"
[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "gcp-eu"
target = "g"
price = { input_per_mtok = 1.0, output_per_mtok = 1.0 }
weight = 1
[[models.deployments]]
cloud = "aws-eu"
target = "a"
price = { input_per_mtok = 0.5, output_per_mtok = 0.5 }
weight = 1000
[[models.deployments]]
cloud = "azure-us"
target = "z"
price = { input_per_mtok = 9.0, output_per_mtok = 9.0 }
[[models]]
name = "new-model"
[[models.deployments]]
cloud = "aws-eu"
target = "n"
[[models]]
name = "frontier-agent"
[[models.deployments]]
cloud = "aws-eu"
target = "f"
[[models.deployments]]
cloud = "gcp-eu"
target = "f2"
[[models.deployments]]
cloud = "azure-us"
target = "f3"
[[models]]
name = "licensed"
[[models.deployments]]
cloud = "azure-us"
target = "l"
valid_from = "2026-03-01"
valid_until = "2026-12-31"
[[models.deployments]]
cloud = "gcp-eu"
target = "l2"
[agreements.primary]
cloud = "azure-us"
ship_first = true
declined_models = ["frontier-agent"]
[[agreements.exclusive]]
model = "frontier-agent"
cloud = "aws-eu"
until = "2027-06-30"
[[agreements.commitment]]
cloud = "gcp-eu"
amount_usd = 365.0
from = "2026-01-01"
to = "2027-01-01"
[[tenants]]
name = "any"
"#;

fn agreements(strategy: &str) -> (anycloud_config::Config, RoutingTable) {
    let text = AGREEMENTS.replace("STRATEGY", strategy);
    let c = anycloud_config::parse_str(&text, Path::new("t.toml"), &|_| None)
        .unwrap_or_else(|e| unreachable!("{e}"));
    let t = RoutingTable::new(&c);
    (c, t)
}

fn clouds_of(t: &RoutingTable, plan: &RoutePlan) -> Vec<String> {
    let d = t.deployments(plan.model_index);
    plan.candidates
        .iter()
        .map(|&i| d[i].cloud.clone())
        .collect()
}

fn plan_for(
    t: &RoutingTable,
    c: &anycloud_config::Config,
    model: &str,
    day: &str,
    spend: &dyn SpendSource,
    st: &dyn CloudState,
) -> Result<RoutePlan, RouteError> {
    let input = RouteInput {
        model,
        tenant: &c.tenants[0],
        needs: &[Capability::Chat],
        date: date(day),
        estimated_tokens: 1000,
        seed: 7,
        spend,
    };
    route(t, &input, st)
}

#[test]
fn primary_first_then_priority() {
    let (c, t) = agreements("priority");
    let plan = plan_for(&t, &c, "gpt-4o", "2026-11-22", &NoSpend, &NoState)
        .unwrap_or_else(|e| unreachable!("{e:?}"));
    assert_eq!(clouds_of(&t, &plan), ["azure-us", "gcp-eu", "aws-eu"]);
    assert_eq!(plan.notes[0], "primary (first look)");
}

#[test]
fn cost_orders_cheapest_after_primary() {
    let (c, t) = agreements("cost");
    let plan = plan_for(&t, &c, "gpt-4o", "2026-11-22", &NoSpend, &NoState)
        .unwrap_or_else(|e| unreachable!("{e:?}"));
    assert_eq!(clouds_of(&t, &plan), ["azure-us", "aws-eu", "gcp-eu"]);
}

#[test]
fn weighted_is_seeded_and_follows_weights() {
    let (c, t) = agreements("weighted");
    let mut aws_second = 0;
    for seed in 0..200 {
        let input = RouteInput {
            model: "gpt-4o",
            tenant: &c.tenants[0],
            needs: &[Capability::Chat],
            date: date("2026-11-22"),
            estimated_tokens: 1,
            seed,
            spend: &NoSpend,
        };
        let a = route(&t, &input, &NoState).unwrap_or_else(|e| unreachable!("{e:?}"));
        let b = route(&t, &input, &NoState).unwrap_or_else(|e| unreachable!("{e:?}"));
        assert_eq!(a.candidates, b.candidates, "same seed, same plan");
        assert_eq!(clouds_of(&t, &a)[0], "azure-us");
        if clouds_of(&t, &a)[1] == "aws-eu" {
            aws_second += 1;
        }
    }
    assert!(
        aws_second > 190,
        "weight 1000 vs 1 wins nearly always: {aws_second}"
    );
}

struct Latency;
impl CloudState for Latency {
    fn is_drained(&self, _: &str) -> bool {
        false
    }
    fn is_breaker_open(&self, _: &str) -> bool {
        false
    }
    fn latency_ms(&self, c: &str) -> Option<f64> {
        (c == "gcp-eu").then_some(500.0)
    }
}

#[test]
fn latency_tries_unmeasured_then_fastest() {
    let (c, t) = agreements("latency");
    let plan = plan_for(&t, &c, "gpt-4o", "2026-11-22", &NoSpend, &Latency)
        .unwrap_or_else(|e| unreachable!("{e:?}"));
    assert_eq!(clouds_of(&t, &plan), ["azure-us", "aws-eu", "gcp-eu"]);
}

struct Spent(f64);
impl SpendSource for Spent {
    fn spent_usd(&self, c: &str, _: NaiveDate, _: NaiveDate) -> f64 {
        if c == "gcp-eu" {
            self.0
        } else {
            0.0
        }
    }
}

#[test]
fn commitment_prefers_the_cloud_behind_schedule() {
    let (c, t) = agreements("commitment");
    // gcp-eu should have spent ~326 USD by 2026-11-22; it spent 0 → first.
    let plan = plan_for(&t, &c, "gpt-4o", "2026-11-22", &Spent(0.0), &NoState)
        .unwrap_or_else(|e| unreachable!("{e:?}"));
    assert_eq!(clouds_of(&t, &plan), ["azure-us", "gcp-eu", "aws-eu"]);
    assert!(plan.notes[1].contains("behind"), "{:?}", plan.notes);
    // Ahead of schedule: still before uncommitted clouds (documented rule),
    // and the note shows a negative shortfall.
    let plan = plan_for(&t, &c, "gpt-4o", "2026-11-22", &Spent(1000.0), &NoState)
        .unwrap_or_else(|e| unreachable!("{e:?}"));
    assert!(plan.notes[1].contains("-"), "{:?}", plan.notes);
}

#[test]
fn ship_first_exclusive_and_declined_models() {
    let (c, t) = agreements("priority");
    // new-model: only aws-eu has it; the primary neither serves nor declined it.
    match plan_for(&t, &c, "new-model", "2026-11-22", &NoSpend, &NoState) {
        Err(RouteError::NoCandidate {
            declined,
            forbidden,
        }) => {
            assert!(forbidden);
            assert_eq!(
                reason::header_value(&declined),
                "aws-eu:declined(ship_first)"
            );
        }
        other => unreachable!("{other:?}"),
    }
    // frontier-agent: declined by the primary, exclusive on aws-eu until mid-2027.
    let plan = plan_for(&t, &c, "frontier-agent", "2026-11-22", &NoSpend, &NoState)
        .unwrap_or_else(|e| unreachable!("{e:?}"));
    assert_eq!(clouds_of(&t, &plan), ["aws-eu"]);
    assert_eq!(
        reason::header_value(&plan.declined),
        "gcp-eu:declined(exclusive_elsewhere) azure-us:declined(declined_by_primary)"
    );
    // After the exclusivity ends, gcp-eu may serve it too; the primary, which
    // declined it, still not, although it has a deployment.
    let plan = plan_for(&t, &c, "frontier-agent", "2027-07-01", &NoSpend, &NoState)
        .unwrap_or_else(|e| unreachable!("{e:?}"));
    assert_eq!(clouds_of(&t, &plan), ["aws-eu", "gcp-eu"]);
    assert_eq!(
        reason::header_value(&plan.declined),
        "azure-us:declined(declined_by_primary)"
    );
}

#[test]
fn ship_first_releases_once_the_primary_window_started() {
    let (c, t) = agreements("priority");
    // Before the primary's window opens the model may run nowhere else.
    match plan_for(&t, &c, "licensed", "2026-02-28", &NoSpend, &NoState) {
        Err(RouteError::NoCandidate { declined, .. }) => assert_eq!(
            reason::header_value(&declined),
            "azure-us:declined(outside_window) gcp-eu:declined(ship_first)"
        ),
        other => unreachable!("{other:?}"),
    }
    // Inside it: the primary first, then the others.
    let plan = plan_for(&t, &c, "licensed", "2026-03-01", &NoSpend, &NoState)
        .unwrap_or_else(|e| unreachable!("{e:?}"));
    assert_eq!(clouds_of(&t, &plan), ["azure-us", "gcp-eu"]);
    // After it ended: the primary is skipped, the others still serve.
    let plan = plan_for(&t, &c, "licensed", "2027-01-01", &NoSpend, &NoState)
        .unwrap_or_else(|e| unreachable!("{e:?}"));
    assert_eq!(clouds_of(&t, &plan), ["gcp-eu"]);
    assert_eq!(
        reason::header_value(&plan.declined),
        "azure-us:declined(outside_window)"
    );
}

#[test]
fn explain_matches_route() {
    let (c, t) = agreements("priority");
    let input = RouteInput {
        model: "frontier-agent",
        tenant: &c.tenants[0],
        needs: &[Capability::Chat],
        date: date("2026-11-22"),
        estimated_tokens: 1,
        seed: 1,
        spend: &NoSpend,
    };
    let e = explain::explain(&t, &input, &NoState);
    assert_eq!(
        e.route_header,
        "gcp-eu:declined(exclusive_elsewhere) azure-us:declined(declined_by_primary) aws-eu:ok"
    );
    assert_eq!(e.candidates[0].cloud, "aws-eu");
    assert!(e.to_table().contains("exclusive_elsewhere"));
    assert_eq!(e.to_json()["declined"][0]["reason"], "exclusive_elsewhere");
}

#[test]
fn continuation_keeps_prefill_deployments_off_the_interrupted_cloud() {
    let cfg = CFG.replace("models = [\"other\"]", "models = []").replace(
        "capabilities = [\"chat\", \"stream\"]\nvalid_until",
        "capabilities = [\"chat\", \"stream\", \"prefill\"]\nvalid_until",
    );
    let c = anycloud_config::parse_str(&cfg, Path::new("t.toml"), &|_| None)
        .unwrap_or_else(|e| unreachable!("{e:?}"));
    let t = RoutingTable::new(&c);
    let input = RouteInput {
        model: "gpt-4o",
        tenant: &c.tenants[0],
        needs: &[Capability::Chat, Capability::Stream],
        date: date("2026-11-22"),
        estimated_tokens: 10,
        seed: 1,
        spend: &NoSpend,
    };
    // Azure cannot continue an answer: only the prefill deployment is left.
    let plan = continuation(&t, &input, &NoState, &["azure-us".into()])
        .unwrap_or_else(|e| unreachable!("{e:?}"));
    assert_eq!(clouds_of(&t, &plan), vec!["local-eu"]);
    assert_eq!(
        plan.declined,
        vec![Decision {
            cloud: "azure-us".into(),
            outcome: Outcome::Declined(Reason::Capability(Capability::Prefill)),
        }]
    );
    // The prefill cloud itself was interrupted: nowhere to continue.
    let none = continuation(&t, &input, &NoState, &["local-eu".into()]);
    assert!(matches!(
        none,
        Err(RouteError::NoCandidate {
            forbidden: false,
            ..
        })
    ));
    // A tenant restricted to the US has no prefill cloud at all.
    let us = anycloud_config::TenantConfig {
        jurisdictions: Some(vec!["us".into()]),
        ..c.tenants[0].clone()
    };
    let input = RouteInput {
        tenant: &us,
        ..input
    };
    assert!(continuation(&t, &input, &NoState, &["azure-us".into()]).is_err());
}
