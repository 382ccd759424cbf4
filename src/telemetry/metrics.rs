//! Prometheus metrics, served as text on an HTTP side port
//! (`KEYWARD_METRICS_LISTEN`, path `/metrics`).
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `keyward_decisions_total` | rpc, decision, reason | every Verify/Check outcome |
//! | `keyward_decision_duration_seconds` | rpc | time to decide (histogram) |
//! | `keyward_cache_answers_total` | tier | which tier answered: l1, redis, store, none |
//! | `keyward_store_seconds`, `keyward_store_errors_total` | | database calls |
//! | `keyward_redis_seconds`, `keyward_redis_errors_total` | | Redis calls |
//! | `keyward_revocation_lag_seconds` | bus | write → eviction on this replica |
//! | `keyward_stale_answers_total` | tier | answers served while the store was down |
//! | `keyward_dependency_trips_total` | dependency | breaker openings |
//! | `keyward_bus_publish_errors_total` | bus | invalidations not sent |
//! | `keyward_admin_actions_total` | action, outcome | admin RPCs |
//! | `keyward_db_pool_connections`, `keyward_redis_pool_connections` | state | pool usage (idle, in_use) |
//! | `keyward_l1_entries` | | keys in the in-process cache |
//! | `keyward_usage_rows_written_total`, `keyward_usage_flush_errors_total` | | usage batches written |
//! | `keyward_usage_dropped_total` | | calls not counted: the usage buffer was full |
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
            metrics::gauge!("keyward_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

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
    tokio::net::TcpListener::bind(addr).await
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
