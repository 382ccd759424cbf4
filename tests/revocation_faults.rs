//! Revocation must win under Redis faults (issue 11): two replicas on one
//! Postgres schema and a private redis-server, each reaching it through a
//! proxy the test can cut, under Verify load on both. Each fault runs while
//! keys are revoked; then every revoked key is swept on both replicas for
//! longer than the Redis TTL. Any allow of a Verify that started more than
//! the bound after its Revoke returned OK is a failure; the worst lateness
//! seen is printed.
//!
//! The replicas keep keys in L1 for a minute, so on a replica that misses
//! an invalidation (lost bus message, tombstone Redis never took, old entry
//! back from the AOF) the key stays allowed far past the bound unless
//! something else tells it.

mod common;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use keyward::proto::v1 as pb;

use common::{
    TestApp, TestDb,
    client::Api,
    config,
    proxy::Proxy,
    redis::{OwnRedis, namespace},
};

const BOUND: Duration = Duration::from_secs(1);
const KEYS: usize = 24;

/// One scenario at a time: they measure lateness on a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Rig {
    _db: TestDb,
    redis: tokio::sync::Mutex<OwnRedis>,
    proxy_a: Proxy,
    proxy_b: Proxy,
    a: TestApp,
    b: TestApp,
    admin: String,
    keys: Vec<(String, String)>,
    /// Key index → when its Revoke returned OK.
    revoked: Arc<Mutex<HashMap<usize, Instant>>>,
    redis_ttl: Duration,
}

#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    calls: u64,
    errors: u64,
    late_allows: u64,
    /// Worst time from a Revoke's OK to the start of a Verify that allowed.
    worst: Duration,
}

impl Rig {
    async fn start(persistent: bool, redis_ttl: Duration) -> Option<Self> {
        let db = TestDb::postgres().await?;
        let redis = if persistent {
            OwnRedis::start_persistent().await?
        } else {
            OwnRedis::start().await?
        };
        // Each replica reaches Redis through a proxy of its own.
        let proxy_a = Proxy::start(redis.addr()).await;
        let proxy_b = Proxy::start(redis.addr()).await;
        let ns = namespace();
        let ttl = format!("{}s", redis_ttl.as_secs());
        let replica = |proxy: &Proxy| {
            let url = format!("redis://{}", proxy.addr);
            let args = [
                "--namespace",
                &ns,
                "--redis-url",
                &url,
                "--redis-ttl",
                &ttl,
                "--l1-ttl",
                "60s",
                "--max-staleness",
                "20s",
                "--revocation-bound",
                "1s",
            ];
            config(&db.url, &args)
        };
        let a = TestApp::spawn_with(replica(&proxy_a), None).await;
        let b = TestApp::spawn_with(replica(&proxy_b), None).await;
        let mut client = a.api().await;
        let admin = client.admin.clone();
        // Let both replicas subscribe before the first write.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut keys = Vec::new();
        for i in 0..KEYS {
            keys.push(
                client
                    .issue_key("acme", &format!("k{i}"), &["orders:read"])
                    .await,
            );
        }
        let rig = Self {
            _db: db,
            redis: tokio::sync::Mutex::new(redis),
            proxy_a,
            proxy_b,
            a,
            b,
            admin,
            keys,
            revoked: Arc::default(),
            redis_ttl,
        };
        rig.warm().await;
        Some(rig)
    }

    /// Every key into L2 and both L1s (a verify overlapping the key's own
    /// "created" invalidation is deliberately not kept, hence twice).
    async fn warm(&self) {
        for app in [&self.a, &self.b] {
            let mut client = app.api_with(&self.admin).await;
            for _ in 0..2 {
                for (key, _) in &self.keys {
                    assert!(allowed(&mut client, key).await.unwrap());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Revokes key `i` on replica A or B and notes when it returned OK.
    async fn revoke(&self, i: usize, on_b: bool) {
        let app = if on_b { &self.b } else { &self.a };
        let mut client = app.api_with(&self.admin).await;
        let request = pb::RevokeRequest {
            key_id: self.keys[i].1.clone(),
            reason: "fault test".into(),
        };
        client
            .try_revoke(request)
            .await
            .expect("revoke succeeds: Postgres is up");
        self.revoked.lock().unwrap().insert(i, Instant::now());
    }

    /// Verify load on both replicas until `done`, two callers each.
    fn load(&self, done: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<(char, Tally)>> {
        let mut tasks = Vec::new();
        for (name, app) in [('A', &self.a), ('B', &self.b)] {
            for _ in 0..2 {
                let url = app.url();
                let keys: Vec<String> = self.keys.iter().map(|(k, _)| k.clone()).collect();
                let (revoked, done) = (self.revoked.clone(), done.clone());
                tasks.push(tokio::spawn(async move {
                    let mut client = Api::connect(url, String::new()).await;
                    (name, sweep(&mut client, &keys, &revoked, &done).await)
                }));
            }
        }
        tasks
    }

    /// Runs `fault` under load, then keeps sweeping for longer than the
    /// Redis TTL; asserts no late allow and prints the worst lateness.
    async fn run(&self, scenario: &str, fault: impl AsyncFnOnce(&Self)) {
        let done = Arc::new(AtomicBool::new(false));
        let load = self.load(&done);
        let started = Instant::now();
        fault(self).await;
        let fault_took = started.elapsed();
        tokio::time::sleep(self.redis_ttl + Duration::from_secs(2)).await;
        done.store(true, Ordering::SeqCst);
        let mut totals: HashMap<char, Tally> = HashMap::new();
        for task in load {
            let (name, tally) = task.await.unwrap();
            let total = totals.entry(name).or_default();
            total.calls += tally.calls;
            total.errors += tally.errors;
            total.late_allows += tally.late_allows;
            total.worst = total.worst.max(tally.worst);
        }
        let revoked = self.revoked.lock().unwrap().len();
        for (name, tally) in [('A', totals[&'A']), ('B', totals[&'B'])] {
            println!(
                "{scenario}: replica {name}: {revoked} keys revoked during a {:.1} s fault, \
                 {} Verify calls ({} errors), {} allows after the {:?} bound, \
                 worst lateness of an allow {:.1} ms",
                fault_took.as_secs_f64(),
                tally.calls,
                tally.errors,
                tally.late_allows,
                BOUND,
                tally.worst.as_secs_f64() * 1e3,
            );
        }
        assert!(revoked > 0);
        for (name, tally) in &totals {
            assert_eq!(
                tally.late_allows, 0,
                "{scenario}: replica {name} allowed revoked keys after the bound: {tally:?}"
            );
            assert!(tally.calls > 0, "{scenario}: replica {name} made no calls");
        }
    }
}

/// Verifies every key over and over (bounded by `done`, which `run` sets
/// after a fixed time), timing each allow of a revoked key against its OK.
async fn sweep(
    client: &mut Api,
    keys: &[String],
    revoked: &Mutex<HashMap<usize, Instant>>,
    done: &AtomicBool,
) -> Tally {
    let mut tally = Tally::default();
    while !done.load(Ordering::SeqCst) {
        for (i, key) in keys.iter().enumerate() {
            let started = Instant::now();
            let answer = allowed(client, key).await;
            tally.calls += 1;
            let Ok(true) = answer else {
                tally.errors += u64::from(answer.is_err());
                continue;
            };
            let ok_at = revoked.lock().unwrap().get(&i).copied();
            if let Some(ok_at) = ok_at
                && started > ok_at
            {
                let late = started - ok_at;
                tally.worst = tally.worst.max(late);
                if late > BOUND {
                    tally.late_allows += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tally
}

async fn allowed(client: &mut Api, key: &str) -> Result<bool, tonic::Status> {
    let request = pb::VerifyRequest {
        key: key.into(),
        required_scopes: vec!["orders:read".into()],
        client_ip: String::new(),
    };
    client.try_verify(request).await.map(|r| r.allowed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stalls_while_revoking() {
    let _serial = SERIAL.lock().await;
    let Some(rig) = Rig::start(false, Duration::from_secs(5)).await else {
        return;
    };
    rig.run("8 stalls of 0.3 s (DEBUG SLEEP)", async |rig| {
        for round in 0..8 {
            let redis = rig.redis.lock().await;
            let stall = redis.stall(0.3);
            let revokes = async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                rig.revoke(2 * round, false).await;
                rig.revoke(2 * round + 1, true).await;
            };
            tokio::join!(stall, revokes);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_for_five_seconds() {
    let _serial = SERIAL.lock().await;
    let Some(rig) = Rig::start(false, Duration::from_secs(5)).await else {
        return;
    };
    rig.run("Redis frozen 5 s (SIGSTOP)", async |rig| {
        let redis = rig.redis.lock().await;
        redis.signal("-STOP");
        let frozen = Instant::now();
        for i in 0..16 {
            rig.revoke(i, i % 2 == 1).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tokio::time::sleep(Duration::from_secs(5).saturating_sub(frozen.elapsed())).await;
        redis.signal("-CONT");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_from_its_aof() {
    let _serial = SERIAL.lock().await;
    // A TTL longer than the outage, so the entries the AOF brings back
    // would still be fresh by their own stamp.
    let Some(rig) = Rig::start(true, Duration::from_secs(10)).await else {
        return;
    };
    rig.run(
        "Redis down 6 s, restarted from its AOF (appendfsync always)",
        async |rig| {
            let mut redis = rig.redis.lock().await;
            redis.kill();
            let down = Instant::now();
            for i in 0..16 {
                rig.revoke(i, i % 2 == 1).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            tokio::time::sleep(Duration::from_secs(6).saturating_sub(down.elapsed())).await;
            redis.restart().await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_partitioned_from_redis_and_the_bus() {
    let _serial = SERIAL.lock().await;
    let Some(rig) = Rig::start(false, Duration::from_secs(5)).await else {
        return;
    };
    rig.run(
        "B cut off from Redis and the bus for 4 s (proxy cut), revokes on both",
        async |rig| {
            rig.proxy_b.cut();
            let cut = Instant::now();
            for i in 0..16 {
                // Odd keys on B: its tombstones and bus messages are lost;
                // even ones on A: B never hears them.
                rig.revoke(i, i % 2 == 1).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            tokio::time::sleep(Duration::from_secs(4).saturating_sub(cut.elapsed())).await;
            rig.proxy_b.restore();
            let _ = &rig.proxy_a;
        },
    )
    .await;
}
