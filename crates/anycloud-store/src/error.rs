//! `StoreError`: everything that can go wrong in the store, grouped by whose fault it is.
//!
//! No variant ever carries a key, a key hash, a password or a full database URL (a
//! `postgres://user:password@…` URL holds a secret), so errors can be logged and shown as-is.
//! `kind()` gives a low-cardinality name for metric labels.

use std::path::PathBuf;

/// An error from opening or using a [`crate::Store`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // --- The operator's fault: configuration. ---
    /// The URL's scheme names a backend this build does not have.
    #[error("unsupported store URL scheme `{scheme}` (supported: sqlite, postgres)")]
    UnsupportedUrl { scheme: String },

    /// The URL has a supported scheme but cannot be used.
    #[error("invalid store URL: {reason}")]
    InvalidUrl { reason: &'static str },

    // --- The caller's fault: a request the data does not allow. ---
    /// A key was created for a tenant the store does not know; call `sync_tenants` first.
    #[error("unknown tenant `{tenant}`")]
    UnknownTenant { tenant: String },

    /// A record with the same identity already exists.
    #[error("{what} already exists")]
    Conflict { what: &'static str },

    // --- The environment's fault: disk, database, corrupted rows. ---
    /// Creating the database's directory failed.
    #[error("cannot create store directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Applying the schema migrations failed.
    #[error("store migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),

    /// The database refused or failed a query or a connection.
    #[error("store database error")]
    Database(#[source] sqlx::Error),

    /// Content stores are configured (`[store.content]`) but this tenant's content has no
    /// store to go to: written nowhere rather than into the wrong jurisdiction.
    #[error("tenant `{tenant}` has no content store (set its data_jurisdiction)")]
    NoContentStore { tenant: String },

    /// A stored value could not be decoded (bad timestamp, bad JSON).
    #[error("corrupt stored value in {table}.{column}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
    },
}

impl StoreError {
    /// A short, stable name for metric labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::UnsupportedUrl { .. } => "unsupported_url",
            StoreError::InvalidUrl { .. } => "invalid_url",
            StoreError::UnknownTenant { .. } => "unknown_tenant",
            StoreError::Conflict { .. } => "conflict",
            StoreError::CreateDir { .. } => "create_dir",
            StoreError::Migrate(_) => "migrate",
            StoreError::Database(_) => "database",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::NoContentStore { .. } => "no_content_store",
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        StoreError::Database(err)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(err)
    }
}
