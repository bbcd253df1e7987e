//! `anycloud ledger reconcile --config F --requests FILE`: compares what a load generator
//! saw (one JSON object per line with at least `request_id` and `status`, as the chaos
//! harness writes them) with the usage ledger. Prints how many requests answered 200 have
//! their served record (`matched`), how many have none (`missing`), how many served
//! records belong to no request answered 200 (`unexpected`) and how many requests have
//! more than one served record (`duplicated`); exit 1 unless the last three are 0.
//!
//! Only records with outcome `ok` count as served: a failed attempt before a failover
//! has its own record, which belongs to the request but is not its serving one.

use anycloud_store::UsageRecord;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::ExitCode;

/// One line of the generator's record (other fields are ignored).
#[derive(Debug, Deserialize)]
pub struct Sent {
    pub request_id: String,
    pub status: u16,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    pub matched: usize,
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
    pub duplicated: Vec<String>,
}

impl Reconciliation {
    pub fn clean(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.duplicated.is_empty()
    }
}

/// Requests answered 200 against the served records of the ledger.
pub fn reconcile(sent: &[Sent], ledger: &[UsageRecord]) -> Reconciliation {
    let ok: HashSet<&str> = sent
        .iter()
        .filter(|s| s.status == 200)
        .map(|s| s.request_id.as_str())
        .collect();
    let mut served: HashMap<&str, usize> = HashMap::new();
    for r in ledger.iter().filter(|r| r.outcome == "ok") {
        *served.entry(r.request_id.as_str()).or_default() += 1;
    }
    let mut out = Reconciliation::default();
    for id in &ok {
        match served.get(id) {
            Some(_) => out.matched += 1,
            None => out.missing.push((*id).to_string()),
        }
    }
    for (id, n) in &served {
        if !ok.contains(id) {
            out.unexpected.push((*id).to_string());
        }
        if *n > 1 {
            out.duplicated.push((*id).to_string());
        }
    }
    out.missing.sort();
    out.unexpected.sort();
    out.duplicated.sort();
    out
}

pub async fn run(config: &Path, requests: &Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(requests)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", requests.display()))?;
    let mut sent = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        sent.push(
            serde_json::from_str::<Sent>(line)
                .map_err(|e| anyhow::anyhow!("{} line {}: {e}", requests.display(), i + 1))?,
        );
    }
    let config = super::load_config(config)?;
    let store = super::open_store(&config).await?;
    let from = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    let to = chrono::Utc::now() + chrono::Duration::days(1);
    let ledger = store.usage_records(from, to, u32::MAX).await?;
    let r = reconcile(&sent, &ledger);
    println!("matched     {}", r.matched);
    for (what, ids) in [
        ("missing", &r.missing),
        ("unexpected", &r.unexpected),
        ("duplicated", &r.duplicated),
    ] {
        let shown: Vec<&str> = ids.iter().take(10).map(String::as_str).collect();
        let more = if ids.len() > 10 { " …" } else { "" };
        println!("{what:<11} {} {}{more}", ids.len(), shown.join(" "));
    }
    Ok(if r.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rec(id: &str, outcome: &str) -> UsageRecord {
        UsageRecord {
            at: chrono::Utc::now(),
            request_id: id.into(),
            tenant: "t".into(),
            key_id: "k".into(),
            model: "m".into(),
            cloud: "c".into(),
            deployment: "d".into(),
            input_tokens: 1,
            output_tokens: 1,
            cached_tokens: 0,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            reasoning_tokens: 0,
            cache_saved_nanos: 0,
            usage_estimated: false,
            price: Default::default(),
            cost_nanos: 1,
            needs: None,
            estimated_tokens: None,
            outcome: outcome.into(),
            upstream_status: Some(200),
            latency_ms: 1,
            ttft_ms: None,
        }
    }

    fn sent(id: &str, status: u16) -> Sent {
        Sent {
            request_id: id.into(),
            status,
        }
    }

    #[test]
    fn matched_missing_unexpected_and_duplicated_are_told_apart() {
        let s = [
            sent("a", 200),
            sent("b", 200),
            sent("c", 200),
            sent("d", 503),
        ];
        let l = [
            rec("a", "ok"),
            // A failed attempt before the failover that served b: not a second record.
            rec("b", "upstream_503"),
            rec("b", "ok"),
            rec("c", "ok"),
            rec("c", "ok"),
            rec("e", "ok"),
        ];
        let r = reconcile(&s, &l);
        assert_eq!(r.matched, 3);
        assert!(r.missing.is_empty());
        assert_eq!(r.unexpected, vec!["e".to_string()]);
        assert_eq!(r.duplicated, vec!["c".to_string()]);
        assert!(!r.clean());
        let r = reconcile(&[sent("x", 200)], &[]);
        assert_eq!((r.matched, r.missing.clone()), (0, vec!["x".to_string()]));
    }
}
