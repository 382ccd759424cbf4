//! A write whose database connection is killed by the server mid-transaction
//! (57P01 admin_shutdown, as a failover or `pg_terminate_backend` does)
//! answers UNAVAILABLE, never success, and changes nothing.

mod common;

use std::time::{Duration, Instant};

use keyward::proto::v1 as pb;
use sqlx::Connection;
use tonic::Code;

use common::{TestApp, TestDb};

#[tokio::test]
async fn a_revoke_whose_connection_is_terminated_is_unavailable_and_not_applied() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = TestApp::spawn(&db).await;
    let mut client = app.api().await;
    let (key, id) = client.issue_key("acme", "victim", &[]).await;

    // Hold the key's row lock, so the revoke stops inside its transaction,
    // waiting on us: its connection is then the one blocked by our pid.
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let holder_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut holder)
        .await
        .unwrap();
    let mut held = holder.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM keys WHERE id = $1 FOR UPDATE")
        .bind(&id)
        .execute(&mut *held)
        .await
        .unwrap();

    let revoke = {
        let mut client = client.clone();
        let request = pb::RevokeRequest {
            key_id: id.clone(),
            reason: "leaked".into(),
        };
        tokio::spawn(async move { client.try_revoke(request).await })
    };

    let mut killer = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let started = Instant::now();
    let victim = loop {
        let blocked: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)) LIMIT 1",
        )
        .bind(holder_pid)
        .fetch_optional(&mut killer)
        .await
        .unwrap();
        if let Some(pid) = blocked {
            break pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the revoke never waited on the row lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(victim)
        .fetch_one(&mut killer)
        .await
        .unwrap();
    assert!(terminated);
    held.rollback().await.unwrap();

    let status = revoke
        .await
        .unwrap()
        .expect_err("a revoke on a killed connection succeeded");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    // Nothing was committed: the key is active, and still allowed.
    let info = client.get_id(&id).await;
    assert_eq!(info.status(), pb::KeyStatus::Active);
    assert!(info.revoke_reason.is_empty());
    let verified = client.verify(&key, &[]).await;
    assert!(verified.allowed);
    app.stop().await;
}
