//! Rate limits shared by every instance: the same GCRA as [`super::ratelimit`], with each
//! scope's theoretical arrival time (TAT) kept in Redis and updated by one Lua script
//! (`lua/gcra.lua`).
//!
//! Why a script: the check and the update must be one step, or two instances could both
//! see the last free slot. Redis runs a script atomically, so all the limits a request
//! falls under (tenant and key, requests and tokens) are checked and spent together: a
//! refusal spends nothing anywhere. The clock is Redis' own (`TIME`), so instances whose
//! clocks disagree still share one timeline.
//!
//! Keys: `<prefix>rl:<scope>:<rpm|tpm>` holding the TAT in microseconds, expiring once the
//! scope is back to full capacity (an idle scope costs no memory).

use super::limits::{Check, Verdict};
use super::ratelimit::{state_after, PERIOD};
use crate::link::RedisLink;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SharedGcra {
    link: Arc<RedisLink>,
    script: redis::Script,
    adjust: redis::Script,
}

impl SharedGcra {
    pub fn new(link: Arc<RedisLink>) -> SharedGcra {
        SharedGcra {
            link,
            script: redis::Script::new(include_str!("lua/gcra.lua")),
            adjust: redis::Script::new(include_str!("lua/gcra_adjust.lua")),
        }
    }

    pub fn link(&self) -> &RedisLink {
        &self.link
    }

    /// The shared verdict, or `None` when Redis could not give one (the caller falls back).
    pub async fn check(&self, checks: &[Check]) -> Option<Verdict> {
        if checks.is_empty() {
            return Some(Verdict::Allowed(Vec::new()));
        }
        let mut inv = self.script.prepare_invoke();
        inv.arg(PERIOD.as_micros() as u64);
        for c in checks {
            inv.key(self.link.key(&["rl", &c.scope]));
            let limit = c.limit.max(1);
            inv.arg(PERIOD.as_micros() as f64 / limit as f64);
            inv.arg(c.cost);
        }
        let out: Vec<i64> = self
            .link
            .call("rate_limit", |mut conn| async move {
                inv.invoke_async(&mut conn).await
            })
            .await?;
        parse(checks, &out)
    }
}

impl SharedGcra {
    /// Shifts each `(check, delta tokens)` scope by its delta (see `Gcra::adjust`);
    /// false when Redis could not take it.
    pub async fn adjust(&self, shifts: &[(Check, i64)]) -> bool {
        if shifts.is_empty() {
            return true;
        }
        let mut inv = self.adjust.prepare_invoke();
        for (c, delta) in shifts {
            inv.key(self.link.key(&["rl", &c.scope]));
            let t = PERIOD.as_micros() as f64 / c.limit.max(1) as f64;
            inv.arg(t * *delta as f64);
        }
        self.link
            .call("rate_limit", |mut conn| async move {
                inv.invoke_async::<i64>(&mut conn).await
            })
            .await
            .is_some()
    }
}

fn micros(v: i64) -> Duration {
    Duration::from_micros(v.max(0) as u64)
}

/// The script's answer as a [`Verdict`]; `None` for an answer of the wrong shape.
fn parse(checks: &[Check], out: &[i64]) -> Option<Verdict> {
    match out {
        [0, aheads @ ..] if aheads.len() == checks.len() => Some(Verdict::Allowed(
            checks
                .iter()
                .zip(aheads)
                .map(|(c, a)| Some(state_after(c.limit, micros(*a))))
                .collect(),
        )),
        [i, used, retry] if *i >= 1 && (*i as usize) <= checks.len() => {
            let index = *i as usize - 1;
            Some(Verdict::Limited {
                index,
                state: state_after(checks[index].limit, micros(*used)),
                retry_after: micros(*retry),
            })
        }
        _ => {
            tracing::error!(answer = ?out, "rate limit script answered in an unexpected shape");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(limit: u64) -> Check {
        Check {
            scope: "tenant:t:rpm".into(),
            limit,
            cost: 1,
        }
    }

    #[test]
    fn answers_become_verdicts() {
        let checks = [check(6), check(600)];
        match parse(&checks, &[0, 10_000_000, 100_000]) {
            Some(Verdict::Allowed(states)) => {
                assert_eq!(states[0].map(|s| s.remaining), Some(5));
                assert_eq!(states[1].map(|s| s.remaining), Some(599));
            }
            other => unreachable!("{other:?}"),
        }
        match parse(&checks, &[1, 60_000_000, 10_000_000]) {
            Some(Verdict::Limited {
                index,
                state,
                retry_after,
            }) => {
                assert_eq!(index, 0);
                assert_eq!(state.remaining, 0);
                assert_eq!(retry_after, Duration::from_secs(10));
            }
            other => unreachable!("{other:?}"),
        }
        assert!(parse(&checks, &[3, 0, 0]).is_none());
        assert!(parse(&checks, &[0, 1]).is_none());
    }
}
