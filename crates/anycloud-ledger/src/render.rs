//! [`Report`] as an aligned text table (for people) or CSV (for spreadsheets).
//!
//! The CSV holds three sections, each with its own header row, separated by an empty line:
//! usage (`section` is `cloud`, `model`, `tenant` or `total`), revenue share, commitments.
//! The table aligner is a dozen lines; a table crate would add a dependency for less.

use std::collections::BTreeMap;

use crate::money::usd;
use crate::report::{Report, Totals};
use crate::LedgerError;

/// Usage columns; those added with prompt caching come after `cost_usd` so scripts that
/// read the older columns by position keep working.
const USAGE_HEADER: [&str; 9] = [
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "cache_write_tokens",
    "reasoning_tokens",
    "cache_hit_ratio",
    "saved_by_caching_usd",
];

fn usage_cells(t: &Totals) -> [String; 9] {
    [
        t.requests.to_string(),
        t.input_tokens.to_string(),
        t.output_tokens.to_string(),
        t.cached_tokens.to_string(),
        format!("{:.6}", usd(t.cost_nanos)),
        t.cache_write_tokens.to_string(),
        t.reasoning_tokens.to_string(),
        format!("{:.4}", t.cache_hit_ratio()),
        format!("{:.6}", usd(t.cache_saved_nanos)),
    ]
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn money(v: f64) -> String {
    format!("{v:.2}")
}

fn revenue_rows(r: &Report) -> Vec<Vec<String>> {
    r.revenue_share
        .iter()
        .map(|s| {
            vec![
                s.party.clone(),
                format!("{}", s.percent),
                opt(s.from),
                opt(s.until),
                opt(s.cap_usd.map(money)),
                money(s.billed_usd),
                money(s.accrued_usd),
                opt(s.remaining_to_cap_usd.map(money)),
                opt(s.cap_reached_on),
                opt(s.cap_projected_on),
            ]
        })
        .collect()
}

const REVENUE_HEADER: [&str; 10] = [
    "party",
    "percent",
    "from",
    "until",
    "cap_usd",
    "billed_usd",
    "accrued_usd",
    "remaining_to_cap_usd",
    "cap_reached_on",
    "cap_projected_on",
];

fn commitment_rows(r: &Report) -> Vec<Vec<String>> {
    r.commitments
        .iter()
        .map(|c| {
            vec![
                c.cloud.clone(),
                money(c.amount_usd),
                c.from.to_string(),
                c.to.to_string(),
                money(c.spent_usd),
                money(c.remaining_usd),
                c.days_left.to_string(),
                opt(c.daily_rate_needed_usd.map(money)),
                if c.on_track { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect()
}

const COMMITMENT_HEADER: [&str; 9] = [
    "cloud",
    "amount_usd",
    "from",
    "to",
    "spent_usd",
    "remaining_usd",
    "days_left",
    "daily_rate_needed_usd",
    "on_track",
];

/// Left-aligns the first column, right-aligns the rest.
fn align(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c == 0 {
                line.push_str(&format!("{cell:<w$}", w = widths[c]));
            } else {
                line.push_str(&format!("  {cell:>w$}", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn header(first: &str, rest: &[&str]) -> Vec<String> {
    std::iter::once(first)
        .chain(rest.iter().copied())
        .map(str::to_uppercase)
        .collect()
}

fn group_table(name: &str, m: &BTreeMap<String, Totals>, total: &Totals) -> String {
    let mut rows = vec![header(name, &USAGE_HEADER)];
    for (k, t) in m {
        rows.push(std::iter::once(k.clone()).chain(usage_cells(t)).collect());
    }
    rows.push(
        std::iter::once("total".to_string())
            .chain(usage_cells(total))
            .collect(),
    );
    align(&rows)
}

pub(crate) fn table(r: &Report) -> String {
    let mut out = format!("Ledger report {} to {} (to exclusive, UTC)\n", r.from, r.to);
    let groups = [
        (r.group_by.cloud, "cloud", &r.clouds),
        (r.group_by.model, "model", &r.models),
        (r.group_by.tenant, "tenant", &r.tenants),
    ];
    for (shown, name, m) in groups {
        if shown {
            out.push('\n');
            out.push_str(&group_table(name, m, &r.total));
        }
    }
    if !r.revenue_share.is_empty() {
        out.push_str("\nRevenue share\n");
        let mut rows = vec![header(REVENUE_HEADER[0], &REVENUE_HEADER[1..])];
        rows.extend(revenue_rows(r));
        out.push_str(&align(&rows));
    }
    if !r.commitments.is_empty() {
        out.push_str("\nCommitments\n");
        let mut rows = vec![header(COMMITMENT_HEADER[0], &COMMITMENT_HEADER[1..])];
        rows.extend(commitment_rows(r));
        out.push_str(&align(&rows));
    }
    out
}

pub(crate) fn csv(r: &Report) -> Result<String, LedgerError> {
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    let io = |e: csv::Error| LedgerError::Invalid(format!("csv: {e}"));
    w.write_record(["section", "name"].iter().chain(&USAGE_HEADER))
        .map_err(io)?;
    let groups = [
        (r.group_by.cloud, "cloud", &r.clouds),
        (r.group_by.model, "model", &r.models),
        (r.group_by.tenant, "tenant", &r.tenants),
    ];
    for (shown, name, m) in groups {
        for (k, t) in m.iter().filter(|_| shown) {
            let row: Vec<String> = [name.to_string(), k.clone()]
                .into_iter()
                .chain(usage_cells(t))
                .collect();
            w.write_record(&row).map_err(io)?;
        }
    }
    let total: Vec<String> = ["total".to_string(), "all".to_string()]
        .into_iter()
        .chain(usage_cells(&r.total))
        .collect();
    w.write_record(&total).map_err(io)?;
    w.write_record([""]).map_err(io)?;
    w.write_record(REVENUE_HEADER).map_err(io)?;
    for row in revenue_rows(r) {
        w.write_record(&row).map_err(io)?;
    }
    w.write_record([""]).map_err(io)?;
    w.write_record(COMMITMENT_HEADER).map_err(io)?;
    for row in commitment_rows(r) {
        w.write_record(&row).map_err(io)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| LedgerError::Invalid(format!("csv: {e}")))?;
    String::from_utf8(bytes).map_err(|e| LedgerError::Invalid(format!("csv: {e}")))
}
