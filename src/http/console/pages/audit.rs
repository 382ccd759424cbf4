//! The audit log, filterable by key, project, action, actor and time.
//!
//! ListAuditEvents filters by key, project, action and time itself; it has
//! no actor filter, so the actor filter is applied here over at most
//! [`ACTOR_SCAN`] events per page shown (the page says when it stopped
//! early and offers the next stretch).

use std::fmt::Write;

use chrono::{DateTime, NaiveDateTime, Utc};
use http::StatusCode;

use super::{text, view::View};
use crate::{
    grpc::convert,
    http::{
        HttpResponse,
        console::{
            error::ConsoleError,
            form::link,
            html::{self, esc},
            respond,
        },
    },
    proto::v1 as pb,
};

const PAGE: i32 = 50;
const ACTOR_PAGE: i32 = 200;
const ACTOR_SCAN: usize = 1_000;
const ACTIONS: [&str; 7] = [
    "",
    "bootstrap",
    "issue",
    "revoke",
    "rotate",
    "update",
    "revoke_leaked",
];

fn time(field: &'static str, value: &str) -> Result<Option<DateTime<Utc>>, ConsoleError> {
    if value.is_empty() {
        return Ok(None);
    }
    ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| ConsoleError::form(field, format!("{value:?} is not a date and time")))
}

pub async fn page(view: &View<'_>) -> Result<HttpResponse, ConsoleError> {
    let f = view.form;
    let (key, project, action, actor) = (
        f.text("key"),
        f.text("project"),
        f.text("action"),
        f.text("actor"),
    );
    let (since_text, until_text) = (f.text("since"), f.text("until"));
    if !ACTIONS.contains(&action) {
        return Err(ConsoleError::form("action", "not an audit action"));
    }
    let request = pb::ListAuditEventsRequest {
        key_id: key.to_owned(),
        project: project.to_owned(),
        action: action.to_owned(),
        since: time("since", since_text)?.map(convert::timestamp),
        until: time("until", until_text)?.map(convert::timestamp),
        page_size: if actor.is_empty() { PAGE } else { ACTOR_PAGE },
        page_token: f.text("page").to_owned(),
    };
    let mut events = Vec::new();
    let mut next;
    let mut scanned = 0;
    let mut request = request;
    loop {
        let reply = view.caller.audit(request.clone()).await?;
        scanned += reply.events.len();
        events.extend(
            reply
                .events
                .into_iter()
                .filter(|e| actor.is_empty() || e.actor_key_id == actor),
        );
        next = reply.next_page_token;
        if actor.is_empty()
            || next.is_empty()
            || scanned >= ACTOR_SCAN
            || events.len() >= PAGE as usize
        {
            break;
        }
        request.page_token = next.clone();
    }
    let now = Utc::now();
    let options: String = ACTIONS
        .iter()
        .map(|a| {
            let selected = if *a == action { " selected" } else { "" };
            format!(
                "<option value=\"{a}\"{selected}>{}</option>",
                if a.is_empty() { "any" } else { a }
            )
        })
        .collect();
    let mut main = String::new();
    let _ = write!(
        main,
        "<form method=\"get\" action=\"/ui/audit\" class=\"filters\" role=\"search\">\
         <div><label for=\"project\">Project</label><input id=\"project\" name=\"project\" value=\"{}\"></div>\
         <div><label for=\"key\">Key id</label><input id=\"key\" name=\"key\" value=\"{}\"></div>\
         <div><label for=\"action\">Action</label><select id=\"action\" name=\"action\">{options}</select></div>\
         <div><label for=\"actor\">Actor key id</label><input id=\"actor\" name=\"actor\" value=\"{}\"></div>\
         <div><label for=\"since\">From (UTC)</label><input id=\"since\" name=\"since\" type=\"datetime-local\" value=\"{}\"></div>\
         <div><label for=\"until\">Before (UTC)</label><input id=\"until\" name=\"until\" type=\"datetime-local\" value=\"{}\"></div>\
         <div><button type=\"submit\">Filter</button> <a href=\"/ui/audit\">Clear</a></div></form>",
        esc(project),
        esc(key),
        esc(actor),
        esc(since_text),
        esc(until_text)
    );
    if !actor.is_empty() {
        let _ = write!(
            main,
            "<p class=\"hint\">The actor filter looks through up to {ACTOR_SCAN} events at a time.</p>"
        );
    }
    main.push_str(&table(&events, now));
    if !next.is_empty() {
        let _ = write!(
            main,
            "<nav class=\"pager\" aria-label=\"Pages\"><a href=\"/ui/audit\">Newest</a> <a rel=\"next\" href=\"{}\">Older events</a></nav>",
            esc(&link(
                "/ui/audit",
                &[
                    ("project", project),
                    ("key", key),
                    ("action", action),
                    ("actor", actor),
                    ("since", since_text),
                    ("until", until_text),
                    ("page", &next)
                ]
            ))
        );
    }
    Ok(respond::page(
        StatusCode::OK,
        html::document("Audit log", Some(view.csrf), &main),
    ))
}

/// Audit events as a table, newest first.
pub fn table(events: &[pb::AuditEvent], now: DateTime<Utc>) -> String {
    if events.is_empty() {
        return "<p>No audit events match.</p>".to_owned();
    }
    let mut html = String::from(
        "<div class=\"scroll\"><table class=\"audit\"><thead><tr><th scope=\"col\">When</th>\
         <th scope=\"col\">Action</th><th scope=\"col\">Project</th><th scope=\"col\">Key</th>\
         <th scope=\"col\">Actor</th><th scope=\"col\">Source</th><th scope=\"col\">Details</th></tr></thead><tbody>",
    );
    for e in events {
        let key = if e.key_id.is_empty() {
            String::new()
        } else {
            format!(
                "<a href=\"{}\"><code>{}</code></a>",
                esc(&link("/ui/key", &[("id", &e.key_id)])),
                esc(&e.key_id)
            )
        };
        let actor = if e.actor_key_id.is_empty() {
            "cli".to_owned()
        } else {
            format!(
                "<a href=\"{}\"><code>{}</code></a>",
                esc(&link("/ui/audit", &[("actor", &e.actor_key_id)])),
                esc(&e.actor_key_id)
            )
        };
        let _ = write!(
            html,
            "<tr><td data-label=\"When\">{}</td><td data-label=\"Action\">{}</td>\
             <td data-label=\"Project\"><a href=\"{}\">{}</a></td><td data-label=\"Key\">{key}</td>\
             <td data-label=\"Actor\">{actor}</td><td data-label=\"Source\">{}</td>\
             <td data-label=\"Details\"><code class=\"details\">{}</code></td></tr>",
            text::when_rel(e.at.as_ref(), "", now),
            esc(&e.action),
            esc(&link("/ui/audit", &[("project", &e.project)])),
            esc(&e.project),
            esc(&e.source),
            esc(&e.details_json),
        );
    }
    html.push_str("</tbody></table></div>");
    html
}
