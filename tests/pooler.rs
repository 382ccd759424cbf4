//! Behind PgBouncer: in transaction mode (declared) every RPC gives the
//! right answer and a revoke reaches the other replica within the bound; an
//! undeclared transaction pooler, or one left without a bus, is refused at
//! start with an error that names the fix; session mode keeps working.

mod common;

use std::time::{Duration, Instant};

use keyward::{proto::v1 as pb, startup::Application};

use common::{TestApp, TestDb, client::Api, config, pgbouncer::PgBouncer};

/// How soon a change must be seen by the other replica.
const BOUND: Duration = Duration::from_secs(1);

async fn bouncer(db: &TestDb, mode: &str, pool_size: u32) -> Option<PgBouncer> {
    let (base, schema) = db.pg_schema()?;
    PgBouncer::start(base, schema, mode, pool_size).await
}

/// Allowed and denied calls made, to compare with what GetUsage reports.
#[derive(Default)]
struct Made {
    allowed: i64,
    denied: i64,
    /// The longest time the other replica kept allowing a revoked key.
    worst_revoke: Duration,
}

async fn verify(client: &mut Api, key: &str, scope: &str, made: &mut Made) -> pb::Reason {
    let request = pb::VerifyRequest {
        key: key.into(),
        required_scopes: vec![scope.into()],
        client_ip: String::new(),
    };
    let response = client.try_verify(request).await.expect("Verify fails");
    if response.allowed {
        made.allowed += 1;
    } else {
        made.denied += 1;
    }
    response.reason()
}

/// Verifies on `client` until the answer is `want`, for at most the bound.
async fn until(
    client: &mut Api,
    key: &str,
    scope: &str,
    want: pb::Reason,
    made: &mut Made,
) -> Duration {
    let started = Instant::now();
    loop {
        let reason = verify(client, key, scope, made).await;
        if reason == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < BOUND,
            "{want:?} not seen within {BOUND:?}: still {reason:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One key's whole life, written on `a` and read on `b`.
async fn key_life(a: String, b: String, admin: String, n: usize) -> Made {
    let mut made = Made::default();
    let mut a = Api::connect(a, admin.clone()).await;
    let mut b = Api::connect(b, admin).await;
    let label = format!("k{n}");
    let issue = pb::IssueRequest {
        project: "acme".into(),
        label: label.clone(),
        scopes: vec!["orders:read".into()],
        ..Default::default()
    };
    let issued = a.issue(issue).await;
    let id = issued.info.unwrap().id;
    assert_eq!(
        verify(&mut b, &issued.key, "orders:read", &mut made).await,
        pb::Reason::Ok
    );
    assert_eq!(
        verify(&mut b, &issued.key, "orders:write", &mut made).await,
        pb::Reason::InsufficientScope
    );
    let got = b.get_id(&id).await;
    assert_eq!(
        (got.label.as_str(), got.status()),
        (label.as_str(), pb::KeyStatus::Active)
    );

    let update = pb::UpdateKeyRequest {
        key_id: id.clone(),
        scopes: vec!["orders:read".into(), "orders:write".into()],
        update_mask: Some(pbjson_types::FieldMask {
            paths: vec!["scopes".into()],
        }),
        ..Default::default()
    };
    let updated = a.update(update).await;
    assert_eq!(updated.info.unwrap().scopes.len(), 2);
    until(
        &mut b,
        &issued.key,
        "orders:write",
        pb::Reason::Ok,
        &mut made,
    )
    .await;

    let list = pb::ListKeysRequest {
        project: "acme".into(),
        label: label.clone(),
        ..Default::default()
    };
    let listed = b.list(list).await;
    let ids: Vec<_> = listed.keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, [id.as_str()]);

    let rotate = pb::RotateRequest {
        key_id: id.clone(),
        grace_period: Some(pbjson_types::Duration {
            seconds: 0,
            nanos: 0,
        }),
    };
    let rotated = a.rotate(rotate).await;
    let new_id = rotated.info.unwrap().id;
    assert_eq!(
        verify(&mut b, &rotated.key, "orders:write", &mut made).await,
        pb::Reason::Ok
    );
    until(
        &mut b,
        &issued.key,
        "orders:read",
        pb::Reason::Revoked,
        &mut made,
    )
    .await;

    let revoke = pb::RevokeRequest {
        key_id: new_id.clone(),
        reason: "pooler test".into(),
    };
    let revoked = a.revoke(revoke).await;
    assert_eq!(revoked.info.unwrap().status(), pb::KeyStatus::Revoked);
    made.worst_revoke = until(
        &mut b,
        &rotated.key,
        "orders:read",
        pb::Reason::Revoked,
        &mut made,
    )
    .await;
    made
}

/// Runs `lives` key lives at once (so statements of many clients share the
/// pooler's few server connections), then checks GetUsage against the calls.
async fn exercise(a: &TestApp, b: &TestApp, lives: usize) {
    let mut client = a.api().await;
    let admin = client.admin.clone();
    let tasks: Vec<_> = (0..lives)
        .map(|n| tokio::spawn(key_life(a.url(), b.url(), admin.clone(), n)))
        .collect();
    let mut made = Made::default();
    for task in tasks {
        let one = task.await.unwrap();
        made.allowed += one.allowed;
        made.denied += one.denied;
        made.worst_revoke = made.worst_revoke.max(one.worst_revoke);
    }
    eprintln!(
        "pooler: {lives} key lives, {} allowed and {} denied calls; worst revoke on the other replica {:?}",
        made.allowed, made.denied, made.worst_revoke
    );
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let started = Instant::now();
    loop {
        let request = pb::GetUsageRequest {
            project: "acme".into(),
            since: Some(keyward::proto::timestamp::Timestamp {
                seconds: since.timestamp(),
                nanos: 0,
            }),
            ..Default::default()
        };
        let usage = client.usage(request).await;
        let allowed: i64 = usage.series.iter().map(|p| p.allowed).sum();
        let denied: i64 = usage.series.iter().map(|p| p.denied).sum();
        if (allowed, denied) == (made.allowed, made.denied) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "GetUsage says {allowed} allowed / {denied} denied, made {} / {}",
            made.allowed,
            made.denied
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn transaction_mode_declared_gives_right_answers() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    // Fewer server connections than clients: statements of different clients
    // keep meeting on the same server sessions.
    let Some(bouncer) = bouncer(&db, "transaction", 3).await else {
        return;
    };
    let url = bouncer.url();
    let args = [
        "--database-pooler",
        "transaction",
        "--database-session-url",
        db.url.as_str(),
        "--usage-flush-interval",
        "200ms",
        // Dozens of clients queue for three server connections on a busy
        // machine: a slow answer is not what this test is about.
        "--lookup-timeout",
        "3s",
    ];
    let a = TestApp::spawn_with(config(&url, &args), None).await;
    let b = TestApp::spawn_with(config(&url, &args), None).await;
    exercise(&a, &b, 12).await;
    a.stop().await;
    b.stop().await;
    let log = bouncer.log();
    assert!(
        !log.contains("prepared statement"),
        "named statements reached PgBouncer: {log}"
    );
}

#[tokio::test]
async fn session_mode_keeps_working() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let Some(bouncer) = bouncer(&db, "session", 60).await else {
        return;
    };
    let url = bouncer.url();
    let args = [
        "--database-pooler",
        "session",
        "--database-max-connections",
        "8",
        "--usage-flush-interval",
        "200ms",
    ];
    let a = TestApp::spawn_with(config(&url, &args), None).await;
    let b = TestApp::spawn_with(config(&url, &args), None).await;
    assert_eq!(
        a.state.lookup.bus_kind(),
        "postgres",
        "LISTEN through the pooler"
    );
    exercise(&a, &b, 6).await;
    a.stop().await;
    b.stop().await;
}

async fn refused(url: &str, args: &[&str]) -> String {
    match Application::build(config(url, args)).await {
        Ok(_) => panic!("started through a pooler it cannot work with ({args:?})"),
        Err(error) => format!("{error:#}"),
    }
}

#[tokio::test]
async fn an_undeclared_transaction_pooler_is_refused_at_start() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let Some(bouncer) = bouncer(&db, "transaction", 3).await else {
        return;
    };
    for pooler in ["none", "session"] {
        let started = Instant::now();
        let error = refused(&bouncer.url(), &["--database-pooler", pooler]).await;
        assert!(
            error.contains("--database-url does not keep a database session")
                && error.contains("pool_mode=transaction")
                && error.contains("--database-pooler transaction"),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    // A session URL that is a transaction pooler too.
    let error = refused(&db.url, &["--database-session-url", &bouncer.url()]).await;
    assert!(
        error.contains("--database-session-url does not keep"),
        "{error}"
    );
}

#[tokio::test]
async fn a_transaction_pooler_without_a_session_url_is_refused_for_bus_and_migrations() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let Some(bouncer) = bouncer(&db, "transaction", 3).await else {
        return;
    };
    let url = bouncer.url();
    let error = refused(&url, &["--database-pooler", "transaction"]).await;
    assert!(
        error.contains("migrations cannot run through a transaction pooler")
            && error.contains("--database-session-url"),
        "{error}"
    );
    // Migrated elsewhere, the bus still has nowhere to LISTEN.
    db.store().await;
    let error = refused(&url, &["--database-pooler", "transaction", "--no-migrate"]).await;
    assert!(
        error.contains("cannot work through a transaction pooler")
            && error.contains("--redis-url")
            && error.contains("--database-session-url"),
        "{error}"
    );
}

/// The start-up probe itself: a session hears its own NOTIFY, a transaction
/// pooler's client does not.
#[tokio::test]
async fn the_session_probe_tells_the_modes_apart() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let wait = Duration::from_secs(3);
    let Some(transaction) = bouncer(&db, "transaction", 3).await else {
        return;
    };
    let session = bouncer(&db, "session", 10).await.unwrap();
    let options = keyward::store::StoreOptions::default();
    let check = async |url: &str| keyward::store::check_session(url, wait, &options).await;
    assert!(check(&db.url).await.unwrap(), "direct");
    assert!(check(&session.url()).await.unwrap(), "session mode");
    assert!(
        !check(&transaction.url()).await.unwrap(),
        "transaction mode"
    );
}
