//! Schema migrations, the same way for every backend: each backend embeds its own
//! `migrations/<backend>/` with `sqlx::migrate!` and calls [`pending`] and [`apply`] here.
//!
//! [`apply`] runs one migration at a time (each a prefix of the embedded list handed to
//! sqlx's migrator, which takes the backend's migration lock and skips what is applied), so
//! `anycloud migrate` can report progress per migration.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Serialize;
use sqlx::migrate::{Migrate, MigrateError, Migrator};

use crate::StoreError;

/// One migration, as shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationInfo {
    pub version: i64,
    pub description: String,
}

/// The embedded migrations the database has not applied, in order. Fails if the database
/// holds a half-applied (dirty) migration or one whose checksum differs from this build's.
pub(crate) async fn pending<C: Migrate>(
    migrator: &Migrator,
    conn: &mut C,
) -> Result<Vec<MigrationInfo>, StoreError> {
    conn.ensure_migrations_table().await?;
    if let Some(version) = conn.dirty_version().await? {
        return Err(MigrateError::Dirty(version).into());
    }
    let applied: HashMap<i64, Vec<u8>> = conn
        .list_applied_migrations()
        .await?
        .into_iter()
        .map(|m| (m.version, m.checksum.into_owned()))
        .collect();
    let mut out = Vec::new();
    for m in migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
    {
        match applied.get(&m.version) {
            Some(sum) if sum.as_slice() != m.checksum.as_ref() => {
                return Err(MigrateError::VersionMismatch(m.version).into())
            }
            Some(_) => {}
            None => out.push(MigrationInfo {
                version: m.version,
                description: m.description.to_string(),
            }),
        }
    }
    Ok(out)
}

/// Applies the pending migrations in order, calling `applied` after each; returns them.
pub(crate) async fn apply<C: Migrate>(
    migrator: &Migrator,
    conn: &mut C,
    applied: &(dyn Fn(&MigrationInfo) + Send + Sync),
) -> Result<Vec<MigrationInfo>, StoreError> {
    let todo = pending(migrator, conn).await?;
    let all: Vec<_> = migrator.iter().cloned().collect();
    for m in &todo {
        let upto = all
            .iter()
            .position(|x| x.version == m.version)
            .map_or(all.len(), |i| i + 1);
        let mut step = Migrator::DEFAULT;
        step.migrations = Cow::Owned(all[..upto].to_vec());
        step.locking = migrator.locking;
        step.no_tx = migrator.no_tx;
        step.run_direct(conn).await?;
        applied(m);
    }
    Ok(todo)
}
