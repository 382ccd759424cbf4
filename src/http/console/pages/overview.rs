//! A project at a glance: calls over the last day, denials by reason, the
//! busiest keys, keys never used or expiring soon, and unusual keys.

use std::fmt::Write;

use chrono::{Duration, Utc};
use futures_util::future::try_join_all;
use http::StatusCode;

use super::{
    View, text,
    usage::{self, Whose},
};
use crate::{
    http::{
        HttpResponse,
        console::{
            chart,
            error::ConsoleError,
            form::link,
            html::{self, esc},
            respond,
            unusual::{self, Hour},
        },
    },
    proto::v1 as pb,
};

/// Keys read for the never-used and expiring lists: the newest page of
/// live keys (ListKeys, newest first); the page says so when there are more.
const LIVE_SCAN: i32 = 500;
/// Busiest keys of the last hour judged for unusual traffic.
const CANDIDATES: i32 = 10;
/// Baseline of "usual": the 7 days before the last hour.
const BASELINE_HOURS: i64 = 7 * 24;
const SOON: i64 = 7;

pub async fn page(view: &View<'_>) -> Result<HttpResponse, ConsoleError> {
    let project = view.form.required("name")?;
    let caller = view.caller;
    let now = Utc::now();
    let whose = Whose::Project(project);
    let (day, hour, live) = futures_util::try_join!(
        usage::read(caller, whose, now, Duration::hours(24), 3600, 10),
        usage::read(caller, whose, now, Duration::hours(1), 60, CANDIDATES),
        caller.list_keys(pb::ListKeysRequest {
            project: project.to_owned(),
            status: pb::KeyStatus::Active as i32,
            page_size: LIVE_SCAN,
            ..Default::default()
        }),
    )?;
    let flagged = unusual_keys(view, &hour.busiest_keys, now).await?;

    let mut main = String::new();
    let _ = write!(
        main,
        "<p class=\"actions\"><a class=\"button\" href=\"{}\">Keys</a> \
         <a class=\"button\" href=\"{}\">Issue a key</a> <a class=\"button\" href=\"{}\">Audit log</a></p>",
        esc(&link("/ui/keys", &[("project", project)])),
        esc(&link("/ui/issue", &[("project", project)])),
        esc(&link("/ui/audit", &[("project", project)])),
    );
    main.push_str("<section><h2>Unusual keys</h2>");
    if flagged.is_empty() {
        main.push_str(
            "<p>None: no key's calls or denials in the last hour are far above its own usual level.</p>",
        );
    } else {
        main.push_str("<ul class=\"unusual\">");
        for (id, label, why) in &flagged {
            let _ = write!(
                main,
                "<li><a href=\"{}\">{}</a>: {}</li>",
                esc(&link("/ui/key", &[("id", id)])),
                esc(label),
                esc(why)
            );
        }
        main.push_str("</ul>");
    }
    main.push_str("</section><section><h2>Calls, last 24 hours</h2>");
    main.push_str(&chart::bars(
        &usage::bars(&day.series, "%m-%d %H:00"),
        "Calls per hour (UTC)",
    ));
    main.push_str(&chart::ranking(
        &usage::denials(&day.series),
        "Denials by reason, last 24 hours",
    ));
    main.push_str("</section><section><h2>Busiest keys, last 24 hours</h2>");
    if day.busiest_keys.is_empty() {
        main.push_str(
            "<p>No calls in the last 24 hours (usage is written every flush interval).</p>",
        );
    } else {
        main.push_str(
            "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Key</th>\
             <th scope=\"col\" class=\"num\">Allowed</th><th scope=\"col\" class=\"num\">Denied</th></tr></thead><tbody>",
        );
        for k in &day.busiest_keys {
            let _ = write!(
                main,
                "<tr><th scope=\"row\"><a href=\"{}\">{}</a> <code>{}</code></th><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&link("/ui/key", &[("id", &k.key_id)])),
                esc(&k.label),
                esc(&k.key_id),
                k.allowed,
                k.denied
            );
        }
        main.push_str("</tbody></table></div>");
    }
    let never: Vec<_> = live
        .keys
        .iter()
        .filter(|k| k.last_used_at.is_none())
        .collect();
    let soon_limit = now + Duration::days(SOON);
    let soon: Vec<_> = live
        .keys
        .iter()
        .filter(|k| text::time(k.expires_at.as_ref()).is_some_and(|t| t <= soon_limit))
        .collect();
    let scope = if live.next_page_token.is_empty() {
        "Among the project's active keys".to_owned()
    } else {
        format!("Among the newest {LIVE_SCAN} active keys")
    };
    let _ = write!(
        main,
        "</section><section><h2>Never used</h2><p class=\"hint\">{scope}.</p>"
    );
    main.push_str(&key_list(&never, |k| {
        format!("issued {}", text::when_rel(k.created_at.as_ref(), "", now))
    }));
    let _ = write!(
        main,
        "</section><section><h2>Expiring within {SOON} days</h2><p class=\"hint\">{scope}.</p>"
    );
    main.push_str(&key_list(&soon, |k| {
        format!("expires {}", text::when_rel(k.expires_at.as_ref(), "", now))
    }));
    main.push_str("</section>");
    Ok(respond::page(
        StatusCode::OK,
        html::document(&format!("Project {project}"), Some(view.csrf), &main),
    ))
}

fn key_list(keys: &[&pb::KeyInfo], note: impl Fn(&pb::KeyInfo) -> String) -> String {
    if keys.is_empty() {
        return "<p>None.</p>".to_owned();
    }
    let mut html = String::from("<ul>");
    for k in keys.iter().take(20) {
        let _ = write!(
            html,
            "<li><a href=\"{}\">{}</a> <code>{}</code> — {}</li>",
            esc(&link("/ui/key", &[("id", &k.id)])),
            esc(&k.label),
            esc(&k.hint),
            note(k)
        );
    }
    if keys.len() > 20 {
        let _ = write!(html, "<li>and {} more</li>", keys.len() - 20);
    }
    html.push_str("</ul>");
    html
}

/// The busiest keys of the last hour that are far above their own usual
/// level: (id, label, why).
async fn unusual_keys(
    view: &View<'_>,
    busiest: &[pb::KeyUsage],
    now: chrono::DateTime<Utc>,
) -> Result<Vec<(String, String, String)>, ConsoleError> {
    let hour_ago = now - Duration::hours(1);
    let judged = busiest.iter().map(|k| async move {
        let (baseline, last) = futures_util::try_join!(
            usage::read(
                view.caller,
                Whose::Key(&k.key_id),
                hour_ago,
                Duration::hours(BASELINE_HOURS),
                3600,
                0
            ),
            usage::read(
                view.caller,
                Whose::Key(&k.key_id),
                now,
                Duration::hours(1),
                60,
                0
            ),
        )?;
        // The usual level counts from the key's first call in the window:
        // the hours before it was issued (or first used) are not quiet ones.
        let usual: Vec<Hour> = baseline
            .series
            .iter()
            .skip_while(|p| p.allowed + p.denied == 0)
            .map(|p| Hour {
                allowed: p.allowed,
                denied: p.denied,
            })
            .collect();
        let reasons = usage::denials(&last.series);
        let why = unusual::judge(
            Hour {
                allowed: k.allowed,
                denied: k.denied,
            },
            &usual,
            reasons.first().map(|(r, _)| r.as_str()),
        );
        Ok::<_, ConsoleError>(why.map(|why| (k.key_id.clone(), k.label.clone(), why)))
    });
    Ok(try_join_all(judged).await?.into_iter().flatten().collect())
}
