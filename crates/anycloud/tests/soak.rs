//! The soak (bench/soak/README.md), ignored by default: the gateway binary under steady
//! mixed chat traffic (half streamed) for `SOAK_SECONDS`, over two emulated clouds, the
//! primary failing `SOAK_FAULT_RATE` of requests (the secondary takes them), SQLite with a
//! spill directory. Every `SOAK_SAMPLE_SECONDS` it records the gateway's RSS and open file
//! descriptors and the window's p99 latency and errors as CSV (`SOAK_OUT`); after the load
//! it idles 15 s and samples again, to see memory returned. It fails when RSS or fds at
//! the end are more than 10% above the value at the first fifth of the run, or any
//! client-visible error occurred.
//!
//! `SOAK_BIN` runs another binary (bench/soak/run.sh passes the release build).

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

use anycloud_emulators::{spawn_on_port, EmulatorConfig};
use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// VmRSS in MiB and the number of open fds of `pid`.
fn rss_and_fds(pid: u32) -> (f64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (kb / 1024.0, fds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the soak: run through bench/soak/run.sh"]
async fn soak() {
    let seconds: u64 = env_or("SOAK_SECONDS", 60);
    let sample: u64 = env_or("SOAK_SAMPLE_SECONDS", 5);
    let clients: usize = env_or("SOAK_CLIENTS", 32);
    let fault: f64 = env_or("SOAK_FAULT_RATE", 0.05);
    let bin = std::env::var("SOAK_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_anycloud").into());
    let out = std::env::var("SOAK_OUT").unwrap_or_else(|_| "soak.csv".into());

    let emu = |name: &'static str| {
        spawn_on_port(
            EmulatorConfig::openai_compatible(name, "emu-key", vec!["gpt-4o".into()]),
            0,
        )
    };
    let (primary, secondary) = (
        emu("primary").await.unwrap(),
        emu("secondary").await.unwrap(),
    );
    primary.faults().fail_rate(fault, 503);
    let dir = tempfile::tempdir().unwrap();
    let config = load::two_cloud_config(
        dir.path(),
        &primary.base_url(),
        &secondary.base_url(),
        &format!("spill_dir = \"{}\"", dir.path().join("spill").display()),
        "budget = { usd = 1000000.0, period = \"day\" }",
    );
    let key = Command::new(&bin)
        .args(["keys", "create", "--tenant", "t", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let key = String::from_utf8(key.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let (mut child, url) = serve::serve(&bin, &config);
    let pid = child.id();

    let mut csv = String::from("t_s,rss_mib,fds,requests,errors,p50_ms,p99_ms\n");
    let mut rows: Vec<(f64, usize)> = Vec::new();
    let started = Instant::now();
    let mut total = 0usize;
    let mut errors = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        // One window: as many requests as `clients` connections manage in `sample` s.
        let window =
            load::chat_load(&url, &key, usize::MAX, clients, Duration::from_secs(sample)).await;
        let (rss, fds) = rss_and_fds(pid);
        let e = window.iter().filter(|a| a.status != 200).count();
        total += window.len();
        errors += e;
        let _ = writeln!(
            csv,
            "{:.0},{rss:.1},{fds},{},{e},{:.2},{:.2}",
            started.elapsed().as_secs_f64(),
            window.len(),
            load::quantile(&window, 0.5).as_secs_f64() * 1e3,
            load::quantile(&window, 0.99).as_secs_f64() * 1e3,
        );
        rows.push((rss, fds));
    }
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (idle_rss, idle_fds) = rss_and_fds(pid);
    let _ = writeln!(
        csv,
        "{:.0},{idle_rss:.1},{idle_fds},0,0,,",
        started.elapsed().as_secs_f64()
    );
    std::fs::write(&out, &csv).unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();

    let early = rows[rows.len() / 5];
    let end = rows[rows.len() - 1];
    let rss_ok = end.0 <= early.0 * 1.10;
    let fds_ok = end.1 as f64 <= early.1 as f64 * 1.10 + 2.0;
    let pass = rss_ok && fds_ok && errors == 0;
    println!(
        "soak: {} — {seconds} s, {total} requests ({:.0}/s), {errors} client-visible errors ({}% injected on the primary); RSS {:.1} MiB at {}% of the run, {:.1} MiB at the end, {idle_rss:.1} MiB after 15 s idle; fds {} → {}; CSV in {out}",
        if pass { "PASS" } else { "FAIL" },
        total as f64 / seconds as f64,
        fault * 100.0,
        early.0,
        20,
        end.0,
        early.1,
        end.1,
    );
    assert!(pass, "see the line above");
}
