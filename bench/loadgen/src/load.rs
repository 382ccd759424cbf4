//! Closed-loop gRPC load: `connections` HTTP/2 connections, each carrying
//! `streams` concurrent request loops. Only requests that complete inside
//! the measured window count, for throughput and for the histogram.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use hdrhistogram::Histogram;
use tonic::transport::{Channel, Endpoint};

use crate::call::{Answer, Caller, Expect, KeySet, Keys, Rpc};

#[derive(clap::Args)]
pub struct Target {
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub(crate) target: String,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 4)]
    pub(crate) connections: usize,
    /// Concurrent requests (streams) per connection.
    #[arg(long, default_value_t = 32)]
    pub(crate) streams: usize,
}

#[derive(clap::Args)]
pub struct LoadArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    keys: KeySet,
    #[arg(long, value_enum, default_value = "verify")]
    rpc: Rpc,
    #[arg(long, value_enum, default_value = "allowed")]
    expect: Expect,
    /// Seconds of load before the measured window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds of the measured window.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// The server's pid: its CPU time (/proc/PID/stat utime+stime) is read
    /// at both ends of the measured window.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also sum, over the window, the CPU time of this process (e.g. Redis).
    #[arg(long = "watch-pid")]
    watch_pids: Vec<u32>,
    /// ... and of every process whose command line contains this string
    /// (e.g. the Postgres backends of the benchmark database).
    #[arg(long = "watch-cmdline")]
    watch_cmdlines: Vec<String>,
    /// Name of the scenario, copied into the output.
    #[arg(long, default_value = "")]
    label: String,
    /// Send exactly this many requests, then stop: no warm-up, and the
    /// window is the whole run (what an instruction count under callgrind
    /// is divided by). `--duration` still bounds the run.
    #[arg(long)]
    requests: Option<u64>,
}

#[derive(clap::Args)]
pub struct PrimeArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    keys: KeySet,
}

pub(crate) async fn connect(target: &Target) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(target.connections);
    for _ in 0..target.connections {
        // One Channel from `connect()` is one HTTP/2 connection.
        let channel = Endpoint::from_shared(format!("http://{}", target.target))?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", target.target))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// utime + stime of a process, in clock ticks.
pub(crate) fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses: state is
    // field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU ticks of every watched process now running.
fn watched_ticks(pids: &[u32], cmdlines: &[String]) -> HashMap<u32, u64> {
    let mut ticks = HashMap::new();
    if pids.is_empty() && cmdlines.is_empty() {
        return ticks;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return ticks;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let watched = pids.contains(&pid)
            || (!cmdlines.is_empty()
                && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|raw| {
                    let line = String::from_utf8_lossy(&raw);
                    cmdlines.iter().any(|c| line.contains(c.as_str()))
                }));
        if watched && let Some(t) = cpu_ticks(&pid.to_string()) {
            ticks.insert(pid, t);
        }
    }
    ticks
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

pub(crate) struct Tally {
    pub(crate) histogram: Histogram<u64>,
    pub(crate) expected: u64,
    pub(crate) wrong: u64,
    pub(crate) errors: u64,
    /// Every call made, warm-up included.
    pub(crate) sent: u64,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Self {
            histogram: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            expected: 0,
            wrong: 0,
            errors: 0,
            sent: 0,
        }
    }

    pub(crate) fn count(&mut self, answer: Answer, micros: u64) {
        match answer {
            Answer::Expected => {
                self.expected += 1;
                self.histogram.saturating_record(micros.max(1));
            }
            Answer::Wrong => self.wrong += 1,
            Answer::Error => self.errors += 1,
        }
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        self.histogram.add(&other.histogram).expect("same bounds");
        self.expected += other.expected;
        self.wrong += other.wrong;
        self.errors += other.errors;
        self.sent += other.sent;
    }
}

fn spawn_callers<F, Fut>(
    target: &Target,
    channels: &[Channel],
    rpc: Rpc,
    expect: Expect,
    mut body: F,
) -> Vec<tokio::task::JoinHandle<Tally>>
where
    F: FnMut(Caller, u64) -> Fut,
    Fut: Future<Output = Tally> + Send + 'static,
{
    let mut handles = Vec::new();
    for (c, channel) in channels.iter().enumerate() {
        for s in 0..target.streams {
            let caller = Caller::new(rpc, channel.clone(), expect);
            let seed = 0x9E37_79B9_7F4A_7C15u64 ^ ((c as u64) << 32 | s as u64);
            handles.push(tokio::spawn(body(caller, seed)));
        }
    }
    handles
}

/// xorshift64*: cheap, good enough to spread requests over the keys.
pub(crate) fn next(state: &mut u64) -> usize {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 1) as usize
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let keys = Arc::new(Keys::load(&args.keys, args.rpc)?);
    let channels = connect(&args.target).await?;
    // With a request count, every call is measured and each caller takes a
    // ticket first, so exactly that many are sent.
    let tickets = Arc::new(AtomicU64::new(0));
    let limit = args.requests;
    let phase = Arc::new(AtomicU8::new(if limit.is_some() {
        MEASURE
    } else {
        WARMUP
    }));
    let handles = spawn_callers(
        &args.target,
        &channels,
        args.rpc,
        args.expect,
        |mut caller, seed| {
            let keys = keys.clone();
            let phase = phase.clone();
            let tickets = tickets.clone();
            let mut state = seed | 1;
            async move {
                let mut tally = Tally::new();
                loop {
                    if phase.load(Ordering::Relaxed) == STOP {
                        break;
                    }
                    if limit.is_some_and(|n| tickets.fetch_add(1, Ordering::Relaxed) >= n) {
                        break;
                    }
                    let started = Instant::now();
                    let answer = caller.call(&keys, next(&mut state)).await;
                    let micros = started.elapsed().as_micros() as u64;
                    tally.sent += 1;
                    if phase.load(Ordering::Relaxed) == MEASURE {
                        tally.count(answer, micros);
                    }
                }
                tally
            }
        },
    );

    if limit.is_none() {
        tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    }
    let pid = args.server_pid.map(|p| p.to_string());
    let watched_before = watched_ticks(&args.watch_pids, &args.watch_cmdlines);
    let server_before = pid.as_deref().and_then(cpu_ticks);
    let client_before = cpu_ticks("self");
    let started = Instant::now();
    phase.store(MEASURE, Ordering::Relaxed);
    if limit.is_some() {
        // Done when every caller has run out of tickets, or at `--duration`.
        let deadline = started + Duration::from_secs_f64(args.duration);
        while !handles.iter().all(|h| h.is_finished()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    } else {
        tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    }
    phase.store(STOP, Ordering::Relaxed);
    let window = started.elapsed().as_secs_f64();
    let server_after = pid.as_deref().and_then(cpu_ticks);
    let client_after = cpu_ticks("self");
    let watched_after = watched_ticks(&args.watch_pids, &args.watch_cmdlines);
    // A process that started during the window counts whole.
    let watched: u64 = watched_after
        .iter()
        .map(|(pid, after)| after.saturating_sub(*watched_before.get(pid).unwrap_or(&0)))
        .sum();

    let mut total = Tally::new();
    for handle in handles {
        total.merge(handle.await?);
    }
    let h = &total.histogram;
    let server_ticks = server_before.zip(server_after).map(|(b, a)| a - b);
    let client_ticks = client_before.zip(client_after).map(|(b, a)| a - b);
    println!(
        "{}",
        serde_json::json!({
            "label": args.label,
            "tool": "loadgen",
            "rpc": format!("{:?}", args.rpc).to_lowercase(),
            "connections": args.target.connections,
            "streams": args.target.streams,
            "distinct_keys": if keys.unknown { None } else { Some(keys.list.len()) },
            "warmup_s": args.warmup,
            "duration_s": window,
            "requests": total.expected,
            "requests_with_warmup": total.sent,
            "wrong": total.wrong,
            "errors": total.errors,
            "rps": total.expected as f64 / window,
            "latency_us": {
                "p50": h.value_at_quantile(0.50),
                "p90": h.value_at_quantile(0.90),
                "p99": h.value_at_quantile(0.99),
                "p999": h.value_at_quantile(0.999),
                "max": h.max(),
                "mean": h.mean(),
            },
            "server_cpu_ticks": server_ticks,
            "client_cpu_ticks": client_ticks,
            "watched_cpu_ticks": watched,
            "watched_processes": watched_after.len(),
        })
    );
    Ok(())
}

/// Verifies every key of the set once, as fast as the server allows.
pub async fn prime(args: PrimeArgs) -> anyhow::Result<()> {
    let keys = Arc::new(Keys::load(&args.keys, Rpc::Verify)?);
    anyhow::ensure!(!keys.unknown, "prime takes keys from a file");
    let channels = connect(&args.target).await?;
    let cursor = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let handles = spawn_callers(
        &args.target,
        &channels,
        Rpc::Verify,
        Expect::Allowed,
        |mut caller, _| {
            let keys = keys.clone();
            let cursor = cursor.clone();
            async move {
                let mut tally = Tally::new();
                loop {
                    let index = cursor.fetch_add(1, Ordering::Relaxed);
                    if index >= keys.list.len() {
                        break;
                    }
                    let t = Instant::now();
                    let answer = caller.call(&keys, index).await;
                    tally.count(answer, t.elapsed().as_micros() as u64);
                }
                tally
            }
        },
    );
    let mut total = Tally::new();
    for handle in handles {
        total.merge(handle.await?);
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "primed": total.expected,
            "wrong": total.wrong,
            "errors": total.errors,
            "seconds": seconds,
            "rps": total.expected as f64 / seconds,
            "p99_us": total.histogram.value_at_quantile(0.99),
        })
    );
    Ok(())
}
