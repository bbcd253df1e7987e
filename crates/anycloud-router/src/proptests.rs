//! Property tests of the routing invariants over random tables, tenants,
//! agreements, dates, needs and cloud states.

use super::table::{Exclusive, Primary};
use super::*;
use anycloud_config::{Price, Strategy as Strat};
use anycloud_types::ProviderKind;
use proptest::prelude::*;
use std::collections::HashSet;

const CLOUDS: [&str; 5] = ["c0", "c1", "c2", "c3", "c4"];
const JURIS: [Option<&str>; 3] = [Some("us"), Some("eu"), None];
const MODEL: &str = "m";

fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1)
        .and_then(|d| d.checked_add_days(chrono::Days::new(u64::from(n))))
        .unwrap_or_default()
}

fn caps(mask: u8) -> Vec<Capability> {
    Capability::ALL
        .into_iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, c)| c)
        .collect()
}

fn pick(mask: u8) -> Vec<String> {
    CLOUDS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

#[derive(Debug, Clone)]
struct Case {
    table: RoutingTable,
    tenant: TenantConfig,
    date: NaiveDate,
    needs: Vec<Capability>,
    drained: HashSet<String>,
    open: HashSet<String>,
    seed: u64,
}

struct St<'a>(&'a Case);
impl CloudState for St<'_> {
    fn is_drained(&self, c: &str) -> bool {
        self.0.drained.contains(c)
    }
    fn is_breaker_open(&self, c: &str) -> bool {
        self.0.open.contains(c)
    }
    fn latency_ms(&self, c: &str) -> Option<f64> {
        c.len().is_multiple_of(2).then_some(c.len() as f64)
    }
}

fn window() -> impl Strategy<Value = (Option<u32>, Option<u32>)> {
    (
        proptest::option::of(0u32..60),
        proptest::option::of(0u32..60),
    )
        .prop_map(|(a, b)| match (a, b) {
            (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
            w => w,
        })
}

fn deployment() -> impl Strategy<Value = Deployment> {
    (0usize..5, 0usize..3, 0u8..64, window(), 0u32..5, 0u32..20).prop_map(
        |(c, j, caps_mask, (from, until), weight, price)| Deployment {
            cloud: CLOUDS[c].to_string(),
            provider: ProviderKind::OpenaiCompatible,
            target: format!("t{c}"),
            jurisdiction: JURIS[j].map(str::to_string),
            capabilities: caps(caps_mask | 1),
            price: Price {
                input_per_mtok: f64::from(price),
                output_per_mtok: 1.0,
                ..Price::default()
            },
            valid_from: from.map(day),
            valid_until: until.map(day),
            weight,
            context_window: None,
            prompt_cache: Default::default(),
        },
    )
}

fn strategy() -> impl Strategy<Value = anycloud_config::Strategy> {
    prop_oneof![
        Just(Strat::Priority),
        Just(Strat::Weighted),
        Just(Strat::Latency),
        Just(Strat::Cost),
        Just(Strat::Commitment),
    ]
}

prop_compose! {
    fn case()(
        deps in proptest::collection::vec(deployment(), 1..7),
        strat in strategy(),
        primary in proptest::option::of((0usize..5, any::<bool>(), any::<bool>())),
        exclusive in proptest::option::of((0usize..5, window())),
        tenant_clouds in proptest::option::of(0u8..32),
        tenant_juris in proptest::option::of(0u8..4),
        date in 0u32..60,
        needs in 0u8..64,
        drained in 0u8..32,
        open in 0u8..32,
        seed in any::<u64>(),
    ) -> Case {
        let mut table = RoutingTable::from_parts(vec![(MODEL.to_string(), deps)]);
        table.strategy = strat;
        table.primary = primary.map(|(c, ship_first, declined)| Primary {
            cloud: CLOUDS[c].to_string(),
            ship_first,
            declined_models: if declined { vec![MODEL.to_string()] } else { vec![] },
        });
        table.exclusive = exclusive
            .map(|(c, (from, until))| Exclusive {
                model: MODEL.to_string(),
                cloud: CLOUDS[c].to_string(),
                from: from.map(day),
                until: until.map(day),
            })
            .into_iter()
            .collect();
        let tenant = TenantConfig {
            name: "t".into(),
            jurisdictions: tenant_juris.map(|m| {
                ["us", "eu"].iter().enumerate()
                    .filter(|(i, _)| m & (1 << i) != 0)
                    .map(|(_, j)| j.to_string())
                    .collect()
            }),
            models: None,
            clouds: tenant_clouds.map(pick),
            budget: None,
            rate_limit: None,
            capture: false,
            data_jurisdiction: None,
            mcp: None,
        };
        Case {
            table,
            tenant,
            date: day(date),
            needs: caps(needs),
            drained: pick(drained).into_iter().collect(),
            open: pick(open).into_iter().collect(),
            seed,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn routing_invariants(c in case()) {
        let input = RouteInput {
            model: MODEL,
            tenant: &c.tenant,
            needs: &c.needs,
            date: c.date,
            estimated_tokens: 100,
            seed: c.seed,
            spend: &NoSpend,
        };
        let deps = c.table.deployments(0);
        let (candidates, declined) = match route(&c.table, &input, &St(&c)) {
            Ok(p) => {
                prop_assert_eq!(p.notes.len(), p.candidates.len());
                (p.candidates.clone(), p.declined)
            }
            Err(RouteError::NoCandidate { declined, forbidden }) => {
                prop_assert_eq!(forbidden, declined.iter().all(|d| d.is_policy()));
                (vec![], declined)
            }
            Err(e) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
        };
        // None lost: every deployment is a candidate or declined with a reason.
        prop_assert_eq!(candidates.len() + declined.len(), deps.len());
        let mut seen: Vec<&str> = candidates.iter().map(|&i| deps[i].cloud.as_str()).collect();
        seen.extend(declined.iter().map(|d| d.cloud.as_str()));
        let mut all: Vec<&str> = deps.iter().map(|d| d.cloud.as_str()).collect();
        seen.sort_unstable();
        all.sort_unstable();
        prop_assert_eq!(seen, all);
        let unique: HashSet<usize> = candidates.iter().copied().collect();
        prop_assert_eq!(unique.len(), candidates.len());
        prop_assert!(declined.iter().all(|d| matches!(d.outcome, Outcome::Declined(_))));

        let holder = c.table.exclusive.first()
            .filter(|e| e.active_on(c.date))
            .map(|e| e.cloud.clone());
        let primary = c.table.primary.clone();
        // Ship-first releases the model once the primary's deployment of it
        // has started (its window may since have ended) or the primary declined it.
        let primary_started = primary.as_ref().is_some_and(|p| {
            deps.iter().any(|d| d.cloud == p.cloud && d.started_on(c.date))
        });
        for (rank, &i) in candidates.iter().enumerate() {
            let d = &deps[i];
            if let Some(cl) = &c.tenant.clouds {
                prop_assert!(cl.contains(&d.cloud), "tenant cloud");
            }
            if let Some(js) = &c.tenant.jurisdictions {
                prop_assert!(d.jurisdiction.as_ref().is_some_and(|j| js.contains(j)), "jurisdiction");
            }
            prop_assert!(d.valid_on(c.date), "window");
            if let Some(h) = &holder {
                prop_assert_eq!(&d.cloud, h, "exclusive elsewhere");
            }
            if let Some(p) = &primary {
                let declined = !p.declined_models.is_empty();
                let released = !p.ship_first || declined || primary_started;
                prop_assert!(released || d.cloud == p.cloud, "ship first");
                // A model the primary declined never goes to the primary.
                prop_assert!(!(declined && d.cloud == p.cloud), "declined by primary");
                if d.cloud == p.cloud {
                    // The primary first whenever eligible (ahead of every other cloud).
                    prop_assert!(candidates[..rank].iter().all(|&j| deps[j].cloud == p.cloud), "primary first");
                }
            }
            prop_assert!(c.needs.iter().all(|n| d.capabilities.contains(n)), "capability");
            prop_assert!(!c.drained.contains(&d.cloud) && !c.open.contains(&d.cloud), "health");
        }
        // The two agreement reasons are given exactly when their rule applies.
        for d in &declined {
            match d.outcome {
                Outcome::Declined(Reason::ShipFirst) => {
                    let p = primary.as_ref();
                    prop_assert!(p.is_some_and(|p| p.ship_first && p.declined_models.is_empty() && !primary_started && d.cloud != p.cloud), "ship_first given wrongly");
                }
                Outcome::Declined(Reason::DeclinedByPrimary) => {
                    let p = primary.as_ref();
                    prop_assert!(p.is_some_and(|p| !p.declined_models.is_empty() && d.cloud == p.cloud), "declined_by_primary given wrongly");
                }
                _ => {}
            }
        }
    }
}
