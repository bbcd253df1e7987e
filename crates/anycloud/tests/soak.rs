//! The soak (bench/soak/README.md), ignored by default: the gateway binary under steady
//! mixed traffic for `SOAK_SECONDS` — every API in turn (chat completions JSON and
//! streamed, with and without tools; /v1/messages and /v1/responses, JSON and streamed;
//! embeddings) — over two emulated clouds, the primary failing `SOAK_FAULT_RATE` of
//! requests with 503 (the secondary takes them), SQLite with a spill directory and a tenant
//! budget. Every `SOAK_SAMPLE_SECONDS` it records the gateway's RSS and open file
//! descriptors and the window's p50/p99 latency and errors as CSV (`SOAK_OUT`); after the
//! load it idles 30 s, sampling at 5, 15 and 30 s, to see memory returned.
//!
//! The figure (tests/chaos/README.md, scenario 6): RSS, fds and p99 flat — every later
//! sample within ±10% of the one at minute 5 (at a fifth of the run when it is shorter
//! than 10 minutes) — and the client-visible error rate equal to the injected one that
//! failover cannot hide (0: every injected failure is on the primary).
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
            EmulatorConfig::openai_compatible(
                name,
                "emu-key",
                vec!["gpt-4o".into(), "text-embedding-3-small".into()],
            ),
            0,
        )
    };
    let (primary, secondary) = (
        emu("primary").await.unwrap(),
        emu("secondary").await.unwrap(),
    );
    primary.faults().fail_rate(fault, 503);
    let dir = tempfile::tempdir().unwrap();
    let config = load::mixed_config(
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
    // (t, rss, fds, p99 ms)
    let mut rows: Vec<(f64, f64, usize, f64)> = Vec::new();
    let mut errors_by_kind: std::collections::BTreeMap<String, usize> = Default::default();
    let started = Instant::now();
    let mut total = 0usize;
    let mut errors = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        // One window: as many requests as `clients` connections manage in `sample` s.
        let window = load::mixed_load(
            &url,
            &key,
            usize::MAX,
            clients,
            Duration::from_secs(sample),
            total,
        )
        .await;
        let (rss, fds) = rss_and_fds(pid);
        let e = window.iter().filter(|a| a.status != 200).count();
        for a in window.iter().filter(|a| a.status != 200) {
            *errors_by_kind
                .entry(format!("{} {}", a.route, a.status))
                .or_default() += 1;
        }
        total += window.len();
        errors += e;
        let t = started.elapsed().as_secs_f64();
        let p99 = load::quantile(&window, 0.99).as_secs_f64() * 1e3;
        let _ = writeln!(
            csv,
            "{t:.0},{rss:.1},{fds},{},{e},{:.2},{p99:.2}",
            window.len(),
            load::quantile(&window, 0.5).as_secs_f64() * 1e3,
        );
        rows.push((t, rss, fds, p99));
    }
    let loaded_for = started.elapsed().as_secs_f64();
    let mut idle = Vec::new();
    for wait in [5u64, 10, 15] {
        tokio::time::sleep(Duration::from_secs(wait)).await;
        let (rss, fds) = rss_and_fds(pid);
        idle.push(rss);
        let _ = writeln!(
            csv,
            "{:.0},{rss:.1},{fds},0,0,,",
            started.elapsed().as_secs_f64()
        );
    }
    std::fs::write(&out, &csv).unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();

    // The reference: minute 5, or a fifth of a run shorter than 10 minutes.
    let at = if seconds >= 600 {
        300.0
    } else {
        seconds as f64 / 5.0
    };
    let r = rows.iter().position(|row| row.0 >= at).unwrap_or(0);
    let reference = rows[r];
    let later = &rows[r..];
    let within = |v: f64, of: f64, slack: f64| (v - of).abs() <= of * 0.10 + slack;
    let rss_max = later.iter().map(|x| x.1).fold(0.0, f64::max);
    let rss_min = later.iter().map(|x| x.1).fold(f64::MAX, f64::min);
    let fds_max = later.iter().map(|x| x.2).max().unwrap_or(0);
    let fds_min = later.iter().map(|x| x.2).min().unwrap_or(0);
    let rss_ok = within(rss_max, reference.1, 0.0) && within(rss_min, reference.1, 0.0);
    let fds_ok = within(fds_max as f64, reference.2 as f64, 2.0)
        && within(fds_min as f64, reference.2 as f64, 2.0);
    // p99 of a single window is noisy on a shared machine: compare the median of the
    // later windows' p99 with the reference window's.
    let mut p99s: Vec<f64> = later.iter().map(|x| x.3).collect();
    p99s.sort_by(f64::total_cmp);
    let p99_median = p99s[p99s.len() / 2];
    let p99_max = p99s[p99s.len() - 1];
    let p99_ok = within(p99_median, reference.3, 0.0);
    let end = rows[rows.len() - 1];
    let pass = rss_ok && fds_ok && p99_ok && errors == 0;
    let verdict = |ok: bool| if ok { "ok" } else { "OUT" };
    println!(
        "soak: {} — {loaded_for:.0} s, {total} requests ({:.0}/s) over {} kinds, {clients} clients; \
         {errors} client-visible errors {errors_by_kind:?} ({}% injected on the primary, failover hides them); \
         reference at {:.0} s: RSS {:.1} MiB, fds {}, p99 {:.1} ms; after it: RSS {rss_min:.1}–{rss_max:.1} MiB [{}], \
         fds {fds_min}–{fds_max} [{}], p99 median {p99_median:.1} ms, max {p99_max:.1} ms [{}]; \
         end of load RSS {:.1} MiB, idle 5/15/30 s {:.1}/{:.1}/{:.1} MiB; CSV in {out}",
        if pass { "PASS" } else { "FAIL" },
        total as f64 / loaded_for,
        load::MIXED.len(),
        fault * 100.0,
        reference.0,
        reference.1,
        reference.2,
        reference.3,
        verdict(rss_ok),
        verdict(fds_ok),
        verdict(p99_ok),
        end.1,
        idle[0],
        idle[1],
        idle[2],
    );
    assert!(pass, "see the line above");
}
