//! `anycloud risk --config F [--from D --to D] [--format table|json] [--without CLOUD]`:
//! concentration, single points of failure and the outage drill (`anycloud_risk::report`);
//! with `--without CLOUD`, the drill for that cloud in detail.

use anycloud_risk::{report, Period};
use chrono::{Days, NaiveDate};
use std::path::Path;
use std::process::ExitCode;

pub struct Args<'a> {
    pub config: &'a Path,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub format: &'a str,
    pub without: Option<&'a str>,
}

pub(crate) fn date(name: &str, v: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| anyhow::anyhow!("--{name} must be an ISO 8601 date (YYYY-MM-DD), got `{v}`"))
}

/// `--from`/`--to`, defaulting to the 30 days up to and including today.
pub(crate) fn period(
    from: Option<&str>,
    to: Option<&str>,
    today: NaiveDate,
) -> anyhow::Result<Period> {
    let to = match to {
        Some(v) => date("to", v)?,
        None => today.checked_add_days(Days::new(1)).unwrap_or(today),
    };
    let from = match from {
        Some(v) => date("from", v)?,
        None => to.checked_sub_days(Days::new(30)).unwrap_or(to),
    };
    Ok(Period::new(from, to)?)
}

pub(crate) fn json_or_table(format: &str) -> anyhow::Result<bool> {
    match format {
        "json" => Ok(true),
        "table" => Ok(false),
        other => anyhow::bail!("unknown format `{other}` (expected table, json)"),
    }
}

pub async fn run(args: Args<'_>) -> anyhow::Result<ExitCode> {
    let today = chrono::Utc::now().date_naive();
    let period = period(args.from, args.to, today)?;
    let json = json_or_table(args.format)?;
    let config = super::load_config(args.config)?;
    let store = super::open_store(&config).await?;
    let out = match args.without {
        Some(cloud) => {
            let d = report::drill(store.as_ref(), &config, period, today, cloud).await?;
            if json {
                format!("{}\n", serde_json::to_string(&d)?)
            } else {
                d.to_table()
            }
        }
        None => {
            let r = report::build(store.as_ref(), &config, period, today).await?;
            if json {
                format!("{}\n", serde_json::to_string(&r)?)
            } else {
                r.to_table()
            }
        }
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
