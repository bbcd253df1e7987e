//! `anycloud simulate --config F --candidate G [--from D --to D] [--format table|json]`:
//! the period's served requests replayed under the candidate config
//! (`anycloud_risk::simulate`), actual and candidate side by side.

use std::path::Path;
use std::process::ExitCode;

pub struct Args<'a> {
    pub config: &'a Path,
    pub candidate: &'a Path,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub format: &'a str,
}

pub async fn run(args: Args<'_>) -> anyhow::Result<ExitCode> {
    let today = chrono::Utc::now().date_naive();
    let period = super::risk::period(args.from, args.to, today)?;
    let json = super::risk::json_or_table(args.format)?;
    let config = super::load_config(args.config)?;
    let candidate = super::load_config(args.candidate)?;
    let store = super::open_store(&config).await?;
    let sim = anycloud_risk::simulate::simulate(
        store.as_ref(),
        &config,
        &candidate,
        period,
        today,
        &|_| {},
    )
    .await?;
    if json {
        println!("{}", serde_json::to_string(&sim)?);
    } else {
        print!("{}", sim.to_table());
    }
    Ok(ExitCode::SUCCESS)
}
