//! Following a Postgres fail-over without a restart. sqlx pools connect to
//! one host, so the pool is pointed at the right one from outside: every
//! second a monitor checks the server over one of the pool's connections;
//! when none can be had or the server no longer fits `target_session_attrs`
//! (a demoted primary is read-only, a stopped one refuses), the monitor tries
//! the URL's hosts in order and points the pool at the first that fits. When
//! it points anew, connections opened before are closed when next taken from
//! the pool, so no write goes to the old server; a new connection that lands
//! on a server that does not fit is refused at once (`after_connect`) and
//! wakes the monitor.
//!
//! A write in flight on the old primary fails (connection lost, or 25006
//! read_only_sql_transaction, both `Unavailable`), so it is never reported
//! as done; writes after the switch succeed. A single host (a fail-over
//! endpoint: a DNS name, a VIP, a PgBouncer in front of Patroni) is followed
//! the same way: a lost or read-only server makes the pool reconnect.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use sqlx::{
    Connection, PgPool, Row,
    pool::PoolConnectionMetadata,
    postgres::{PgConnectOptions, PgConnection, PgPoolOptions},
};
use tokio::sync::Notify;

use super::hosts::{PgTarget, SessionAttrs};

/// How often the monitor checks the server it chose.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long the check waits for one of the pool's connections.
const POOL_CHECK_TIMEOUT: Duration = Duration::from_millis(250);

/// The state a server is in, read in one simple-protocol query (no prepared
/// statement, so a transaction pooler may carry it too).
const STATE_SQL: &str =
    "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'";

/// Pool settings shared by every Postgres pool keyward opens.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub application_name: &'static str,
}

/// Builds a lazy pool over `target`; with more than one host, or a session
/// attribute to check, a monitor follows fail-overs (see the module docs).
/// Needs a tokio runtime for the monitor.
pub fn pool(target: &PgTarget, settings: &PoolSettings) -> PgPool {
    let hosts: Vec<PgConnectOptions> = target
        .hosts
        .iter()
        .map(|h| h.clone().application_name(settings.application_name))
        .collect();
    let options = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout);
    if hosts.len() == 1 && target.attrs == SessionAttrs::Any {
        return options.connect_lazy_with(hosts[0].clone());
    }
    let failover = Arc::new(Failover {
        target: PgTarget {
            hosts,
            ..target.clone()
        },
        current: AtomicUsize::new(0),
        switched: AtomicU64::new(0),
        epoch: Instant::now(),
        wake: Notify::new(),
        probe_timeout: settings.acquire_timeout.min(Duration::from_secs(2)),
    });
    let check = failover.clone();
    let generation = failover.clone();
    let pool = options
        .after_connect(move |conn, _| {
            let failover = check.clone();
            Box::pin(async move { failover.admit(conn).await })
        })
        .before_acquire(move |_, meta| {
            let keep = generation.is_current(&meta);
            Box::pin(async move { Ok(keep) })
        })
        .connect_lazy_with(failover.target.hosts[0].clone());
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(failover.monitor(pool.clone()));
    }
    pool
}

struct Failover {
    target: PgTarget,
    /// The host the pool connects to.
    current: AtomicUsize,
    /// When the pool was last pointed anew (µs since `epoch`): connections
    /// opened before are not used again.
    switched: AtomicU64,
    epoch: Instant,
    wake: Notify,
    probe_timeout: Duration,
}

/// (in recovery, read only)
type ServerState = (bool, bool);

async fn state(conn: &mut PgConnection) -> Result<ServerState, sqlx::Error> {
    let row = sqlx::raw_sql(STATE_SQL).fetch_one(conn).await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

impl Failover {
    fn fits(&self, (in_recovery, read_only): ServerState) -> bool {
        // A primary is the fallback of prefer-standby: the monitor keeps
        // looking for a standby, new connections take what it chose.
        self.target.attrs == SessionAttrs::PreferStandby
            || self.target.attrs.accepts(in_recovery, read_only)
    }

    /// `after_connect`: refuses a connection to a server that does not fit,
    /// so the pool retries (with the host the monitor then picks).
    async fn admit(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let found = state(conn).await?;
        if self.fits(found) {
            return Ok(());
        }
        metrics::counter!("keyward_db_connections_refused_total").increment(1);
        self.wake.notify_one();
        Err(sqlx::Error::Protocol(format!(
            "{} does not fit target_session_attrs ({}in recovery, {}read-only)",
            self.target.describe(self.current.load(Ordering::Acquire)),
            if found.0 { "" } else { "not " },
            if found.1 { "" } else { "not " },
        )))
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// `before_acquire`: whether a pooled connection was opened after the
    /// last switch.
    fn is_current(&self, meta: &PoolConnectionMetadata) -> bool {
        let age = u64::try_from(meta.age.as_micros()).unwrap_or(u64::MAX);
        self.now().saturating_sub(age) >= self.switched.load(Ordering::Acquire)
    }

    async fn probe(&self, index: usize) -> Option<ServerState> {
        let attempt = async {
            let mut conn = PgConnection::connect_with(&self.target.hosts[index]).await?;
            let found = state(&mut conn).await;
            let _ = conn.close().await;
            found
        };
        match tokio::time::timeout(self.probe_timeout, attempt).await {
            Ok(Ok(found)) => Some(found),
            Ok(Err(error)) => {
                tracing::debug!(host = %self.target.describe(index), %error, "database host not usable");
                None
            }
            Err(_) => {
                tracing::debug!(host = %self.target.describe(index), "database host did not answer");
                None
            }
        }
    }

    /// The first host that fits, in the URL's order (prefer-standby: the
    /// first standby, else the first that answers).
    async fn scan(&self) -> Option<usize> {
        let mut fallback = None;
        for index in 0..self.target.hosts.len() {
            let Some(found) = self.probe(index).await else {
                continue;
            };
            if self.target.attrs.accepts(found.0, found.1) {
                return Some(index);
            }
            if self.target.attrs == SessionAttrs::PreferStandby && fallback.is_none() {
                fallback = Some(index);
            }
        }
        fallback
    }

    fn point(&self, pool: &PgPool, index: usize) {
        let previous = self.current.swap(index, Ordering::AcqRel);
        pool.set_connect_options(self.target.hosts[index].clone());
        self.switched.store(self.now(), Ordering::Release);
        metrics::counter!("keyward_db_host_switches_total").increment(1);
        tracing::info!(
            host = %self.target.describe(index),
            previous = %self.target.describe(previous),
            "database connections now go to this host"
        );
    }

    /// The state of the server the pool uses, read over one of its own
    /// connections (so the check costs no connection of its own); `None`
    /// when none could be had in time (down, or every connection busy).
    async fn pool_state(&self, pool: &PgPool) -> Option<ServerState> {
        let attempt = async {
            let mut conn = pool.acquire().await?;
            state(&mut conn).await
        };
        // Short: a refused server makes the pool retry until its own
        // timeout, and the scan that follows costs only a few connects.
        tokio::time::timeout(POOL_CHECK_TIMEOUT.min(self.probe_timeout), attempt)
            .await
            .ok()?
            .ok()
    }

    async fn monitor(self: Arc<Self>, pool: PgPool) {
        // With a list, start on the first host that fits rather than wait
        // for the first one to fail.
        if self.target.hosts.len() > 1
            && let Some(index) = self.scan().await
            && index != self.current.load(Ordering::Acquire)
        {
            self.point(&pool, index);
        }
        while !pool.is_closed() {
            let found = self.pool_state(&pool).await;
            // Reachable but not fitting (a demoted primary behind the same
            // name): the pool's connections all go to the wrong server.
            let wrong = found.is_some_and(|s| !self.fits(s));
            let settled = found.is_some_and(|s| self.target.attrs.accepts(s.0, s.1));
            if !settled
                && let Some(index) = self.scan().await
                && (wrong || index != self.current.load(Ordering::Acquire))
            {
                // Lost connections need no switch: the pool's ping on
                // acquire drops them.
                self.point(&pool, index);
            }
            let pause = if found.is_some() {
                CHECK_EVERY
            } else {
                CHECK_EVERY / 4
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.wake.notified() => {}
            }
        }
    }
}
