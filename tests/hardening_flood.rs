//! What a client without a key can make the server hold: the real binary
//! (its own process, so its RSS is its own) against floods of streams, idle
//! connections and connections, bounded in count and time.

mod common;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::{
    TestDb,
    client::Api,
    process::{ServerProcess, bootstrap},
};
use keyward::proto::v1 as pb;
use tokio::{io::AsyncReadExt, net::TcpStream, sync::mpsc};

const MIB: u64 = 1024 * 1024;

/// Issues a key over a connection of its own, closed again on return.
async fn issue(server: &ServerProcess, admin: &str) -> String {
    let mut api = server.api(admin).await;
    api.issue_key("acme", "flood", &["orders:read"]).await.0
}

async fn verify(api: &mut Api, key: &str) -> bool {
    let request = pb::VerifyRequest {
        key: key.into(),
        required_scopes: vec!["orders:read".into()],
        client_ip: String::new(),
    };
    match api.try_verify(request).await {
        Ok(response) => response.allowed,
        Err(status) => panic!("a legitimate Verify failed during the flood: {status}"),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

/// A gRPC request's headers for Verify, with `pad` bytes of extra header.
fn grpc_headers(pad: usize) -> http::Request<()> {
    http::Request::post("http://keyward/keyward.v1.KeyService/Verify")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-pad", "p".repeat(pad))
        .body(())
        .unwrap()
}

/// What one flooding connection saw.
struct Flood {
    opened: usize,
    /// When each stream ended, and whether by REFUSED_STREAM.
    ended: Vec<(Instant, bool)>,
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS as the client applied it.
    advertised: usize,
}

/// One raw HTTP/2 connection opening up to `streams` streams for `budget`:
/// every other one sends headers and the first 32 KiB of a message that
/// claims 60,000 bytes and never ends; the rest send headers only. A
/// `greedy` one sends them all before the server's SETTINGS can arrive, as
/// an attacker ignoring the stream limit would; otherwise it keeps to the
/// limit and opens a stream whenever a slot frees.
async fn flood(addr: SocketAddr, streams: usize, budget: Duration, greedy: bool) -> Flood {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut builder = h2::client::Builder::new();
    if greedy {
        builder.initial_max_send_streams(streams);
    }
    let (client, connection) = builder.handshake::<_, Bytes>(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    if !greedy {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let deadline = tokio::time::Instant::now() + budget;
    let mut message = vec![0u8; 5 + 32 * 1024];
    message[1..5].copy_from_slice(&60_000u32.to_be_bytes());
    let message = Bytes::from(message);
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel();
    let settings = client.clone();
    let mut client = client;
    let mut held = Vec::new();
    for i in 0..streams {
        let ready = tokio::time::timeout_at(deadline, client.ready()).await;
        client = match ready {
            Ok(Ok(client)) => client,
            _ => break,
        };
        let Ok((response, mut body)) = client.send_request(grpc_headers(4096), false) else {
            break;
        };
        if i.is_multiple_of(2) {
            let _ = body.send_data(message.clone(), false);
        }
        let ended = ended_tx.clone();
        tokio::spawn(async move {
            let refused = matches!(
                response.await,
                Err(e) if e.reason() == Some(h2::Reason::REFUSED_STREAM)
            );
            let _ = ended.send((Instant::now(), refused));
        });
        // The body handle stays alive so the stream stays unfinished.
        held.push(body);
    }
    tokio::time::sleep_until(deadline).await;
    let opened = held.len();
    drop(held);
    let mut ended = Vec::new();
    while let Ok(end) = ended_rx.try_recv() {
        ended.push(end);
    }
    Flood {
        opened,
        ended,
        advertised: settings.current_max_send_streams(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_flood_on_one_connection_is_bounded_and_others_keep_answering() {
    let db = TestDb::sqlite();
    // The default limits: the test is about what ships.
    let server = ServerProcess::start(&db, &[]);
    let admin = bootstrap(&db);
    let key = issue(&server, &admin).await;
    let mut legit = server.api(&admin).await;
    for _ in 0..50 {
        assert!(verify(&mut legit, &key).await);
    }
    let idle = server.rss_bytes();

    let request_timeout = Duration::from_secs(10);
    let budget = request_timeout + Duration::from_secs(4);
    let started = Instant::now();
    let greedy = tokio::spawn(flood(server.addr, 3000, budget, true));
    let polite = tokio::spawn(flood(server.addr, 3000, budget, false));

    let mut latencies = Vec::new();
    let mut peak = idle;
    let mut calls = 0u32;
    while started.elapsed() < budget && calls < 20_000 {
        let t = Instant::now();
        assert!(verify(&mut legit, &key).await, "the key stays valid");
        latencies.push(t.elapsed());
        calls += 1;
        if calls.is_multiple_of(20) {
            peak = peak.max(server.rss_bytes());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let greedy = greedy.await.unwrap();
    let polite = polite.await.unwrap();
    peak = peak.max(server.rss_bytes());

    latencies.sort();
    let p99 = percentile(&latencies, 0.99);
    let refused = greedy.ended.iter().filter(|(_, refused)| *refused).count();
    let greedy_done = greedy
        .ended
        .iter()
        .map(|(at, _)| at.duration_since(started))
        .max()
        .unwrap_or_default();
    // The streams that held the polite connection's slots from the start
    // end at about the request timeout, unanswered by any handler.
    let timed_out = polite
        .ended
        .iter()
        .filter(|(at, refused)| {
            !refused && at.duration_since(started) >= request_timeout - Duration::from_secs(1)
        })
        .count();
    eprintln!(
        "flood: greedy connection opened {} streams, {refused} refused, {} ended (the last after {greedy_done:?}); \
         polite connection opened {}, {timed_out} dropped by the request timeout; \
         server advertised {} streams; RSS idle {:.1} MiB, peak {:.1} MiB; \
         legit Verify on another connection: {} calls, p50 {:?}, p99 {:?}, max {:?}",
        greedy.opened,
        greedy.ended.len(),
        polite.opened,
        polite.advertised,
        idle as f64 / MIB as f64,
        peak as f64 / MIB as f64,
        latencies.len(),
        percentile(&latencies, 0.5),
        p99,
        latencies.last().unwrap(),
    );

    assert!(
        polite.advertised <= 100,
        "the server must cap concurrent streams per connection (advertised {})",
        polite.advertised
    );
    // The greedy connection's burst races the server's SETTINGS: what got
    // out before them is refused (REFUSED_STREAM) or, past h2's reset
    // budget, the connection is closed (GOAWAY); the rest the client queues
    // itself. Either way its accepted streams end by the request timeout.
    assert!(
        greedy.ended.len() >= 90,
        "{} of the greedy connection's streams ended",
        greedy.ended.len()
    );
    assert!(
        timed_out >= 90,
        "only {timed_out} unfinished streams were dropped after the request timeout"
    );
    assert!(
        peak.saturating_sub(idle) <= 64 * MIB,
        "RSS grew from {idle} to {peak} bytes under the flood"
    );
    assert!(
        p99 < Duration::from_secs(1),
        "legitimate Verify p99 {p99:?} during the flood"
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_within_the_idle_timeout() {
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&db, &["--idle-timeout", "1s"]);
    let started = Instant::now();

    // Sends nothing at all, not even the HTTP/2 preface.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // A complete HTTP/2 handshake, then no stream.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (_client, connection) = h2::client::handshake(tcp).await.unwrap();

    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut buf))
        .await
        .expect("a connection that sends nothing is closed")
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), connection)
        .await
        .expect("a connection with no stream is closed");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?} with a 1s idle timeout"
    );
}

#[tokio::test]
async fn connections_past_the_limit_are_refused_while_a_client_keeps_working() {
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&db, &["--max-connections", "8"]);
    let admin = bootstrap(&db);
    let key = issue(&server, &admin).await;
    // The issuing client has gone; this one holds one of the eight.
    let mut legit = server.api(&admin).await;
    assert!(verify(&mut legit, &key).await);
    // Give the server a moment to see the issuing connection close.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut flood = Vec::new();
    for _ in 0..50 {
        flood.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let mut closed = 0;
    for tcp in &mut flood {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    assert!(
        (40..=43).contains(&closed),
        "{closed} of 50 connections beyond 1 open and a limit of 8 were closed"
    );
    for _ in 0..20 {
        assert!(verify(&mut legit, &key).await);
    }
    drop(flood);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fresh = server.api(&admin).await;
    assert!(verify(&mut fresh, &key).await, "the limit frees up again");
}

/// Handlers still see the client's address through the new transport:
/// the audit trail records where an admin call came from.
#[tokio::test]
async fn handlers_see_the_clients_address() {
    let db = TestDb::sqlite();
    let server = ServerProcess::start(&db, &[]);
    let admin = bootstrap(&db);
    issue(&server, &admin).await;
    let events = server
        .api(&admin)
        .await
        .audit(pb::ListAuditEventsRequest {
            action: "issue".into(),
            ..Default::default()
        })
        .await
        .events;
    assert!(!events.is_empty(), "the Issue was audited");
    for event in events {
        assert!(
            event.source.starts_with("127.0.0.1:"),
            "audited source {:?}",
            event.source
        );
    }
}
