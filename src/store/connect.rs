//! Picks the engine from the database URL.

use std::sync::Arc;

use super::{KeyStore, StoreError, StoreOptions, postgres::PgStore, sqlite::SqliteStore};

/// Opens the store `url` names: `postgres://…` (or `postgresql://…`) or
/// `sqlite:PATH` (the file is created if missing). Postgres connects lazily,
/// so a server can start while its database is still coming up.
pub async fn connect(url: &str, options: &StoreOptions) -> Result<Arc<dyn KeyStore>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url, options)?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, options).await?))
    } else {
        Err(StoreError::Other(
            "unsupported database URL: use postgres://… or sqlite:PATH".to_owned(),
        ))
    }
}
