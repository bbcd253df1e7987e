//! Shared state through the machine's real Redis: the rate-limit and budget scripts stay
//! exact when two instances hammer one Redis at once; drains, restores, revocations and
//! tenant changes reach a second instance within a second; an instance started later sees
//! drains made before it; and with Redis unreachable each feature does what
//! `store.redis_down` says, loudly (`/readyz`, `/metrics`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[path = "common/redis.rs"]
mod test_redis;

use anycloud_config::{Budget, BudgetPeriod, RedisDownPolicy};
use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle};
use anycloud_server::cluster::link::RedisLink;
use anycloud_server::governance::budget::{Budgets, Refusal, Scope};
use anycloud_server::governance::limits::{Check, RateLimiter, Verdict};
use anycloud_server::governance::redis_budget::SharedBudgets;
use anycloud_server::governance::redis_ratelimit::SharedGcra;
use anycloud_server::metrics::RedisMetrics;
use anycloud_server::AppState;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use test_redis::{dead_port, test_redis, TestRedis};

const ADMIN: &str = "admin-token-for-redis-tests-0123";

async fn link(r: &TestRedis) -> Arc<RedisLink> {
    let url = SecretString::from(r.url.clone());
    let l = RedisLink::connect(
        &url,
        &r.prefix,
        RedisDownPolicy::default(),
        RedisMetrics::default(),
    )
    .await
    .unwrap();
    assert!(l.is_up(), "the test Redis answered a moment ago");
    Arc::new(l)
}

fn rpm(scope: &str, limit: u64) -> Check {
    Check {
        scope: scope.into(),
        limit,
        cost: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_limiters_on_one_redis_admit_exactly_the_limit() {
    let Some(r) = test_redis("limits") else {
        return;
    };
    let a = Arc::new(RateLimiter::new(Some(SharedGcra::new(link(&r).await))));
    let b = Arc::new(RateLimiter::new(Some(SharedGcra::new(link(&r).await))));
    // 200 requests at once, half through each instance, against 50 per minute.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let lim = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            matches!(
                lim.check(&[rpm("tenant:t:rpm", 50)]).await,
                Verdict::Allowed(_)
            )
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.unwrap());
    }
    // GCRA refills one request every 1.2 s; count what the test's own duration allows.
    let refill = (started.elapsed().as_secs_f64() / 1.2).floor() as usize;
    assert!(
        (50..=50 + refill).contains(&allowed),
        "{allowed} admitted against a shared limit of 50 (refill {refill})"
    );

    // All-or-nothing across limits: the key's limit refuses, the tenant's is not spent.
    let checks = |n| [rpm("tenant:u:rpm", 1000), rpm("key:k:rpm", n)];
    for _ in 0..5 {
        assert!(matches!(a.check(&checks(5)).await, Verdict::Allowed(_)));
    }
    for _ in 0..10 {
        match b.check(&checks(5)).await {
            Verdict::Limited { index, state, .. } => {
                assert_eq!(index, 1, "the key's limit refuses");
                assert_eq!(state.remaining, 0);
            }
            other => panic!("sixth request through the other instance: {other:?}"),
        }
    }
    match a.check(&[rpm("tenant:u:rpm", 1000)]).await {
        Verdict::Allowed(s) => assert_eq!(s[0].unwrap().remaining, 1000 - 6),
        other => panic!("{other:?}"),
    }
    // Idle limits cost no memory: every key has a TTL.
    let mut c = r.conn();
    for k in r.keys() {
        let ttl: i64 = redis::cmd("PTTL").arg(&k).query(&mut c).unwrap();
        assert!(ttl > 0 && ttl <= 61_000 + 1_000, "{k}: ttl {ttl}");
    }
}

async fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn anycloud_store::Store> {
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    anycloud_store::open(&url).await.unwrap()
}

/// A budget front with the shared counters in `r` and reservations held for `lease`.
async fn shared_budgets(
    r: &TestRedis,
    store: &Arc<dyn anycloud_store::Store>,
    lease: Duration,
) -> Arc<Budgets> {
    let shared = SharedBudgets::new(link(r).await, lease);
    Arc::new(Budgets::new(
        store.clone(),
        Some(Arc::new(shared)),
        anycloud_store::spool::SpoolConfig::new("budget_spend"),
        anycloud_store::spool::SpoolConfig::new("budget_settle"),
    ))
}

fn budget_scope(usd: f64) -> Vec<Scope> {
    vec![Scope {
        id: "tenant:b".into(),
        label: "tenant `b`".into(),
        budget: Budget {
            usd,
            period: BudgetPeriod::Total,
        },
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_budget_instances_share_reservations_spend_and_leases() {
    let Some(r) = test_redis("budgets") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    let lease = Duration::from_secs(60);
    let a = shared_budgets(&r, &store, lease).await;
    let b = shared_budgets(&r, &store, lease).await;
    // $1 total, each request may cost $0.10. One reservation on each instance first, so
    // both hold some of the budget whatever the scheduler does next.
    let mut admitted = Vec::new();
    for (i, inst) in [&a, &b].into_iter().enumerate() {
        let id = format!("first-{i}");
        assert!(inst.reserve(&id, &budget_scope(1.0), 0.10).await.is_ok());
        admitted.push((id, i));
    }
    // Then 62 at once, split between the instances: exactly 8 more fit.
    let mut tasks = Vec::new();
    for i in 2..64 {
        let inst = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let id = format!("req-{i}");
            (
                id.clone(),
                inst.reserve(&id, &budget_scope(1.0), 0.10).await,
                i % 2,
            )
        }));
    }
    for t in tasks {
        let (id, res, which) = t.await.unwrap();
        match res {
            Ok(()) => admitted.push((id, which)),
            Err(Refusal::Exceeded(e)) => assert!(e.message.contains("tenant `b`"), "{}", e.message),
            Err(Refusal::Unavailable { message }) => panic!("{message}"),
        }
    }
    assert_eq!(admitted.len(), 10, "exactly $1 / $0.10 reservations fit");

    // Each settles at $0.05 on the instance that reserved it: $0.50 spent, $0.50 free.
    for (id, which) in &admitted {
        let inst = if *which == 0 { &a } else { &b };
        inst.settle(id, 0.05);
    }
    a.flush().await;
    b.flush().await;
    let ok = reserve_many(&b, "second", 10).await;
    assert_eq!(ok, 5, "$0.50 left after settling");
    for i in 0..5 {
        b.settle(&format!("second-{i}"), 0.0);
    }
    b.flush().await;

    // Redis loses everything (restart without persistence): the counter comes back from
    // the store's settled spend, not from zero.
    let keys = r.keys();
    let _: i64 = redis::cmd("DEL").arg(keys).query(&mut r.conn()).unwrap();
    let ok = reserve_many(&a, "third", 10).await;
    assert_eq!(ok, 5, "spent $0.50 survived the loss of Redis' counters");
}

/// Reserves $0.10 `n` times one after the other; how many fit.
async fn reserve_many(b: &Budgets, tag: &str, n: usize) -> usize {
    let mut ok = 0;
    for i in 0..n {
        let id = format!("{tag}-{i}");
        ok += usize::from(b.reserve(&id, &budget_scope(1.0), 0.10).await.is_ok());
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsettled_reservation_frees_its_headroom_when_its_lease_ends() {
    let Some(r) = test_redis("leases") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    // An instance that dies mid-request never settles; its lease runs out.
    let dying = shared_budgets(&r, &store, Duration::from_millis(300)).await;
    dying
        .reserve("orphan", &budget_scope(1.0), 0.9)
        .await
        .unwrap();
    let other = shared_budgets(&r, &store, Duration::from_secs(60)).await;
    assert!(matches!(
        other.reserve("r1", &budget_scope(1.0), 0.5).await,
        Err(Refusal::Exceeded(_))
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;
    other.reserve("r2", &budget_scope(1.0), 0.5).await.unwrap();
}

struct Gw {
    url: String,
    state: Arc<AppState>,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn config_text(db: &str, emu: &str, redis_url: &str, prefix: &str, down: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_token = "{ADMIN}"

[store]
url = "sqlite://{db}"
redis_url = "{redis_url}"
redis_prefix = "{prefix}"
{down}

[[clouds]]
name = "local"
provider = "openai_compatible"
base_url = "{emu}"
api_key = "local-key"

[[clouds]]
name = "spare"
provider = "openai_compatible"
base_url = "{emu}"
api_key = "local-key"

[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "local"
target = "gpt-4o"
price = {{ input_per_mtok = 1000.0, output_per_mtok = 1000.0 }}

[[tenants]]
name = "team"

[[tenants]]
name = "budgeted"
budget = {{ usd = 100.0, period = "total" }}

[[tenants]]
name = "limited"
rate_limit = {{ requests_per_minute = 2 }}
"#
    )
}

/// An emulator and a temp SQLite store.
struct Env {
    emu: EmulatorHandle,
    db: String,
    store: Arc<dyn anycloud_store::Store>,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db").display().to_string();
    Env {
        emu: emulator().await,
        store: anycloud_store::open(&format!("sqlite://{db}"))
            .await
            .unwrap(),
        db,
        _dir: dir,
    }
}

async fn emulator() -> EmulatorHandle {
    spawn_on_port(
        EmulatorConfig::openai_compatible("local", "local-key", vec!["gpt-4o".into()]),
        0,
    )
    .await
    .unwrap()
}

async fn start(text: &str, store: Arc<dyn anycloud_store::Store>) -> Gw {
    let config =
        anycloud_config::parse_str(text, std::path::Path::new("t.toml"), &|_| None).unwrap();
    let state = AppState::build(config, store).await.unwrap();
    let (url, tx) = common::listen(state.clone()).await;
    Gw {
        url,
        state,
        http: reqwest::Client::new(),
        _stop: tx,
    }
}

impl Gw {
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        common::admin_call(&self.http, &self.url, ADMIN, method, path, body).await
    }

    async fn key(&self, tenant: &str) -> String {
        common::create_key(&self.http, &self.url, ADMIN, tenant, Value::Null).await
    }

    async fn chat(&self, key: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth(key)
            .json(&json!({"model": "gpt-4o", "max_tokens": 5,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// Polls `f` every 5 ms for up to a second; the time it took, or `None`.
async fn within_a_second(mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(1) {
        if f() {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drains_revocations_and_tenants_reach_the_other_instance_within_a_second() {
    let Some(r) = test_redis("pubsub") else {
        return;
    };
    let Env {
        emu,
        db,
        store,
        _dir,
    } = env().await;
    let text = config_text(&db, &emu.base_url(), &r.url, &r.prefix, "");
    let a = start(&text, store.clone()).await;
    let b = start(&text, store.clone()).await;

    // Drain on A: B stops using the cloud within a second, and says so.
    let (s, v) = a
        .admin(reqwest::Method::POST, "/admin/v1/clouds/local/drain", None)
        .await;
    assert_eq!(
        (s, v["drained"].as_bool(), v["applies_to"].as_str()),
        (200, Some(true), Some("all_instances")),
        "{v}"
    );
    let took = within_a_second(|| b.state.clouds.is_drained_now("local")).await;
    assert!(took.is_some(), "B did not see the drain within 1 s");
    let key = a.key("team").await;
    let (s, v) = b.chat(&key).await;
    assert_eq!(s, 503, "{v}");

    // An instance started now sees the drain made before it existed.
    let c = start(&text, store.clone()).await;
    assert!(c.state.clouds.is_drained_now("local"));

    // Restore on B: A and C follow.
    let (s, _) = b
        .admin(
            reqwest::Method::POST,
            "/admin/v1/clouds/local/restore",
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert!(within_a_second(
        || !a.state.clouds.is_drained_now("local") && !c.state.clouds.is_drained_now("local")
    )
    .await
    .is_some());
    assert_eq!(b.chat(&key).await.0, 200);

    // Revocation: B has the key cached (it just served it); revoked on A, B refuses it
    // before its one-second cache could have expired — the broadcast did it.
    let cached_at = Instant::now();
    assert_eq!(b.chat(&key).await.0, 200);
    let id = anycloud_store::keys::parse_id(&key).unwrap().to_string();
    let (s, v) = a
        .admin(
            reqwest::Method::POST,
            &format!("/admin/v1/keys/{id}/revoke"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let mut refused_at = None;
    while cached_at.elapsed() < Duration::from_secs(1) {
        if b.chat(&key).await.0 == 401 {
            refused_at = Some(cached_at.elapsed());
            break;
        }
    }
    let refused_at = refused_at.expect("B still served a revoked key after 1 s");
    assert!(
        refused_at < Duration::from_millis(900),
        "refused after {refused_at:?}"
    );

    // A tenant changed through A's admin API is live on B.
    let (s, v) = a
        .admin(
            reqwest::Method::PUT,
            "/admin/v1/tenants/team",
            Some(json!({"rate_limit": {"requests_per_minute": 7}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let took = within_a_second(|| {
        b.state
            .tenant("team")
            .and_then(|t| t.rate_limit)
            .and_then(|l| l.requests_per_minute)
            == Some(7)
    })
    .await;
    assert!(took.is_some(), "B did not see the tenant change within 1 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_fails_closed_on_budgets_and_local_on_limits_by_default() {
    let Env {
        emu,
        db,
        store,
        _dir,
    } = env().await;
    let url = format!("redis://127.0.0.1:{}", dead_port());
    let gw = start(&config_text(&db, &emu.base_url(), &url, "x:", ""), store).await;

    // No budget: served. Under a budget: 503, never silently unlimited.
    assert_eq!(gw.chat(&gw.key("team").await).await.0, 200);
    let (s, v) = gw.chat(&gw.key("budgeted").await).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"]["code"], "budget_unavailable", "{v}");
    // Rate limits: this instance's own, still enforced.
    let limited = gw.key("limited").await;
    assert_eq!(gw.chat(&limited).await.0, 200);
    assert_eq!(gw.chat(&limited).await.0, 200);
    assert_eq!(gw.chat(&limited).await.0, 429);
    // Draining still works here, and says it is local.
    let (s, v) = gw
        .admin(reqwest::Method::POST, "/admin/v1/clouds/spare/drain", None)
        .await;
    assert_eq!(
        (s, v["applies_to"].as_str()),
        (200, Some("this_instance")),
        "{v}"
    );

    let (s, body) = gw.get("/readyz").await;
    assert_eq!(
        s, 200,
        "an unreachable Redis does not make the instance unready: {body}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["redis"]["state"], "down", "{v}");
    assert_eq!(v["redis"]["budgets"], "refuse", "{v}");
    assert_eq!(v["redis"]["rate_limits"], "local", "{v}");
    assert!(!body.contains(&url), "the Redis URL is not shown: {body}");
    let (_, metrics) = gw.get("/metrics").await;
    assert!(metrics.contains("anycloud_redis_up 0"), "{metrics}");
    assert!(
        metrics.contains(r#"anycloud_redis_fallbacks_total{feature="budgets",action="refused"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"anycloud_redis_fallbacks_total{feature="rate_limits",action="local"}"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_with_local_budgets_and_open_limits() {
    let Env {
        emu,
        db,
        store,
        _dir,
    } = env().await;
    let url = format!("redis://127.0.0.1:{}", dead_port());
    let down = "[store.redis_down]\nbudgets = \"local\"\nrate_limits = \"open\"";
    let gw = start(&config_text(&db, &emu.base_url(), &url, "x:", down), store).await;

    assert_eq!(
        gw.chat(&gw.key("budgeted").await).await.0,
        200,
        "local budget counters serve"
    );
    let limited = gw.key("limited").await;
    for _ in 0..4 {
        let (s, v) = gw.chat(&limited).await;
        assert_eq!(s, 200, "open: no rate limit while Redis is down: {v}");
    }
    let (_, body) = gw.get("/readyz").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            v["redis"]["budgets"].as_str(),
            v["redis"]["rate_limits"].as_str()
        ),
        (Some("local"), Some("open")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_redis_configured_shows_no_redis_series() {
    let Env {
        emu,
        db,
        store,
        _dir,
    } = env().await;
    let text = config_text(&db, &emu.base_url(), "redis://unused", "x:", "")
        .replace("redis_url = \"redis://unused\"\n", "");
    let gw = start(&text, store).await;
    let (_, body) = gw.get("/readyz").await;
    assert!(
        body.contains(r#""redis":{"state":"not_configured"}"#),
        "{body}"
    );
    let (_, metrics) = gw.get("/metrics").await;
    assert!(!metrics.contains("anycloud_redis_up"), "{metrics}");
}

/// A Redis of this test's own (never the machine's shared one), to stop and start.
struct OwnRedis {
    child: std::process::Child,
}

impl OwnRedis {
    fn start(port: u16) -> Option<OwnRedis> {
        let child = std::process::Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let url = format!("redis://127.0.0.1:{port}");
        for _ in 0..100 {
            if redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .is_ok()
            {
                return Some(OwnRedis { child });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_down_and_back_up_switches_modes_and_shares_what_happened_meanwhile() {
    let port = dead_port();
    let Some(own) = OwnRedis::start(port) else {
        if std::env::var_os("CI").is_some() {
            panic!("cannot start a redis-server of the test's own");
        }
        eprintln!("SKIPPED redis_going_down_and_back_up: cannot start redis-server");
        return;
    };
    let Env {
        emu,
        db,
        store,
        _dir,
    } = env().await;
    let url = format!("redis://127.0.0.1:{port}");
    let gw = start(&config_text(&db, &emu.base_url(), &url, "own:", ""), store).await;
    let budgeted = gw.key("budgeted").await;
    assert_eq!(
        gw.chat(&budgeted).await.0,
        200,
        "shared budgets while Redis is up"
    );
    let ready = |body: &str| serde_json::from_str::<Value>(body).unwrap()["redis"].clone();
    assert_eq!(ready(&gw.get("/readyz").await.1)["state"], "up");

    drop(own);
    // The first request that needs Redis finds it gone and fails closed.
    let (s, v) = gw.chat(&budgeted).await;
    assert_eq!(s, 503, "{v}");
    let r = ready(&gw.get("/readyz").await.1);
    assert_eq!(
        (r["state"].as_str(), r["budgets"].as_str()),
        (Some("down"), Some("refuse")),
        "{r}"
    );
    let (_, v) = gw
        .admin(reqwest::Method::POST, "/admin/v1/clouds/spare/drain", None)
        .await;
    assert_eq!(v["applies_to"], "this_instance", "{v}");

    let _own = OwnRedis::start(port).expect("restart redis-server on the same port");
    // The health loop pings every second.
    let t = Instant::now();
    while ready(&gw.get("/readyz").await.1)["state"] != "up" {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "link not back up after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gw.chat(&budgeted).await.0, 200, "shared budgets again");
    // The drain made while Redis was away is now in the shared drain state.
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let drained: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg("own:drained")
        .query(&mut c)
        .unwrap();
    assert!(drained.contains_key("spare"), "{drained:?}");
    let (_, metrics) = gw.get("/metrics").await;
    assert!(metrics.contains("anycloud_redis_up 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_affinity_recorded_on_one_instance_is_seen_by_another() {
    let Some(r) = test_redis("affinity") else {
        return;
    };
    use anycloud_server::affinity::{keys, Affinity};
    let (one, two) = (
        Affinity::shared(link(&r).await),
        Affinity::shared(link(&r).await),
    );
    let mut req = anycloud_types::ChatRequest::new(
        "claude",
        vec![anycloud_types::Message {
            role: anycloud_types::Role::User,
            content: vec![anycloud_types::ContentBlock::text("hi")],
            name: None,
        }],
    );
    req.cache.key = Some("agent-7".into());
    let k = keys("team", &req).unwrap();
    assert_eq!(two.lookup(&k).await, None);
    let c = anycloud_config::parse_str(
        "[[clouds]]\nname = \"gcp-eu\"\nprovider = \"vertex\"\nproject_id = \"p\"\n\
         region = \"europe-west1\"\n[[models]]\nname = \"claude\"\n[[models.deployments]]\n\
         cloud = \"gcp-eu\"\ntarget = \"claude-sonnet-4@20250514\"\n",
        std::path::Path::new("t.toml"),
        &|_| None,
    )
    .unwrap();
    let d = anycloud_router::RoutingTable::new(&c).deployments(0)[0].clone();
    one.record(&k, &d);
    // Written by the other instance's queue: within a second.
    let mut seen = None;
    for _ in 0..100 {
        seen = two.lookup(&k).await;
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = seen.expect("the second instance sees the first one's record");
    assert_eq!(
        (seen.cloud.as_str(), seen.target.as_str()),
        ("gcp-eu", "claude-sonnet-4@20250514")
    );
}
