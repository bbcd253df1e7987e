//! `anycloud audit verify --config F [--checkpoint C]`: walks the audit log's chain (an
//! HMAC-SHA-256 chain under `[audit] key`, plain SHA-256 without). Exit 0 with the entry
//! count when intact; exit 1 naming the first altered, missing or misplaced entry.
//!
//! `anycloud audit checkpoint --config F [--out C]` writes the chain's head — sequence,
//! hash, time — signed with the audit key, for the operator to keep outside the
//! database. Verifying against it proves that nothing up to that entry was rewritten
//! (every link up to it still verifies and it still has the checkpointed hash) or
//! truncated (the entry is still there), even by someone who can write the database.

use anycloud_store::{ChainKeys, ChainStatus};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::ExitCode;

/// The checkpoint file: one JSON object.
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    seq: i64,
    hash: String,
    at: chrono::DateTime<chrono::Utc>,
    key_id: String,
    /// HMAC-SHA-256 (hex) of [`Checkpoint::signed_line`] under `key_id`.
    mac: String,
}

impl Checkpoint {
    fn signed_line(&self) -> String {
        format!(
            "anycloud-audit-checkpoint\n{}\n{}\n{}",
            self.seq,
            self.hash,
            self.at.to_rfc3339()
        )
    }
}

fn keys_of(config: &anycloud_config::Config) -> anyhow::Result<ChainKeys> {
    Ok(anycloud_server::governance::audit::chain_keys(
        &config.audit,
    )?)
}

pub async fn verify(path: &Path, checkpoint: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(path)?;
    let keys = keys_of(&config)?;
    let checkpoint = checkpoint.map(|p| read_checkpoint(p, &keys)).transpose()?;
    let store = super::open_store(&config).await?;
    match store.verify_audit(&keys).await? {
        ChainStatus::Intact { count } => {
            if let Some(cp) = &checkpoint {
                let at_cp = store.audit_entry(cp.seq).await?;
                match at_cp {
                    Some(r) if r.hash == cp.hash => {}
                    Some(_) => {
                        println!("audit log BROKEN: entry {} is not the checkpointed one (history up to it was rewritten)", cp.seq);
                        return Ok(ExitCode::FAILURE);
                    }
                    None => {
                        println!("audit log BROKEN: entry {} of the checkpoint is gone (the log was truncated to {count} entries)", cp.seq);
                        return Ok(ExitCode::FAILURE);
                    }
                }
                println!(
                    "audit log intact: {count} entries verified; checkpoint at entry {} ({}) matches",
                    cp.seq,
                    cp.at.to_rfc3339()
                );
            } else {
                println!("audit log intact: {count} entries verified");
            }
            if !keys.is_keyed() {
                println!("note: the chain is not keyed; set [audit] key so that database access alone cannot rewrite it");
            }
            Ok(ExitCode::SUCCESS)
        }
        ChainStatus::Broken {
            seq,
            verified,
            problem,
        } => {
            println!("audit log BROKEN at entry {seq}: {problem} ({verified} entries verified before it)");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn read_checkpoint(path: &Path, keys: &ChainKeys) -> anyhow::Result<Checkpoint> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read checkpoint {}: {e}", path.display()))?;
    let cp: Checkpoint = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("checkpoint {} is not valid: {e}", path.display()))?;
    let Some(mac) = keys.sign(&cp.key_id, &cp.signed_line()) else {
        anyhow::bail!(
            "checkpoint {} is signed with audit key `{}`, which is not configured",
            path.display(),
            cp.key_id
        );
    };
    // A forged or edited checkpoint proves nothing: refuse it.
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        mac.as_bytes(),
        cp.mac.as_bytes(),
    )) {
        anyhow::bail!(
            "checkpoint {} does not verify under audit key `{}` (edited or forged)",
            path.display(),
            cp.key_id
        );
    }
    Ok(cp)
}

pub async fn checkpoint(path: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(path)?;
    let keys = keys_of(&config)?;
    let Some(key_id) = keys.current_id().map(str::to_string) else {
        anyhow::bail!(
            "`audit checkpoint` needs [audit] key in the config (a checkpoint is signed with it)"
        );
    };
    let store = super::open_store(&config).await?;
    if let ChainStatus::Broken { seq, problem, .. } = store.verify_audit(&keys).await? {
        anyhow::bail!("the chain is broken at entry {seq} ({problem}); no checkpoint written");
    }
    let Some((seq, hash)) = store.audit_head().await? else {
        anyhow::bail!("the audit log is empty; nothing to checkpoint");
    };
    let mut cp = Checkpoint {
        seq,
        hash,
        at: chrono::Utc::now(),
        key_id: key_id.clone(),
        mac: String::new(),
    };
    cp.mac = keys.sign(&key_id, &cp.signed_line()).unwrap_or_default();
    let text = serde_json::to_string_pretty(&cp)? + "\n";
    match out {
        Some(p) => {
            std::fs::write(p, text)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
            eprintln!("checkpoint of entry {seq} written to {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
