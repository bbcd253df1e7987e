//! `anycloud report --config F --from D --to D [--group-by …] [--format table|csv|json]`:
//! the ledger report (`anycloud_ledger::report`) on stdout. A progress bar on stderr
//! follows the per-day queries when stderr and stdout are terminals (hidden otherwise, so
//! pipes and files get only the report).

use anycloud_ledger::report::{self, GroupBy, ReportFormat, ReportRequest};
use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

pub struct Args<'a> {
    pub config: &'a Path,
    pub from: &'a str,
    pub to: &'a str,
    pub group_by: Option<&'a str>,
    pub format: &'a str,
}

fn date(name: &str, v: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| anyhow::anyhow!("--{name} must be an ISO 8601 date (YYYY-MM-DD), got `{v}`"))
}

pub async fn run(args: Args<'_>) -> anyhow::Result<ExitCode> {
    let (from, to) = (date("from", args.from)?, date("to", args.to)?);
    let group_by = args
        .group_by
        .map(GroupBy::parse)
        .transpose()?
        .unwrap_or_default();
    let format = ReportFormat::parse(args.format)?;
    let config = super::load_config(args.config)?;
    let store = super::open_store(&config).await?;
    let req = ReportRequest {
        from,
        to,
        group_by,
        today: chrono::Utc::now().date_naive(),
    };
    let bar = ProgressBar::with_draw_target(
        Some(report::progress_steps(&req, &config.agreements)),
        if std::io::stdout().is_terminal() && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} reading the ledger {bar:30} {pos}/{len} {elapsed}")
    {
        bar.set_style(style);
    }
    let progress = {
        let bar = bar.clone();
        move |done: u64, _total: u64| bar.set_position(done)
    };
    let built = report::build(store.as_ref(), &config.agreements, &req, &progress).await?;
    bar.finish_and_clear();
    print!("{}", built.render(format)?);
    Ok(ExitCode::SUCCESS)
}
