//! Chaos scenario 1 (tests/chaos/README.md): the primary cloud fails 30% of requests while
//! a secondary is healthy, and clients see no error. The real `anycloud serve` binary,
//! two emulated clouds; the primary's failures change kind through the run (503, 429,
//! 500, 502). Afterwards the generator's record is reconciled against the ledger with
//! `anycloud ledger reconcile`: every 200 has its served record, none twice.
//!
//! `CHAOS_REQUESTS` (default 1,000; the scenario's figure is 10,000) sets the load.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

#[path = "common/load.rs"]
mod load;
#[path = "common/serve.rs"]
mod serve;

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_anycloud");

async fn emulator(name: &str) -> EmulatorHandle {
    spawn_on_port(
        EmulatorConfig::openai_compatible(name, "emu-key", vec!["gpt-4o".into()]),
        0,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_failing_30_percent_is_invisible_to_clients() {
    let n: usize = std::env::var("CHAOS_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (primary, secondary) = (emulator("primary").await, emulator("secondary").await);
    let dir = tempfile::tempdir().unwrap();
    let config = load::two_cloud_config(
        dir.path(),
        &primary.base_url(),
        &secondary.base_url(),
        "",
        "",
    );
    let out = Command::new(BIN)
        .args(["keys", "create", "--tenant", "t", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let (mut child, url) = serve::serve(BIN, &config);

    let started = Instant::now();
    let mut answers = Vec::new();
    for status in [503, 429, 500, 502] {
        primary.faults().fail_rate(0.3, status);
        answers.extend(load::chat_load(&url, &key, n / 4, 16, Duration::from_secs(300)).await);
    }
    let took = started.elapsed();
    let errors: Vec<&load::Answer> = answers.iter().filter(|a| a.status != 200).collect();
    let served_by_secondary = answers.iter().filter(|a| a.route == "secondary").count();

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let record = dir.path().join("requests.jsonl");
    load::write_record(&record, &answers);
    let rec = Command::new(BIN)
        .args(["ledger", "reconcile", "--config"])
        .arg(&config)
        .arg("--requests")
        .arg(&record)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&rec.stdout).to_string();

    let pass = errors.is_empty() && rec.status.success() && answers.len() == n / 4 * 4;
    println!(
        "scenario 1 (primary failing 30%): {} — {} requests in {:.1} s, {} client-visible errors, {} served by the secondary, p99 {:?}\nledger reconcile:\n{report}",
        if pass { "PASS" } else { "FAIL" },
        answers.len(),
        took.as_secs_f64(),
        errors.len(),
        served_by_secondary,
        load::quantile(&answers, 0.99),
    );
    assert!(
        errors.is_empty(),
        "client-visible errors: {:?}",
        &errors[..errors.len().min(3)]
    );
    assert!(served_by_secondary > 0, "the failover was never exercised");
    assert!(rec.status.success(), "ledger reconcile: {report}");
}
