//! The console over plain HTTP, as a browser without script sends it:
//! sign-in, cookie flags, security headers, CSRF refusals, project-admin
//! isolation, a revoked admin key ending its session and `--console false`.
//! Page times with 10,000 keys are in console_scale.rs.

mod common;

use std::time::{Duration, Instant};

use common::{
    TestApp, TestDb, config,
    console::{Browser, csrf_of, secret_of, text},
    http::request,
};
use keyward::proto::v1 as pb;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

async fn signed_in(app: &TestApp, admin: &str) -> Browser {
    let mut browser = Browser::new(app.addr);
    let reply = browser.sign_in(admin).await;
    assert_eq!(reply.status, 303, "{}", text(&reply));
    assert_eq!(reply.header("location"), Some("/ui/projects"));
    browser
}

#[tokio::test]
async fn sign_in_sets_a_strict_cookie_that_is_not_the_key() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    let mut api = app.api_with(&admin).await;
    api.issue_key("shop", "checkout", &["orders:read"]).await;

    let mut browser = Browser::new(app.addr);
    let form = browser.get("/ui/").await;
    assert_eq!(form.status, 200);
    assert_eq!(form.header("content-security-policy"), Some(CSP));
    assert_eq!(form.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(form.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(form.header("cache-control"), Some("no-store"));
    assert!(!text(&form).contains("<script>"), "no inline script");

    let csrf = csrf_of(&form);
    let reply = browser
        .post("/ui/sign-in", &[("csrf", &csrf), ("admin_key", &admin)])
        .await;
    assert_eq!(reply.status, 303, "{}", text(&reply));
    let cookie = reply
        .all_headers
        .iter()
        .find(|(n, v)| n == "set-cookie" && v.starts_with("keyward_session="))
        .map(|(_, v)| v.clone())
        .expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=28800"] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plaintext: no Secure flag: {cookie}"
    );
    let id = &browser.cookies["keyward_session"];
    assert_eq!(id.len(), 64, "256 bits as hex: {id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    for value in browser.cookies.values() {
        assert!(!value.contains(&admin) && !admin.contains(value.as_str()));
    }

    let projects = browser.get("/ui/projects").await;
    assert_eq!(projects.status, 200, "{}", text(&projects));
    assert_eq!(projects.header("content-security-policy"), Some(CSP));
    assert!(text(&projects).contains(">shop</a>"), "{}", text(&projects));
    assert!(
        !text(&projects).contains(&admin),
        "the key is never on a page"
    );

    // Signing in again gives a new id and ends the old session.
    // (The form comes from another tab: a signed-in browser is sent on.)
    let first = browser.cookies["keyward_session"].clone();
    let mut tab = Browser::new(app.addr);
    let form = tab.get("/ui/").await;
    let token = tab.cookies["keyward_sign_in"].clone();
    browser.cookies.insert("keyward_sign_in".into(), token);
    let again = browser
        .post(
            "/ui/sign-in",
            &[("csrf", &csrf_of(&form)), ("admin_key", &admin)],
        )
        .await;
    assert_eq!(again.status, 303);
    let second = browser.cookies["keyward_session"].clone();
    assert_ne!(first, second);
    let mut stale = Browser::new(app.addr);
    stale.cookies.insert("keyward_session".into(), first);
    assert_eq!(stale.get("/ui/projects").await.status, 303);
    let projects = browser.get("/ui/projects").await;
    assert_eq!(projects.status, 200);

    // Sign-out ends the session on the server, not only in the browser.
    let id = browser.cookies["keyward_session"].clone();
    let csrf = csrf_of(&projects);
    let out = browser.post("/ui/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert!(!browser.cookies.contains_key("keyward_session"));
    browser.cookies.insert("keyward_session".into(), id);
    let after = browser.get("/ui/projects").await;
    assert_eq!(
        (after.status, after.header("location")),
        (303, Some("/ui/"))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_key_is_refused_in_words() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let mut browser = Browser::new(app.addr);
    let reply = browser.sign_in("kw_not_a_key").await;
    assert_eq!(reply.status, 401);
    assert!(
        text(&reply).contains("Not signed in: invalid admin key"),
        "{}",
        text(&reply)
    );
    assert!(!browser.cookies.contains_key("keyward_session"));
    app.stop().await;
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused_before_anything_else() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    let mut api = app.api_with(&admin).await;
    let mut browser = signed_in(&app, &admin).await;

    let issue = [("project", "shop"), ("label", "forged")];
    for csrf in [None, Some("0".repeat(64))] {
        let mut fields = issue.to_vec();
        if let Some(csrf) = &csrf {
            fields.push(("csrf", csrf));
        }
        let reply = browser.post("/ui/issue", &fields).await;
        assert_eq!(reply.status, 403, "{}", text(&reply));
        assert!(text(&reply).contains("not sent by the console"));
    }
    // Refused before the admin key was even used: no key, no audit event.
    let listed = api
        .list(pb::ListKeysRequest {
            project: "shop".into(),
            ..Default::default()
        })
        .await;
    assert!(listed.keys.is_empty(), "{listed:?}");
    let events = api
        .audit(pb::ListAuditEventsRequest {
            action: "issue".into(),
            ..Default::default()
        })
        .await;
    assert!(events.events.is_empty(), "{events:?}");

    // The sign-in form needs its own token too (no login CSRF).
    let mut stranger = Browser::new(app.addr);
    let reply = stranger.post("/ui/sign-in", &[("admin_key", &admin)]).await;
    assert_eq!(reply.status, 403);
    assert!(!stranger.cookies.contains_key("keyward_session"));
    app.stop().await;
}

on_both_stores!(
    issue_through_the_console,
    an_issued_key_works_and_the_action_is_audited_as_the_admin
);

async fn an_issued_key_works_and_the_action_is_audited_as_the_admin(db: TestDb) {
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    let mut api = app.api_with(&admin).await;
    let mut browser = signed_in(&app, &admin).await;
    let form = browser.get("/ui/issue?project=shop").await;
    assert_eq!(form.status, 200, "{}", text(&form));
    let csrf = csrf_of(&form);
    let issued = browser
        .post(
            "/ui/issue",
            &[
                ("csrf", &csrf),
                ("project", "shop"),
                ("label", "web"),
                ("scopes", "orders:read orders:write"),
                ("rl_limit", "100"),
                ("rl_period", "1s"),
                ("metadata", "team=pay"),
            ],
        )
        .await;
    assert_eq!(issued.status, 200, "{}", text(&issued));
    assert_eq!(issued.header("cache-control"), Some("no-store"));
    let secret = secret_of(&issued);
    let verdict = api.verify(&secret, &["orders:write"]).await;
    assert!(verdict.allowed, "{verdict:?}");

    let events = api
        .audit(pb::ListAuditEventsRequest {
            action: "issue".into(),
            project: "shop".into(),
            ..Default::default()
        })
        .await
        .events;
    assert_eq!(events.len(), 1);
    let me = api
        .list(pb::ListKeysRequest {
            project: "keyward".into(),
            ..Default::default()
        })
        .await
        .keys;
    assert_eq!(
        events[0].actor_key_id, me[0].id,
        "audited with the admin key"
    );
    assert!(
        events[0].source.starts_with("127.0.0.1:"),
        "{:?}",
        events[0]
    );

    // The key's page shows its settings, never the secret.
    let page = browser.get(&format!("/ui/key?id={}", verdict.key_id)).await;
    assert_eq!(page.status, 200, "{}", text(&page));
    assert!(text(&page).contains("100 per 1s"));
    assert!(!text(&page).contains(&secret));

    // A refusal reads as the gRPC reason in words.
    let again = browser
        .post(
            "/ui/issue",
            &[("csrf", &csrf), ("project", "shop"), ("label", "web")],
        )
        .await;
    assert_eq!(again.status, 409, "{}", text(&again));
    assert!(text(&again).contains("Already exists:"), "{}", text(&again));
    assert!(!text(&again).contains("panicked"));
    app.stop().await;
}

#[tokio::test]
async fn a_project_admin_sees_and_acts_on_its_project_only() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let mut api = app.api().await;
    let (_, alpha_key) = api.issue_key("alpha", "a1", &["x:read"]).await;
    let (_, beta_key) = api.issue_key("beta", "b1", &["x:read"]).await;
    let (alpha_admin, _) = api
        .issue_key("alpha", "alpha-admin", &["keyward:admin"])
        .await;
    let mut browser = signed_in(&app, &alpha_admin).await;

    let projects = text(&browser.get("/ui/projects").await);
    assert!(projects.contains(">alpha</a>"), "{projects}");
    assert!(!projects.contains("beta"), "{projects}");
    let alpha = browser.get("/ui/keys?project=alpha").await;
    assert!(text(&alpha).contains(&alpha_key), "{}", text(&alpha));

    let keys = browser.get("/ui/keys?project=beta").await;
    assert_eq!(keys.status, 403, "{}", text(&keys));
    assert!(!text(&keys).contains(&beta_key));
    let search = browser
        .get(&format!("/ui/keys?project=alpha&q={beta_key}"))
        .await;
    // The search box echoes the id; no row of the key is shown.
    assert!(
        text(&search).contains("No key matches."),
        "{}",
        text(&search)
    );
    assert!(!text(&search).contains(&format!("/ui/key?id={beta_key}")));
    let key = browser.get(&format!("/ui/key?id={beta_key}")).await;
    assert!(matches!(key.status, 403 | 404), "{}", text(&key));
    assert_eq!(browser.get("/ui/audit?project=beta").await.status, 403);
    let audit = text(&browser.get("/ui/audit").await);
    assert!(!audit.contains(&beta_key), "{audit}");

    let csrf = csrf_of(&browser.get("/ui/projects").await);
    let revoke = browser
        .post(
            "/ui/revoke",
            &[
                ("csrf", &csrf),
                ("id", &beta_key),
                ("reason", "x"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert!(matches!(revoke.status, 403 | 404), "{}", text(&revoke));
    let beta = api.get_id(&beta_key).await;
    assert_eq!(beta.status, pb::KeyStatus::Active as i32);
    app.stop().await;
}

#[tokio::test]
async fn revoking_the_admin_key_ends_its_session() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let mut api = app.api().await;
    let (admin, admin_id) = api
        .issue_key("keyward", "console-admin", &["keyward:admin"])
        .await;
    let mut browser = signed_in(&app, &admin).await;
    assert_eq!(browser.get("/ui/projects").await.status, 200);
    api.revoke_id(&admin_id, "left the team").await;
    // Within the revocation bound (1 s by default): poll, bounded.
    let deadline = Instant::now() + Duration::from_secs(5);
    let ended = loop {
        let reply = browser.get("/ui/projects").await;
        if reply.status == 303 {
            break reply;
        }
        assert!(
            Instant::now() < deadline,
            "session still open: {}",
            reply.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ended.header("location"), Some("/ui/?ended=1"));
    assert!(!browser.cookies.contains_key("keyward_session"));
    let page = text(&browser.get("/ui/?ended=1").await);
    assert!(page.contains("Your session ended"), "{page}");
    app.stop().await;
}

/// `--console false` mounts nothing under /ui. Each server is this test's
/// own, on its own port, and every exchange has a timeout: nothing is
/// shared with tests running alongside.
#[tokio::test]
async fn console_false_is_not_found() {
    let db = TestDb::sqlite();
    let off = TestApp::spawn_with(config(&db.url, &["--console", "false"]), None).await;
    for path in ["/ui", "/ui/", "/ui/projects", "/ui/assets/console.css"] {
        let reply = request(off.addr, "GET", path, &[], b"").await;
        assert_eq!(reply.status, 404, "{path}: {reply:?}");
    }
    let reply = request(off.addr, "POST", "/ui/sign-in", &[], b"admin_key=x").await;
    assert_eq!(reply.status, 404);
    off.stop().await;

    let db = TestDb::sqlite();
    let on = TestApp::spawn_with(config(&db.url, &["--console"]), None).await;
    assert_eq!(request(on.addr, "GET", "/ui/", &[], b"").await.status, 200);
    on.stop().await;
}

#[tokio::test]
async fn changing_settings_updates_only_what_changed() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    let admin = app.bootstrap().await;
    let mut api = app.api_with(&admin).await;
    let (secret, id) = api.issue_key("shop", "web", &["orders:read"]).await;
    let mut browser = signed_in(&app, &admin).await;
    let form = browser.get(&format!("/ui/edit?id={id}")).await;
    assert_eq!(form.status, 200, "{}", text(&form));
    let csrf = csrf_of(&form);

    // The form as shown, sent back unchanged: nothing to update.
    let same = browser
        .post(
            "/ui/edit",
            &[
                ("csrf", &csrf),
                ("id", &id),
                ("label", "web"),
                ("scopes", "orders:read"),
            ],
        )
        .await;
    assert_eq!(
        same.header("location"),
        Some(format!("/ui/key?id={id}&done=unchanged").as_str())
    );

    let changed = browser
        .post(
            "/ui/edit",
            &[
                ("csrf", &csrf),
                ("id", &id),
                ("label", "web"),
                ("scopes", "orders:read, orders:write"),
                ("rl_limit", "5"),
                ("rl_period", "1m"),
                ("allowed_cidrs", "127.0.0.0/8\n10.0.0.0/8"),
                ("metadata", "team=pay"),
            ],
        )
        .await;
    assert_eq!(changed.status, 303, "{}", text(&changed));
    let info = api.get_id(&id).await;
    assert_eq!(info.scopes, ["orders:read", "orders:write"]);
    assert_eq!(info.rate_limit.unwrap().limit, 5);
    assert_eq!(info.allowed_cidrs, ["127.0.0.0/8", "10.0.0.0/8"]);
    assert_eq!(info.metadata["team"], "pay");
    let inside = api
        .verify_from(&secret, &["orders:write"], "10.1.2.3")
        .await;
    assert!(inside.allowed, "{inside:?}");
    let outside = api
        .verify_from(&secret, &["orders:write"], "192.0.2.1")
        .await;
    assert_eq!(outside.reason, pb::Reason::SourceNotAllowed as i32);
    let update = api
        .audit(pb::ListAuditEventsRequest {
            key_id: id.clone(),
            action: "update".into(),
            ..Default::default()
        })
        .await
        .events;
    assert_eq!(
        update.len(),
        1,
        "one update, not one for the unchanged form"
    );
    for field in ["scopes", "rate_limit", "allowed_cidrs", "metadata"] {
        assert!(
            update[0].details_json.contains(field),
            "{}",
            update[0].details_json
        );
    }
    assert!(
        !update[0].details_json.contains("\"label\""),
        "{}",
        update[0].details_json
    );

    // A bad value is named, and nothing changes.
    let bad = browser
        .post(
            "/ui/edit",
            &[
                ("csrf", &csrf),
                ("id", &id),
                ("label", "web"),
                ("allowed_cidrs", "not-a-cidr"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", text(&bad));
    assert!(text(&bad).contains("allowed_cidrs"), "{}", text(&bad));
    assert_eq!(api.get_id(&id).await.allowed_cidrs.len(), 2);
    app.stop().await;
}
