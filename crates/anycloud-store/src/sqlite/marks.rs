//! The spool marks on SQLite (`spool_marks`, migration 0018): see
//! [`crate::spool::Stamp`].

use std::collections::HashMap;

use sqlx::Row;

use crate::spool::{unwritten, Stamp};

/// Inside the batch's transaction: which records no earlier try committed; records the
/// new marks, so they commit (or roll back) with the records.
pub(super) async fn claim(
    conn: &mut sqlx::SqliteConnection,
    spool: &str,
    stamps: &[Option<Stamp>],
) -> Result<Vec<bool>, sqlx::Error> {
    let mut marks = HashMap::new();
    let mut origins: Vec<i64> = stamps.iter().flatten().map(|s| s.origin).collect();
    origins.sort_unstable();
    origins.dedup();
    for origin in origins {
        let row = sqlx::query("SELECT upto FROM spool_marks WHERE spool = ?1 AND origin = ?2")
            .bind(spool)
            .bind(origin)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(row) = row {
            marks.insert(origin, row.try_get::<i64, _>("upto")?);
        }
    }
    let (keep, new_marks) = unwritten(stamps, &marks);
    let now = chrono::Utc::now().timestamp_millis();
    for (origin, upto) in new_marks {
        sqlx::query(
            "INSERT INTO spool_marks (spool, origin, upto, at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (spool, origin) DO UPDATE
             SET upto = MAX(spool_marks.upto, excluded.upto), at = excluded.at",
        )
        .bind(spool)
        .bind(origin)
        .bind(upto)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(keep)
}

/// Deletes `spool`'s marks of `origins` (their records can never be tried again).
pub(super) async fn forget(
    pool: &sqlx::SqlitePool,
    spool: &str,
    origins: &[i64],
) -> Result<(), sqlx::Error> {
    for origin in origins {
        sqlx::query("DELETE FROM spool_marks WHERE spool = ?1 AND origin = ?2")
            .bind(spool)
            .bind(origin)
            .execute(pool)
            .await?;
    }
    Ok(())
}
