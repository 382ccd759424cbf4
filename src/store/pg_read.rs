//! Where a Postgres read runs. Behind a transaction pooler every statement
//! is unnamed, and sqlx sends an unnamed statement in two exchanges (Parse
//! and Describe, then Bind and Execute, each ending in Sync); between them
//! the pooler may move the client to another server session, whose unnamed
//! statement is some other client's, and the Bind would run that. Inside a
//! transaction the pooler keeps one session, so there a read pays for BEGIN
//! and COMMIT; with a session of its own, a read takes any pooled connection.

use std::ops::{Deref, DerefMut};

use sqlx::{PgPool, Postgres, Transaction, pool::PoolConnection, postgres::PgConnection};

use super::StoreError;

pub(super) enum ReadConn {
    Pooled(PoolConnection<Postgres>),
    Pinned(Transaction<'static, Postgres>),
}

impl ReadConn {
    pub(super) async fn open(pool: &PgPool, named: bool) -> Result<Self, StoreError> {
        Ok(if named {
            Self::Pooled(pool.acquire().await?)
        } else {
            Self::Pinned(pool.begin().await?)
        })
    }

    /// Ends the read's transaction, if it has one, so the pooler can hand
    /// the server session to another client.
    pub(super) async fn done(self) -> Result<(), StoreError> {
        if let Self::Pinned(tx) = self {
            tx.commit().await?;
        }
        Ok(())
    }
}

impl Deref for ReadConn {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match self {
            Self::Pooled(conn) => conn,
            Self::Pinned(tx) => tx,
        }
    }
}

impl DerefMut for ReadConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Self::Pooled(conn) => conn,
            Self::Pinned(tx) => tx,
        }
    }
}
