//! `revoke-lag`: how long replica B still allows a key after replica A's
//! Revoke returned, first with both replicas idle, then with both serving
//! Verify (L1 hits) at a fraction of their capacity.
//!
//! The method is the tests' (tests/common/revocation.rs): keys issued on A,
//! verified into B's L1 twice 200 ms apart (a Verify that overlaps the key's
//! own "created" invalidation is not cached), then one at a time: Revoke on
//! A, poll Verify on B until it denies, check that A denies. The clock starts
//! when Revoke returns.
//!
//! Capacity is measured with both replicas loaded at once: the harness runs
//! them on one core, so each one's capacity alone would add up to twice
//! what the pair can serve.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use keyward::proto::v1::{self as pb, key_service_client::KeyServiceClient};
use tonic::transport::Channel;

use crate::{
    call::{Caller, Expect, KeySet, Keys, Rpc},
    load::{Tally, Target, connect, cpu_ticks, next},
};

#[derive(clap::Args)]
pub struct RevokeLagArgs {
    /// Replica A: where keys are issued and revoked.
    #[arg(long)]
    a: String,
    /// Replica B: polled with Verify until it denies a revoked key.
    #[arg(long)]
    b: String,
    /// A's pid: its CPU time over each phase is reported.
    #[arg(long)]
    a_pid: Option<u32>,
    /// B's pid, likewise.
    #[arg(long)]
    b_pid: Option<u32>,
    /// An admin key for Issue and Revoke on A. From the environment only,
    /// so that it is on no command line.
    #[arg(long, env = "KEYWARD_ADMIN_KEY", hide_env_values = true)]
    admin_key: String,
    /// Project of the revoked keys.
    #[arg(long, default_value = "bench")]
    project: String,
    /// Keys revoked in each phase (idle, then under load).
    #[arg(long, default_value_t = 200)]
    revocations: usize,
    /// The load's keys: keys both replicas already hold in L1.
    #[command(flatten)]
    keys: KeySet,
    /// Each replica's load, as a fraction of its capacity.
    #[arg(long, default_value_t = 0.8)]
    load_fraction: f64,
    /// Seconds of the closed-loop capacity measurement (after 0.5 s of
    /// warm-up).
    #[arg(long, default_value_t = 2.0)]
    capacity_seconds: f64,
    /// HTTP/2 connections per replica, for the capacity measurement and the
    /// load.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Concurrent streams per connection of the capacity measurement; the
    /// open-loop load allows as many calls in flight per replica before it
    /// sheds (counts a call as not sent).
    #[arg(long, default_value_t = 32)]
    streams: usize,
    /// Bound of the loaded phase: the load stops after this long whatever
    /// the revocations do, so it sends at most rate × this many calls.
    #[arg(long, default_value_t = 60.0)]
    max_load_seconds: f64,
    /// Seconds of load before the first revocation under load.
    #[arg(long, default_value_t = 1.0)]
    ramp_seconds: f64,
    /// A revoked key B still allows after this long is counted as over the
    /// limit, and its polling stops.
    #[arg(long, default_value_t = 2.0)]
    lag_limit: f64,
}

fn with_admin<T>(message: T, admin: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {admin}").parse()?);
    Ok(request)
}

fn verify_request(key: &str) -> pb::VerifyRequest {
    pb::VerifyRequest {
        key: key.to_owned(),
        required_scopes: vec!["orders:read".to_owned()],
        client_ip: String::new(),
    }
}

async fn allowed(client: &mut KeyServiceClient<Channel>, key: &str) -> anyhow::Result<bool> {
    Ok(client
        .verify(verify_request(key))
        .await
        .context("Verify failed")?
        .into_inner()
        .allowed)
}

/// A key issued for the measurement: (secret, id).
struct Issued(String, String);

async fn issue(
    a: &mut KeyServiceClient<Channel>,
    args: &RevokeLagArgs,
    phase: &str,
) -> anyhow::Result<Vec<Issued>> {
    let run = std::process::id();
    let mut keys = Vec::with_capacity(args.revocations);
    for i in 0..args.revocations {
        let request = pb::IssueRequest {
            project: args.project.clone(),
            label: format!("revoke-lag-{run}-{phase}-{i}"),
            scopes: vec!["orders:read".to_owned()],
            ..Default::default()
        };
        let issued = a
            .issue(with_admin(request, &args.admin_key)?)
            .await
            .context("Issue on A failed")?
            .into_inner();
        let id = issued.info.context("Issue returned no key info")?.id;
        keys.push(Issued(issued.key, id));
    }
    Ok(keys)
}

/// Verifies each key on B twice, 200 ms apart, so that it sits in B's L1.
async fn warm(b: &mut KeyServiceClient<Channel>, keys: &[Issued]) -> anyhow::Result<()> {
    for _ in 0..2 {
        for Issued(key, _) in keys {
            anyhow::ensure!(allowed(b, key).await?, "a fresh key is denied on B");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

struct Lags {
    samples: Vec<Duration>,
    over_limit: usize,
}

impl Lags {
    fn json(mut self) -> serde_json::Value {
        self.samples.sort();
        let n = self.samples.len();
        // The tests' percentile: the sample at round((n - 1) × q).
        let at = |q: f64| self.samples[((n as f64 - 1.0) * q).round() as usize];
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        serde_json::json!({
            "count": n,
            "p50_ms": ms(at(0.5)),
            "p99_ms": ms(at(0.99)),
            "max_ms": ms(self.samples[n - 1]),
            "mean_ms": self.samples.iter().map(|d| ms(*d)).sum::<f64>() / n as f64,
            "over_limit": self.over_limit,
        })
    }
}

/// Revokes each key on A, then times how long B still allows it.
async fn revoke_each(
    a: &mut KeyServiceClient<Channel>,
    b: &mut KeyServiceClient<Channel>,
    keys: &[Issued],
    args: &RevokeLagArgs,
) -> anyhow::Result<Lags> {
    let limit = Duration::from_secs_f64(args.lag_limit);
    let mut lags = Lags {
        samples: Vec::with_capacity(keys.len()),
        over_limit: 0,
    };
    for Issued(key, id) in keys {
        let request = pb::RevokeRequest {
            key_id: id.clone(),
            reason: "bench revoke-lag".to_owned(),
        };
        a.revoke(with_admin(request, &args.admin_key)?)
            .await
            .context("Revoke on A failed")?;
        let revoked = Instant::now();
        let lag = loop {
            if !allowed(b, key).await? {
                break revoked.elapsed();
            }
            if revoked.elapsed() >= limit {
                lags.over_limit += 1;
                break revoked.elapsed();
            }
            // What the tests wait between polls (tokio's timer makes it
            // about a millisecond).
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        anyhow::ensure!(!allowed(a, key).await?, "A allows a key it revoked");
        lags.samples.push(lag);
    }
    Ok(lags)
}

/// `connections` HTTP/2 connections to each replica.
async fn channels(args: &RevokeLagArgs) -> anyhow::Result<[Vec<Channel>; 2]> {
    let target = |addr: &str| Target {
        target: addr.to_owned(),
        connections: args.connections,
        streams: args.streams,
    };
    Ok([
        connect(&target(&args.a)).await?,
        connect(&target(&args.b)).await?,
    ])
}

/// Closed-loop Verify on both replicas at once, `streams` loops per
/// connection: each replica's completed calls per second in the window.
async fn capacity(
    load: &[Vec<Channel>; 2],
    keys: &Arc<Keys>,
    args: &RevokeLagArgs,
) -> anyhow::Result<[f64; 2]> {
    const WARMUP: u8 = 0;
    const MEASURE: u8 = 1;
    const STOP: u8 = 2;
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let mut handles: [Vec<_>; 2] = [Vec::new(), Vec::new()];
    for (replica, chans) in load.iter().enumerate() {
        for (c, channel) in chans.iter().enumerate() {
            for s in 0..args.streams {
                let mut caller = Caller::new(Rpc::Verify, channel.clone(), Expect::Allowed);
                let (keys, phase) = (keys.clone(), phase.clone());
                let mut state =
                    (0x9E37_79B9_7F4A_7C15u64 ^ ((replica << 40 | c << 20 | s) as u64)) | 1;
                handles[replica].push(tokio::spawn(async move {
                    let mut tally = Tally::new();
                    while phase.load(Ordering::Relaxed) != STOP {
                        let answer = caller.call(&keys, next(&mut state)).await;
                        if phase.load(Ordering::Relaxed) == MEASURE {
                            tally.count(answer, 1);
                        }
                    }
                    tally
                }));
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    phase.store(MEASURE, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.capacity_seconds)).await;
    phase.store(STOP, Ordering::Relaxed);
    let window = started.elapsed().as_secs_f64();
    let mut rps = [0.0; 2];
    for (replica, list) in handles.into_iter().enumerate() {
        let mut total = Tally::new();
        for handle in list {
            total.merge(handle.await?);
        }
        anyhow::ensure!(
            total.wrong + total.errors == 0,
            "capacity: {} wrong answers and {} errors from a replica",
            total.wrong,
            total.errors
        );
        rps[replica] = total.expected as f64 / window;
    }
    Ok(rps)
}

/// What an open-loop load on one replica came to.
struct OpenLoop {
    rate: f64,
    seconds: f64,
    scheduled: u64,
    shed: u64,
    timed_out: bool,
    tally: Tally,
}

impl OpenLoop {
    fn json(&self) -> serde_json::Value {
        let h = &self.tally.histogram;
        serde_json::json!({
            "target_rps": self.rate,
            "seconds": self.seconds,
            "scheduled": self.scheduled,
            "shed": self.shed,
            "ok": self.tally.expected,
            "wrong": self.tally.wrong,
            "errors": self.tally.errors,
            "achieved_rps": self.tally.expected as f64 / self.seconds,
            // From each call's scheduled time, so a server that falls
            // behind shows in the latency, not only in the rate.
            "latency_us": {
                "p50": h.value_at_quantile(0.50),
                "p99": h.value_at_quantile(0.99),
                "max": h.max(),
            },
        })
    }
}

/// Verify at `rate` calls per second over `channels`, each call scheduled
/// at its own instant (1 ms ticks) whether or not earlier ones answered,
/// until `stop` or `max`; at most `in_flight` calls outstanding, the rest
/// shed.
async fn open_loop(
    channels: Vec<Channel>,
    keys: Arc<Keys>,
    rate: f64,
    in_flight: usize,
    stop: Arc<AtomicBool>,
    max: Duration,
) -> OpenLoop {
    let tally = Arc::new(Mutex::new(Tally::new()));
    let outstanding = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let (mut scheduled, mut shed, mut state) = (0u64, 0u64, 0x2545_F491_4F6C_DD1Du64);
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let timed_out = loop {
        ticker.tick().await;
        let elapsed = started.elapsed();
        if stop.load(Ordering::Relaxed) {
            break false;
        }
        if elapsed >= max {
            break true;
        }
        let due = (rate * elapsed.as_secs_f64()) as u64;
        while scheduled < due {
            let at = started + Duration::from_secs_f64(scheduled as f64 / rate);
            scheduled += 1;
            if outstanding.load(Ordering::Relaxed) >= in_flight {
                shed += 1;
                continue;
            }
            outstanding.fetch_add(1, Ordering::Relaxed);
            let channel = channels[scheduled as usize % channels.len()].clone();
            let mut caller = Caller::new(Rpc::Verify, channel, Expect::Allowed);
            let (keys, tally, outstanding) = (keys.clone(), tally.clone(), outstanding.clone());
            let index = next(&mut state);
            tokio::spawn(async move {
                let answer = caller.call(&keys, index).await;
                let micros = at.elapsed().as_micros() as u64;
                tally.lock().expect("not poisoned").count(answer, micros);
                outstanding.fetch_sub(1, Ordering::Relaxed);
            });
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let drain = Instant::now() + Duration::from_secs(5);
    while outstanding.load(Ordering::Relaxed) > 0 && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let tally = std::mem::replace(&mut *tally.lock().expect("not poisoned"), Tally::new());
    OpenLoop {
        rate,
        seconds,
        scheduled,
        shed,
        timed_out,
        tally,
    }
}

/// CPU ticks of the replicas (utime + stime), where their pids are known.
fn replica_ticks(args: &RevokeLagArgs) -> [Option<u64>; 2] {
    [args.a_pid, args.b_pid].map(|pid| pid.and_then(|p| cpu_ticks(&p.to_string())))
}

fn ticks_between(before: [Option<u64>; 2], after: [Option<u64>; 2]) -> [Option<u64>; 2] {
    [0, 1].map(|i| before[i].zip(after[i]).map(|(b, a)| a - b))
}

pub async fn run(args: RevokeLagArgs) -> anyhow::Result<()> {
    let keys = Arc::new(Keys::load(&args.keys, Rpc::Verify)?);
    anyhow::ensure!(!keys.unknown, "the load takes keys from a file");
    // Admin calls and polling each on a connection of their own, apart from
    // the load's.
    let mut a = KeyServiceClient::connect(format!("http://{}", args.a)).await?;
    let mut b = KeyServiceClient::connect(format!("http://{}", args.b)).await?;
    let idle_keys = issue(&mut a, &args, "idle").await?;
    let loaded_keys = issue(&mut a, &args, "load").await?;
    warm(&mut b, &idle_keys).await?;
    warm(&mut b, &loaded_keys).await?;

    let started = Instant::now();
    let before = replica_ticks(&args);
    let idle = revoke_each(&mut a, &mut b, &idle_keys, &args).await?;
    let idle_seconds = started.elapsed().as_secs_f64();
    let idle_ticks = ticks_between(before, replica_ticks(&args));

    let load = channels(&args).await?;
    let capacity = capacity(&load, &keys, &args).await?;
    let rates = capacity.map(|c| c * args.load_fraction);

    // The load on a thread and runtime of its own, so that the revocations'
    // calls do not queue behind its tasks.
    let stop = Arc::new(AtomicBool::new(false));
    let max = Duration::from_secs_f64(args.max_load_seconds);
    let in_flight = args.connections * args.streams;
    let [load_a, load_b] = load;
    let (stop_load, load_keys) = (stop.clone(), keys.clone());
    let loader = std::thread::spawn(move || -> anyhow::Result<[OpenLoop; 2]> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let on_a = tokio::spawn(open_loop(
                load_a,
                load_keys.clone(),
                rates[0],
                in_flight,
                stop_load.clone(),
                max,
            ));
            let on_b = tokio::spawn(open_loop(
                load_b, load_keys, rates[1], in_flight, stop_load, max,
            ));
            Ok([on_a.await?, on_b.await?])
        })
    });
    tokio::time::sleep(Duration::from_secs_f64(args.ramp_seconds)).await;
    let started = Instant::now();
    let before = replica_ticks(&args);
    let loaded = revoke_each(&mut a, &mut b, &loaded_keys, &args).await;
    let loaded_seconds = started.elapsed().as_secs_f64();
    let loaded_ticks = ticks_between(before, replica_ticks(&args));
    stop.store(true, Ordering::Relaxed);
    let load = loader
        .join()
        .map_err(|_| anyhow::anyhow!("the load thread panicked"))??;
    let loaded = loaded?;
    anyhow::ensure!(
        load.iter().all(|l| l.scheduled > 0),
        "the load sent nothing"
    );

    println!(
        "{}",
        serde_json::json!({
            "revocations": args.revocations,
            "load_fraction": args.load_fraction,
            "idle": idle.json(),
            "idle_seconds": idle_seconds,
            "idle_cpu_ticks": idle_ticks,
            "capacity_rps": capacity,
            "capacity_seconds": args.capacity_seconds,
            "connections": args.connections,
            "streams": args.streams,
            "loaded": loaded.json(),
            "loaded_seconds": loaded_seconds,
            "loaded_cpu_ticks": loaded_ticks,
            "load": [load[0].json(), load[1].json()],
            // False when the load stopped at --max-load-seconds before the
            // last revocation.
            "load_covered_revocations": load.iter().all(|l| !l.timed_out),
        })
    );
    Ok(())
}
