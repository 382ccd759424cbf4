//! Redis over TLS with an ACL user: a private TLS-only redis-server with a
//! certificate from a CA the test makes, its default user off. keyward's
//! L2 and bus work with --redis-tls-ca, --redis-username and
//! --redis-password-file; another CA, a wrong password, or no client
//! certificate where one is required are refused at start, saying which.

mod common;
#[allow(dead_code)]
#[path = "tls/pki.rs"]
mod pki;

use std::time::Duration;

use common::{
    TestApp, TestDb, config,
    redis::namespace,
    redis_tls::TlsRedis,
    revocation::{allowed, issue, measure},
};

const PASSWORD: &str = "s3cret-redis-pw";

struct Setup {
    redis: TlsRedis,
    ca: pki::Ca,
    ca_file: String,
    password_file: String,
}

async fn start(client_certs: bool) -> Option<Setup> {
    let ca = pki::Ca::new("keyward test redis CA");
    let leaf = ca.server("redis", 11);
    let redis = TlsRedis::start(
        &leaf.cert,
        &leaf.key,
        client_certs.then_some(ca.pem.as_str()),
        "keyward",
        PASSWORD,
    )
    .await?;
    let ca_file = redis.write("ca.pem", &ca.pem);
    let password_file = redis.write("password", &format!("{PASSWORD}\n"));
    Some(Setup {
        redis,
        ca,
        ca_file,
        password_file,
    })
}

impl Setup {
    fn url(&self) -> String {
        format!("rediss://localhost:{}", self.redis.port)
    }

    fn flags<'a>(&'a self, ca: &'a str, password_file: &'a str) -> Vec<&'a str> {
        vec![
            "--redis-tls-ca",
            ca,
            "--redis-username",
            "keyward",
            "--redis-password-file",
            password_file,
            "--redis-timeout",
            "1s",
        ]
    }
}

async fn refused_start(db: &str, flags: &[&str], why: &str) -> String {
    let error = keyward::startup::Application::build(config(db, flags))
        .await
        .err()
        .expect(why);
    format!("{error:#}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_over_tls_carries_the_cache_and_the_bus() {
    let (Some(db), Some(tls)) = (TestDb::postgres().await, start(false).await) else {
        return;
    };
    let (url, ns) = (tls.url(), namespace());
    let mut flags = tls.flags(&tls.ca_file, &tls.password_file);
    flags.extend([
        "--redis-url",
        url.as_str(),
        "--namespace",
        ns.as_str(),
        "--l1-ttl",
        "60s",
    ]);
    let a = TestApp::spawn_with(config(&db.url, &flags), None).await;
    let b = TestApp::spawn_with(config(&db.url, &flags), None).await;
    assert!(!format!("{:?}", config(&db.url, &flags)).contains(PASSWORD));
    let mut ca = a.api().await;
    let mut cb = b.api_with(&ca.admin).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lags = measure(&mut ca, &mut cb, 50, Duration::from_secs(1)).await;
    println!("Redis over TLS with an ACL user: revocation lag over {lags}");
    assert!(
        lags.p99 < Duration::from_millis(100),
        "the bus is not carrying them: {lags}"
    );
    assert!(a.state.lookup.l2().unwrap().is_up() && b.state.lookup.l2().unwrap().is_up());
    let (key, _) = issue(&mut ca, "tls").await;
    assert!(allowed(&mut cb, &key).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_ca_or_a_wrong_password_is_refused_at_start() {
    let Some(tls) = start(false).await else {
        return;
    };
    let db = TestDb::sqlite();
    let url = tls.url();
    let other = pki::Ca::new("not the redis server's CA");
    let wrong_ca = tls.redis.write("other.pem", &other.pem);
    let mut flags = tls.flags(&wrong_ca, &tls.password_file);
    flags.extend(["--redis-url", url.as_str()]);
    let text = refused_start(&db.url, &flags, "an untrusted certificate must be refused").await;
    println!("another CA: {text}");
    assert!(
        text.contains("--redis-url") && text.contains("--redis-tls-ca"),
        "{text}"
    );
    assert!(text.contains("certificate"), "{text}");

    let wrong_password = tls.redis.write("wrong", "not-the-password");
    let mut flags = tls.flags(&tls.ca_file, &wrong_password);
    flags.extend(["--redis-url", url.as_str()]);
    let text = refused_start(&db.url, &flags, "a wrong password must be refused").await;
    println!("wrong password: {text}");
    assert!(
        text.contains("credentials") && text.contains("--redis-password-file"),
        "{text}"
    );
    assert!(
        !text.contains("not-the-password") && !text.contains(PASSWORD),
        "{text}"
    );
    drop(tls.ca);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_presented_when_redis_requires_one() {
    let Some(tls) = start(true).await else { return };
    let db = TestDb::sqlite();
    let url = tls.url();
    let mut flags = tls.flags(&tls.ca_file, &tls.password_file);
    flags.extend(["--redis-url", url.as_str()]);
    let text = refused_start(&db.url, &flags, "no client certificate must be refused").await;
    println!("no client certificate: {text}");
    assert!(
        text.contains("--redis-url") && text.contains("--redis-tls-cert"),
        "{text}"
    );

    let client = tls.ca.client("keyward");
    let cert = tls.redis.write("client.crt", &client.cert);
    let key = tls.redis.write("client.key", &client.key);
    flags.extend(["--redis-tls-cert", &cert, "--redis-tls-key", &key]);
    let app = TestApp::spawn_with(config(&db.url, &flags), None).await;
    let mut api = app.api().await;
    let (k, _) = issue(&mut api, "mtls").await;
    assert!(allowed(&mut api, &k).await);
    assert!(allowed(&mut api, &k).await);
    assert!(app.state.lookup.l2().unwrap().is_up(), "L2 over mTLS");
    app.stop().await;
}
