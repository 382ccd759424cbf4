//! One decision on an L1 hit — parse, checksum, digest, L1, decide — and its
//! parts, so a regression can be traced to the step that caused it; and one
//! ext_authz check on an L1 hit (key extraction, scopes from the context
//! extension, the decision, Envoy's answer built and encoded).
//!
//! `cargo bench --bench decision`

use std::sync::Arc;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use keyward::{
    admin::{Actor, Admin, IssueInput, Reach},
    authz::{Authz, CheckInput, Settings},
    cache::{KeyLookup, LocalOptions},
    decision,
    key::{Digest, format},
    limit::Limiter,
    store,
    telemetry::{decision::Observed, metrics::Rpc},
    verify::Verifier,
};

fn l1_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("bench.db").display());
    let (verifier, key) = rt.block_on(async {
        let store = store::connect(&url, &Default::default()).await.unwrap();
        store.migrate().await.unwrap();
        let lookup = Arc::new(KeyLookup::local(store.clone(), &LocalOptions::default()));
        let admin = Admin::new(store, lookup.clone());
        let actor = Actor {
            key_id: None,
            reach: Reach::AllProjects,
            source: "bench".into(),
        };
        let input = IssueInput {
            project: "acme".into(),
            label: "bench".into(),
            scopes: vec!["orders:*".into(), "users:read".into()],
            expires_at: Some(Utc::now() + chrono::Duration::days(1)),
            metadata: Default::default(),
            rate_limit: None,
            quota: None,
            allowed_cidrs: Vec::new(),
        };
        let (secret, _) = admin.issue(&actor, input).await.unwrap();
        let verifier = Verifier::new(lookup, Limiter::new(None));
        let warm = verifier
            .verify(secret.expose(), &["orders:read"], None)
            .await
            .unwrap();
        assert!(warm.allowed());
        (verifier, secret.into_exposed())
    });
    let required = ["orders:read".to_string()];

    c.bench_function("verify_l1_hit", |b| {
        b.to_async(&rt).iter(|| async {
            let verdict = verifier.verify(&key, &required, None).await.unwrap();
            assert!(verdict.allowed());
            verdict
        })
    });

    // The server counts every decision about a known key for usage.
    let counted = verifier
        .clone()
        .with_usage(Arc::new(keyward::usage::UsageCounter::default()));
    c.bench_function("verify_l1_hit_usage_counted", |b| {
        b.to_async(&rt).iter(|| async {
            let verdict = counted.verify(&key, &required, None).await.unwrap();
            assert!(verdict.allowed());
            verdict
        })
    });

    // As the server runs it: logs at info, metrics recorded, span export off.
    let _telemetry = rt.block_on(async {
        let t = keyward::telemetry::init(keyward::telemetry::LogFormat::Json, Some("info"));
        keyward::telemetry::metrics::install();
        t
    });
    c.bench_function("verify_l1_hit_observed", |b| {
        b.to_async(&rt).iter(|| async {
            let observed = Observed::start(Rpc::Verify, || None);
            let outcome = verifier.verify(&key, &required, None).await;
            observed.finish(&outcome, &required, false);
            outcome.unwrap()
        })
    });

    c.bench_function("parse_and_checksum", |b| {
        b.iter(|| format::parse(std::hint::black_box(&key)).unwrap())
    });
    let parsed = format::parse(&key).unwrap();
    c.bench_function("sha256_digest", |b| {
        b.iter(|| Digest::of(std::hint::black_box(parsed)))
    });
    let record = rt
        .block_on(
            verifier
                .lookup()
                .find(&Digest::of(parsed), Utc::now().timestamp_micros()),
        )
        .unwrap()
        .record
        .unwrap();
    c.bench_function("decide", |b| {
        b.iter(|| {
            decision::decide(
                Some(std::hint::black_box(&*record)),
                &required,
                None,
                Utc::now(),
            )
        })
    });

    // What Envoy sends with `allowed_headers` limited to the key headers.
    let authz = Authz::new(verifier.clone(), Settings::default());
    let headers: std::collections::HashMap<String, String> = [
        (":authority", "api.example"),
        (":method", "GET"),
        (":path", "/orders/1"),
        ("x-api-key", key.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let context: std::collections::HashMap<String, String> =
        [("keyward_scopes".to_owned(), "orders:read".to_owned())].into();
    let input = CheckInput {
        method: "GET",
        path: "/orders/1",
        headers: &headers,
        context: &context,
        peer: Some(std::net::IpAddr::from([127, 0, 0, 1])),
    };
    c.bench_function("ext_authz_check_l1_hit", |b| {
        b.to_async(&rt).iter(|| async {
            let answer = authz.check(&input).await.unwrap();
            let response = keyward::grpc::ext_authz::check_response(&answer);
            prost::Message::encode_to_vec(&response)
        })
    });
}

criterion_group!(benches, l1_hit);
criterion_main!(benches);
