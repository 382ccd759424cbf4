//! Prometheus metrics, served as text on an HTTP side port
//! (`KEYWARD_METRICS_LISTEN`, path `/metrics`).
//!
//! Every metric is described in [`describe`] (the `# HELP` lines), and the
//! series an alert takes `rate()` of are created at zero in [`precreate`],
//! so the first failure is an increase rather than a new series.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `keyward_decisions_total` | rpc, decision, reason | every Verify/Check outcome |
//! | `keyward_decision_duration_seconds` | rpc | time to decide (histogram) |
//! | `keyward_cache_answers_total` | tier | which tier answered: l1, redis, store, none |
//! | `keyward_store_query_duration_seconds` | op | database calls, by store operation |
//! | `keyward_store_errors_total` | | hot-path database reads that failed |
//! | `keyward_redis_command_duration_seconds` | op | Redis calls: get, fill, tombstone, forget, rate_limit |
//! | `keyward_redis_errors_total` | | Redis calls that failed or timed out |
//! | `keyward_redis_redirects_total` | | MOVED/ASK replies: a `redis://` URL names a cluster node |
//! | `keyward_redis_master_switches_total` | | times Sentinel named another master |
//! | `keyward_revocation_lag_seconds` | bus | write → eviction on this replica |
//! | `keyward_stale_answers_total` | tier | answers served while the store was down |
//! | `keyward_dependency_trips_total` | dependency | breaker openings (redis, store) |
//! | `keyward_bus_publish_errors_total` | bus | invalidations not sent |
//! | `keyward_admin_actions_total` | action, outcome | admin RPCs |
//! | `keyward_leaked_keys_revoked_total` | reporter | keys revoked on a leak report (github, rpc) |
//! | `keyward_db_pool_connections`, `keyward_redis_pool_connections` | state | pool usage (idle, in_use) |
//! | `keyward_db_host_switches_total`, `keyward_db_connections_refused_total` | | Postgres fail-over: pool pointed at another host; new connections to a server that did not fit target_session_attrs |
//! | `keyward_db_replica_lag_seconds`, `keyward_db_replica_skipped_total` | why | read replica: measured lag; reads sent to the primary (lag, changed, error) |
//! | `keyward_l1_entries` | | keys in the in-process cache |
//! | `keyward_usage_rows_written_total`, `keyward_usage_flush_errors_total` | | usage batches written |
//! | `keyward_usage_dropped_calls_total` | | calls not counted: the usage buffer was full |
//! | `keyward_tls_reloads_total` | outcome | TLS files re-read (ok, error) |
//! | `keyward_tls_handshake_failures_total` | | TLS handshakes that failed |
//! | `keyward_tls_empty_connections_total` | | TLS connections closed before any byte (probes) |
//! | `keyward_accept_errors_total`, `keyward_connections_refused_total`, `keyward_connections_idle_closed_total` | | main-port connections (see `serve`) |
//! | `keyward_calls_shed_total`, `keyward_request_timeouts_total`, `keyward_handler_panics_total` | | calls refused or ended by the resource limits, caught panics |
//! | `keyward_outbox_tail_errors_total`, `keyward_l2_distrusted_total` | | the invalidation outbox tail |
//! | `keyward_tombstones_retried_total`, `keyward_tombstones_dropped_total` | | Redis tombstones written late or given up |
//! | `keyward_build_info` | version | always 1 |
//!
//! Labels never carry a key, a digest or a key id (ids would make the
//! series unbounded; per-key figures belong in traces and logs).

use std::{net::SocketAddr, sync::OnceLock, time::Duration};

use axum::{Router, routing::get};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::{cache::Tier, decision::Reason};

const SECONDS_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once per process; later calls return the
/// same handle. Until this runs, every metric is a no-op.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .expect("static buckets are valid")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            describe();
            precreate();
            metrics::gauge!("keyward_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

/// The `# HELP` text of every metric keyward records; a metric recorded
/// anywhere in the crate gets its line here.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "keyward_decisions_total",
        "Verify and Check outcomes by rpc, decision (allow, deny, error) and reason."
    );
    describe_histogram!(
        "keyward_decision_duration_seconds",
        Unit::Seconds,
        "Time to decide one Verify or Check."
    );
    describe_counter!(
        "keyward_cache_answers_total",
        "Decisions by the tier that answered the lookup: l1, redis, store, or none."
    );
    describe_histogram!(
        "keyward_store_query_duration_seconds",
        Unit::Seconds,
        "Duration of database calls, by store operation (op)."
    );
    describe_counter!(
        "keyward_store_errors_total",
        "Hot-path database reads that failed or timed out."
    );
    describe_histogram!(
        "keyward_redis_command_duration_seconds",
        Unit::Seconds,
        "Duration of Redis calls, by operation (op)."
    );
    describe_counter!(
        "keyward_redis_errors_total",
        "Redis calls that failed or timed out (Redis is skipped until it answers)."
    );
    describe_counter!(
        "keyward_redis_redirects_total",
        "Redis replies MOVED or ASK: the Redis URL names one node of a cluster (use redis+cluster://)."
    );
    describe_counter!(
        "keyward_redis_master_switches_total",
        "Times the sentinels named another Redis master (redis+sentinel:// URLs)."
    );
    describe_histogram!(
        "keyward_revocation_lag_seconds",
        Unit::Seconds,
        "Time from a key's invalidation to its eviction on this replica, by bus."
    );
    describe_counter!(
        "keyward_stale_answers_total",
        "Lookups answered from a cache tier past its TTL because the store was down."
    );
    describe_counter!(
        "keyward_dependency_trips_total",
        "Times a dependency's breaker opened (redis, store)."
    );
    describe_counter!(
        "keyward_bus_publish_errors_total",
        "Invalidations this replica could not publish, by bus."
    );
    describe_counter!(
        "keyward_admin_actions_total",
        "Admin RPCs by action and outcome."
    );
    describe_gauge!(
        "keyward_db_pool_connections",
        "Database pool connections by state (idle, in_use)."
    );
    describe_counter!(
        "keyward_db_host_switches_total",
        "Times a Postgres pool was pointed at another host (or reconnected) after a fail-over."
    );
    describe_counter!(
        "keyward_db_connections_refused_total",
        "New Postgres connections refused: the server did not fit target_session_attrs."
    );
    describe_gauge!(
        "keyward_db_replica_lag_seconds",
        Unit::Seconds,
        "How far the read replica's replay is behind the primary, as measured."
    );
    describe_counter!(
        "keyward_db_replica_skipped_total",
        "Hot-path reads sent to the primary instead of the read replica, by why (lag, changed, error)."
    );
    describe_gauge!(
        "keyward_redis_pool_connections",
        "Redis pool connections by state (idle, in_use)."
    );
    describe_gauge!(
        "keyward_l1_entries",
        "Entries in the in-process key cache (L1)."
    );
    describe_counter!(
        "keyward_usage_rows_written_total",
        "Usage rows (key, minute, outcome) written to the database."
    );
    describe_counter!(
        "keyward_usage_flush_errors_total",
        "Usage batches that could not be written (kept for the next flush)."
    );
    describe_counter!(
        "keyward_usage_dropped_calls_total",
        "Calls not counted in usage because the usage buffer was full."
    );
    describe_counter!(
        "keyward_tls_reloads_total",
        "Re-reads of changed TLS files, by outcome (ok, error)."
    );
    describe_counter!(
        "keyward_tls_handshake_failures_total",
        "TLS handshakes on the gRPC port that failed."
    );
    describe_counter!(
        "keyward_tls_empty_connections_total",
        "TLS connections closed (or silent until the handshake timeout) before their first byte: TCP probes and port scans, not failed handshakes."
    );
    describe_counter!(
        "keyward_accept_errors_total",
        "Errors accepting a connection on the main port (e.g. out of file descriptors); the accept loop backs off."
    );
    describe_counter!(
        "keyward_connections_refused_total",
        "Connections closed at once because --max-connections were open."
    );
    describe_counter!(
        "keyward_connections_idle_closed_total",
        "Connections closed after --idle-timeout with no call in flight."
    );
    describe_counter!(
        "keyward_calls_shed_total",
        "Calls answered RESOURCE_EXHAUSTED because --max-in-flight calls were running."
    );
    describe_counter!(
        "keyward_request_timeouts_total",
        "Calls whose request had not fully arrived within --request-timeout."
    );
    describe_counter!(
        "keyward_handler_panics_total",
        "Handler panics caught and answered INTERNAL."
    );
    describe_counter!(
        "keyward_outbox_tail_errors_total",
        "Failed reads of the invalidation outbox by this replica's tail."
    );
    describe_counter!(
        "keyward_l2_distrusted_total",
        "Redis answers refused because they were confirmed before an invalidation this replica knows of."
    );
    describe_counter!(
        "keyward_tombstones_retried_total",
        "Redis tombstones written on a retry after the first write failed."
    );
    describe_counter!(
        "keyward_tombstones_dropped_total",
        "Redis tombstones given up (retry queue full); safe, the outbox still refuses the old answers."
    );
    describe_counter!(
        "keyward_leaked_keys_revoked_total",
        "Live keys revoked because a leak report named them, by reporter (github, rpc)."
    );
    describe_gauge!(
        "keyward_build_info",
        "Always 1; the version label says which build runs."
    );
}

/// Creates at zero the series that alerts watch with `rate()` or
/// `increase()`: a series that appears only with the first failure has no
/// earlier sample, so that failure would never show as an increase.
fn precreate() {
    for name in [
        "keyward_store_errors_total",
        "keyward_redis_errors_total",
        "keyward_usage_flush_errors_total",
        "keyward_usage_dropped_calls_total",
        "keyward_tls_handshake_failures_total",
        "keyward_tls_empty_connections_total",
        "keyward_accept_errors_total",
        "keyward_connections_refused_total",
        "keyward_connections_idle_closed_total",
        "keyward_calls_shed_total",
        "keyward_request_timeouts_total",
        "keyward_handler_panics_total",
        "keyward_outbox_tail_errors_total",
        "keyward_l2_distrusted_total",
        "keyward_tombstones_retried_total",
        "keyward_tombstones_dropped_total",
    ] {
        metrics::counter!(name).absolute(0);
    }
    for reporter in ["github", "rpc"] {
        metrics::counter!("keyward_leaked_keys_revoked_total", "reporter" => reporter).absolute(0);
    }
    for tier in [Tier::L1, Tier::Redis] {
        metrics::counter!("keyward_stale_answers_total", "tier" => tier.as_str()).absolute(0);
    }
    for dependency in ["redis", "store"] {
        metrics::counter!("keyward_dependency_trips_total", "dependency" => dependency).absolute(0);
    }
    for bus in BUSES {
        metrics::counter!("keyward_bus_publish_errors_total", "bus" => bus).absolute(0);
        // A registered histogram renders with empty buckets.
        let _ = metrics::histogram!("keyward_revocation_lag_seconds", "bus" => bus);
    }
    for outcome in ["ok", "error"] {
        metrics::counter!("keyward_tls_reloads_total", "outcome" => outcome).absolute(0);
    }
}

/// The buses that carry invalidations between replicas (the in-process one
/// sends nothing, so it neither fails to publish nor lags).
const BUSES: [&str; 2] = ["redis", "postgres"];

/// Serves `/metrics` on `addr` until `stop`. `refresh` runs before each
/// scrape to update the gauges that are read rather than counted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    refresh: impl Fn() + Send + Sync + Clone + 'static,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let upkeep = handle.clone();
    let upkeep_stop = stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                () = upkeep_stop.cancelled() => return,
                _ = tick.tick() => upkeep.run_upkeep(),
            }
        }
    });
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let (handle, refresh) = (handle.clone(), refresh.clone());
            async move {
                refresh();
                (
                    [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                    handle.render(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    crate::listen::bind(addr).await
}

/// Which RPC decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    Verify,
    Check,
}

impl Rpc {
    pub fn as_str(self) -> &'static str {
        match self {
            Rpc::Verify => "verify",
            Rpc::Check => "check",
        }
    }
}

/// Handles resolved once, so recording a decision is a few atomic adds
/// rather than a registry lookup per label set.
struct DecisionMetrics {
    /// [rpc][reason]; the extra last slot counts "could not decide".
    decisions: [[Counter; Reason::ALL.len() + 1]; 2],
    duration: [Histogram; 2],
    /// l1, redis, store, none.
    tiers: [Counter; 4],
}

fn decision_metrics() -> &'static DecisionMetrics {
    static METRICS: OnceLock<DecisionMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let per_rpc = |rpc: Rpc| {
            let mut counters: Vec<Counter> = Reason::ALL
                .iter()
                .map(|r| {
                    let decision = if r.allowed() { "allow" } else { "deny" };
                    metrics::counter!("keyward_decisions_total", "rpc" => rpc.as_str(), "decision" => decision, "reason" => r.as_str())
                })
                .collect();
            counters.push(metrics::counter!("keyward_decisions_total", "rpc" => rpc.as_str(), "decision" => "error", "reason" => "unavailable"));
            counters.try_into().unwrap_or_else(|_| unreachable!("one counter per reason"))
        };
        DecisionMetrics {
            decisions: [per_rpc(Rpc::Verify), per_rpc(Rpc::Check)],
            duration: [Rpc::Verify, Rpc::Check]
                .map(|rpc| metrics::histogram!("keyward_decision_duration_seconds", "rpc" => rpc.as_str())),
            tiers: ["l1", "redis", "store", "none"].map(|tier| metrics::counter!("keyward_cache_answers_total", "tier" => tier)),
        }
    })
}

/// Counts one decision (`None`: keyward could not decide).
pub fn decision(rpc: Rpc, reason: Option<Reason>, tier: Option<Tier>, elapsed: Duration) {
    let m = decision_metrics();
    let rpc = rpc as usize;
    // `Reason::ALL` is indexed by the discriminant.
    let slot = reason.map_or(Reason::ALL.len(), |r| r as usize);
    m.decisions[rpc][slot].increment(1);
    m.duration[rpc].record(elapsed.as_secs_f64());
    let tier = match tier {
        Some(Tier::L1) => 0,
        Some(Tier::Redis) => 1,
        Some(Tier::Store) => 2,
        None => 3,
    };
    m.tiers[tier].increment(1);
}
