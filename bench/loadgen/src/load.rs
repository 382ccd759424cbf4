//! Closed-loop gRPC load: `connections` HTTP/2 connections, each carrying
//! `streams` concurrent request loops. Only requests that complete inside
//! the measured window count, for throughput and for the histogram.

use std::{
    collections::HashMap,
    io::BufRead,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use envoy_types::{
    ext_authz::v3::pb::{CheckRequest, HttpResponse},
    pb::{
        envoy::{
            config::core::v3::{Address, SocketAddress, address, socket_address},
            service::auth::v3::{
                AttributeContext, attribute_context, authorization_client::AuthorizationClient,
            },
        },
        google::protobuf::value::Kind,
    },
};
use hdrhistogram::Histogram;
use keyward::{
    key::format,
    proto::v1::{Reason, VerifyRequest, key_service_client::KeyServiceClient},
};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Rpc {
    /// `keyward.v1.KeyService/Verify`.
    Verify,
    /// `grpc.health.v1.Health/Check` (the baseline: what tonic itself costs).
    Health,
    /// `envoy.service.auth.v3.Authorization/Check`, as Envoy's ext_authz
    /// filter calls it: the key in an `x-api-key` header, the required
    /// scopes in the route's `keyward_scopes` context extension.
    Check,
}

/// What a correct Verify or Check answer is; anything else counts as
/// `wrong`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Expect {
    Allowed,
    Unknown,
}

#[derive(clap::Args)]
pub struct Target {
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    target: String,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Concurrent requests (streams) per connection.
    #[arg(long, default_value_t = 32)]
    streams: usize,
}

#[derive(clap::Args)]
pub struct KeySet {
    /// Plaintext keys, one a line (from `seed`).
    #[arg(long)]
    keys_file: Option<PathBuf>,
    /// First line of the file to use.
    #[arg(long, default_value_t = 0)]
    key_offset: usize,
    /// How many lines from there (default: all).
    #[arg(long)]
    key_count: Option<usize>,
    /// Send a fresh, well-formed key that no one issued with every request
    /// (a flood of unknown keys) instead of keys from the file.
    #[arg(long)]
    unknown: bool,
    /// Required scopes of every Verify or Check request.
    #[arg(long = "scope", default_value = "orders:read")]
    scopes: Vec<String>,
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
}

#[derive(clap::Args)]
pub struct PrimeArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    keys: KeySet,
}

/// Reads `count` keys (all when `None`) from line `offset` on.
pub fn read_keys(path: &Path, offset: usize, count: usize) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read keys from {}", path.display()))?;
    let keys = std::io::BufReader::new(file)
        .lines()
        .skip(offset)
        .take(count)
        .collect::<Result<Vec<_>, _>>()?;
    anyhow::ensure!(!keys.is_empty(), "no keys in {}", path.display());
    Ok(keys)
}

struct Keys {
    list: Vec<String>,
    unknown: bool,
    scopes: Vec<String>,
}

impl Keys {
    fn load(set: &KeySet, rpc: Rpc) -> anyhow::Result<Self> {
        let list = match (&set.keys_file, rpc, set.unknown) {
            (Some(file), Rpc::Verify | Rpc::Check, false) => {
                read_keys(file, set.key_offset, set.key_count.unwrap_or(usize::MAX))?
            }
            (None, Rpc::Verify | Rpc::Check, false) => {
                anyhow::bail!("Verify and Check need --keys-file or --unknown")
            }
            _ => Vec::new(),
        };
        Ok(Self {
            list,
            unknown: set.unknown,
            scopes: set.scopes.clone(),
        })
    }

    fn key(&self, index: usize) -> String {
        if self.unknown {
            format::generate("bench").into_exposed()
        } else {
            self.list[index % self.list.len()].clone()
        }
    }

    fn request(&self, index: usize) -> VerifyRequest {
        VerifyRequest {
            key: self.key(index),
            required_scopes: self.scopes.clone(),
            client_ip: String::new(),
        }
    }
}

/// A Check request shaped as Envoy's ext_authz filter sends it for
/// `GET /orders/1` with `allowed_headers` x-api-key and authorization (see
/// bench/ext_authz/run): the downstream peer, the request's pseudo-headers
/// and the key header, and the route's required scopes as the
/// `keyward_scopes` context extension.
pub fn check_request(key: String, scopes: &[String]) -> CheckRequest {
    let headers = HashMap::from([
        (":authority".to_owned(), "api.example".to_owned()),
        (":method".to_owned(), "GET".to_owned()),
        (":path".to_owned(), "/orders/1".to_owned()),
        (":scheme".to_owned(), "http".to_owned()),
        ("x-api-key".to_owned(), key),
    ]);
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "127.0.0.1".to_owned(),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(40_000)),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    method: "GET".to_owned(),
                    path: "/orders/1".to_owned(),
                    host: "api.example".to_owned(),
                    scheme: "http".to_owned(),
                    protocol: "HTTP/1.1".to_owned(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            context_extensions: HashMap::from([("keyward_scopes".to_owned(), scopes.join(","))]),
            ..Default::default()
        }),
    }
}

enum Caller {
    Verify(KeyServiceClient<Channel>, Expect),
    Health(HealthClient<Channel>),
    Check(AuthorizationClient<Channel>, Expect),
}

/// What one call came to.
enum Answer {
    Expected,
    Wrong,
    Error,
}

impl Caller {
    fn new(rpc: Rpc, channel: Channel, expect: Expect) -> Self {
        match rpc {
            Rpc::Verify => Caller::Verify(KeyServiceClient::new(channel), expect),
            Rpc::Health => Caller::Health(HealthClient::new(channel)),
            Rpc::Check => Caller::Check(AuthorizationClient::new(channel), expect),
        }
    }

    async fn call(&mut self, keys: &Keys, index: usize) -> Answer {
        match self {
            Caller::Verify(client, expect) => match client.verify(keys.request(index)).await {
                Ok(response) => {
                    let r = response.into_inner();
                    let expected = match expect {
                        Expect::Allowed => r.allowed && r.reason == Reason::Ok as i32,
                        Expect::Unknown => !r.allowed && r.reason == Reason::Unknown as i32,
                    };
                    if expected {
                        Answer::Expected
                    } else {
                        Answer::Wrong
                    }
                }
                Err(_) => Answer::Error,
            },
            Caller::Health(client) => match client.check(HealthCheckRequest::default()).await {
                Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => Answer::Expected,
                Ok(_) => Answer::Wrong,
                Err(_) => Answer::Error,
            },
            Caller::Check(client, expect) => {
                let request = check_request(keys.key(index), &keys.scopes);
                match client.check(request).await {
                    Ok(response) => {
                        if check_answer_is(&response.into_inner(), *expect) {
                            Answer::Expected
                        } else {
                            Answer::Wrong
                        }
                    }
                    Err(_) => Answer::Error,
                }
            }
        }
    }
}

/// Whether a Check answer is the expected one: allowed is status OK with an
/// OK response; unknown is PERMISSION_DENIED with a denied response and
/// `reason: unknown` in the dynamic metadata.
fn check_answer_is(
    response: &envoy_types::ext_authz::v3::pb::CheckResponse,
    expect: Expect,
) -> bool {
    let code = response.status.as_ref().map_or(-1, |s| s.code);
    let reason = response
        .dynamic_metadata
        .as_ref()
        .and_then(|m| m.fields.get("reason"))
        .and_then(|v| match &v.kind {
            Some(Kind::StringValue(s)) => Some(s.as_str()),
            _ => None,
        });
    match expect {
        Expect::Allowed => {
            code == tonic::Code::Ok as i32
                && matches!(response.http_response, Some(HttpResponse::OkResponse(_)))
        }
        Expect::Unknown => {
            code == tonic::Code::PermissionDenied as i32
                && matches!(
                    response.http_response,
                    Some(HttpResponse::DeniedResponse(_))
                )
                && reason == Some("unknown")
        }
    }
}

async fn connect(target: &Target) -> anyhow::Result<Vec<Channel>> {
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
fn cpu_ticks(pid: &str) -> Option<u64> {
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

struct Tally {
    histogram: Histogram<u64>,
    expected: u64,
    wrong: u64,
    errors: u64,
    /// Every call made, warm-up included.
    sent: u64,
}

impl Tally {
    fn new() -> Self {
        Self {
            histogram: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            expected: 0,
            wrong: 0,
            errors: 0,
            sent: 0,
        }
    }

    fn count(&mut self, answer: Answer, micros: u64) {
        match answer {
            Answer::Expected => {
                self.expected += 1;
                self.histogram.saturating_record(micros.max(1));
            }
            Answer::Wrong => self.wrong += 1,
            Answer::Error => self.errors += 1,
        }
    }

    fn merge(&mut self, other: Tally) {
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
fn next(state: &mut u64) -> usize {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 1) as usize
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let keys = Arc::new(Keys::load(&args.keys, args.rpc)?);
    let channels = connect(&args.target).await?;
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let handles = spawn_callers(
        &args.target,
        &channels,
        args.rpc,
        args.expect,
        |mut caller, seed| {
            let keys = keys.clone();
            let phase = phase.clone();
            let mut state = seed | 1;
            async move {
                let mut tally = Tally::new();
                loop {
                    if phase.load(Ordering::Relaxed) == STOP {
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

    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let pid = args.server_pid.map(|p| p.to_string());
    let watched_before = watched_ticks(&args.watch_pids, &args.watch_cmdlines);
    let server_before = pid.as_deref().and_then(cpu_ticks);
    let client_before = cpu_ticks("self");
    let started = Instant::now();
    phase.store(MEASURE, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
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
