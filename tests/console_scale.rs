//! The console with 10,000 keys in a project: every page paginates, so each
//! loads in under the issue's 200 ms (the median of five, in a debug build).

mod common;

use std::time::{Duration, Instant};

use common::{
    TestApp, TestDb,
    client::issue_request,
    console::{Browser, text},
};
use keyward::proto::v1 as pb;

/// Each page of a project with 10,000 keys, timed: the median of five
/// loads must be under the issue's 200 ms (in a debug build, too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_stay_fast_with_ten_thousand_keys() {
    const KEYS: usize = 10_000;
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    let api = app.api_with(&admin).await;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let mut api = api.clone();
        tasks.spawn(async move {
            for i in (worker..KEYS).step_by(8) {
                api.issue(issue_request("big", &format!("key-{i:05}"), &["x:read"]))
                    .await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(600),
        "seeding took too long"
    );
    let mut browser = Browser::new(app.addr);
    let reply = browser.sign_in(&admin).await;
    assert_eq!(reply.status, 303, "{}", text(&reply));
    let one = api
        .clone()
        .list(pb::ListKeysRequest {
            project: "big".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .keys
        .remove(0)
        .id;
    let pages = [
        "/ui/projects".to_owned(),
        "/ui/project?name=big".to_owned(),
        "/ui/keys?project=big".to_owned(),
        "/ui/keys?project=big&status=active&label=key-00042".to_owned(),
        format!("/ui/key?id={one}"),
        "/ui/audit?project=big".to_owned(),
    ];
    let mut report = Vec::new();
    for page in &pages {
        let mut times = Vec::new();
        for _ in 0..5 {
            let at = Instant::now();
            let reply = browser.get(page).await;
            times.push(at.elapsed());
            assert_eq!(reply.status, 200, "{page}: {}", text(&reply));
        }
        times.sort();
        report.push(format!("{page}: median {:?}, max {:?}", times[2], times[4]));
        assert!(times[2] < Duration::from_millis(200), "{page}: {times:?}");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "console page times with {KEYS} keys:\n  {}",
        report.join("\n  ")
    );
    app.stop().await;
}
