//! Cache affinity (README "Prompt caching"): the deployment that served the previous turn
//! goes first among the allowed candidates, behind the primary's first look, never under
//! the `commitment` strategy, and not at all once drained or its breaker open.

use super::*;
use std::path::Path;

const CFG: &str = r#"
[[clouds]]
name = "anthropic"
provider = "anthropic"
api_key = "k"
[[clouds]]
name = "gcp-eu"
provider = "vertex"
project_id = "p"
region = "europe-west1"
credentials_file = "/dev/null"
[[clouds]]
name = "aws-eu"
provider = "bedrock"
region = "eu-central-1"
access_key_id = "a"
secret_access_key = "s"
[[models]]
name = "claude"
[[models.deployments]]
cloud = "anthropic"
target = "claude-sonnet-4-5"
[[models.deployments]]
cloud = "gcp-eu"
target = "claude-sonnet-4-5@20250929"
[[models.deployments]]
cloud = "aws-eu"
target = "eu.anthropic.claude-sonnet-4-5"
[[tenants]]
name = "any"
"#;

struct Live {
    drained: &'static str,
    broken: &'static str,
}
impl CloudState for Live {
    fn is_drained(&self, c: &str) -> bool {
        c == self.drained
    }
    fn is_breaker_open(&self, c: &str) -> bool {
        c == self.broken
    }
}
const HEALTHY: Live = Live {
    drained: "",
    broken: "",
};

fn table(extra: &str) -> (anycloud_config::Config, RoutingTable) {
    let text = format!("{CFG}{extra}");
    let c = anycloud_config::parse_str(&text, Path::new("t.toml"), &|_| None)
        .unwrap_or_else(|e| unreachable!("{e}"));
    let t = RoutingTable::new(&c);
    (c, t)
}

fn plan(extra: &str, state: &Live, affine: Option<(&str, &str)>) -> RoutePlan {
    let (c, t) = table(extra);
    let input = RouteInput {
        model: "claude",
        tenant: &c.tenants[0],
        needs: &[Capability::Chat],
        date: chrono::NaiveDate::from_ymd_opt(2026, 12, 3).unwrap_or_default(),
        estimated_tokens: 10,
        seed: 1,
        spend: &NoSpend,
    };
    let a = affine.map(|(cloud, target)| CacheAffinity { cloud, target });
    route_preferring(&t, &input, state, a).unwrap_or_else(|e| unreachable!("{e:?}"))
}

const BEDROCK: (&str, &str) = ("aws-eu", "eu.anthropic.claude-sonnet-4-5");

#[test]
fn the_previous_turns_deployment_goes_first_noted() {
    let p = plan("", &HEALTHY, Some(BEDROCK));
    assert_eq!(p.candidates, vec![2, 0, 1]);
    assert_eq!(p.notes[0], order::CACHE_AFFINITY);
    // Without a hint, or with the one the strategy puts first anyway: config order, no note.
    for hint in [None, Some(("anthropic", "claude-sonnet-4-5"))] {
        let p = plan("", &HEALTHY, hint);
        assert_eq!(p.candidates, vec![0, 1, 2]);
        assert!(p.notes.iter().all(|n| n != order::CACHE_AFFINITY));
    }
    // Another target on the same cloud is another cache: no preference.
    let p = plan("", &HEALTHY, Some(("aws-eu", "eu.anthropic.claude-haiku")));
    assert_eq!(p.candidates, vec![0, 1, 2]);
}

#[test]
fn it_yields_to_a_drain_and_an_open_breaker() {
    for state in [
        Live {
            drained: "aws-eu",
            broken: "",
        },
        Live {
            drained: "",
            broken: "aws-eu",
        },
    ] {
        let p = plan("", &state, Some(BEDROCK));
        assert_eq!(p.candidates, vec![0, 1]);
        assert!(p.notes.iter().all(|n| n != order::CACHE_AFFINITY));
    }
}

#[test]
fn it_never_overrides_the_primarys_first_look_or_an_agreement() {
    let primary = "[agreements.primary]\ncloud = \"gcp-eu\"\n";
    let p = plan(primary, &HEALTHY, Some(BEDROCK));
    assert_eq!(
        p.candidates,
        vec![1, 2, 0],
        "the primary keeps its first look"
    );
    assert_eq!(p.notes[1], order::CACHE_AFFINITY);
    let exclusive = "[[agreements.exclusive]]\nmodel = \"claude\"\ncloud = \"anthropic\"\n";
    let p = plan(exclusive, &HEALTHY, Some(BEDROCK));
    assert_eq!(p.candidates, vec![0]);
    let commitment = "[routing]\nstrategy = \"commitment\"\n[[agreements.commitment]]\n\
        cloud = \"gcp-eu\"\namount_usd = 1000.0\nfrom = \"2026-12-01\"\nto = \"2027-01-01\"\n";
    let p = plan(commitment, &HEALTHY, Some(BEDROCK));
    assert_eq!(p.candidates, vec![1, 0, 2], "the commitment's order stands");
}

#[test]
fn the_served_decision_says_cache_affinity() {
    let d = Decision {
        cloud: "aws-eu".into(),
        outcome: Outcome::OkAffine,
    };
    assert_eq!(
        reason::header_value(std::slice::from_ref(&d)),
        "aws-eu:ok(cache_affinity)"
    );
    assert!(d.outcome.is_ok());
}
