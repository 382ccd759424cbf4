//! A project's keys, a page at a time: filter by status and label, search
//! by key id, a sparkline of each key's last 24 hours.

use std::fmt::Write;

use chrono::{Duration, Utc};
use futures_util::future::try_join_all;
use http::StatusCode;

use super::{
    text,
    usage::{self, Whose},
    view::View,
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
        },
    },
    proto::v1 as pb,
};

/// Keys per page: each row reads its own 24-hour usage.
pub const PAGE: i32 = 25;

const STATUSES: [(&str, pb::KeyStatus); 5] = [
    ("", pb::KeyStatus::Unspecified),
    ("active", pb::KeyStatus::Active),
    ("rotating", pb::KeyStatus::Rotating),
    ("revoked", pb::KeyStatus::Revoked),
    ("expired", pb::KeyStatus::Expired),
];

pub async fn page(view: &View<'_>) -> Result<HttpResponse, ConsoleError> {
    let project = view.form.required("project")?;
    let status_name = view.form.text("status");
    let status = STATUSES
        .iter()
        .find(|(name, _)| *name == status_name)
        .map(|(_, s)| *s)
        .ok_or_else(|| ConsoleError::form("status", "active, rotating, revoked or expired"))?;
    let label = view.form.text("label");
    let search = view.form.text("q");
    let token = view.form.text("page");

    let (keys, next) = if search.is_empty() {
        let reply = view
            .caller
            .list_keys(pb::ListKeysRequest {
                project: project.to_owned(),
                status: status as i32,
                label: label.to_owned(),
                page_size: PAGE,
                page_token: token.to_owned(),
            })
            .await?;
        (reply.keys, reply.next_page_token)
    } else {
        match view.caller.get_key(search).await {
            Ok(key) if key.project == project => (vec![key], String::new()),
            Ok(_)
            | Err(ConsoleError::Rpc {
                code: tonic::Code::NotFound | tonic::Code::InvalidArgument,
                ..
            }) => (Vec::new(), String::new()),
            Err(error) => return Err(error),
        }
    };
    let now = Utc::now();
    let sparks = try_join_all(keys.iter().map(|k| {
        usage::read(
            view.caller,
            Whose::Key(&k.id),
            now,
            Duration::hours(24),
            3600,
            0,
        )
    }))
    .await?;

    let mut main = String::new();
    let _ = write!(
        main,
        "<p class=\"actions\"><a class=\"button\" href=\"{}\">Overview</a> \
         <a class=\"button\" href=\"{}\">Issue a key</a></p>",
        esc(&link("/ui/project", &[("name", project)])),
        esc(&link("/ui/issue", &[("project", project)])),
    );
    let options: String = STATUSES
        .iter()
        .map(|(name, _)| {
            let selected = if *name == status_name {
                " selected"
            } else {
                ""
            };
            let shown = if name.is_empty() { "any" } else { name };
            format!("<option value=\"{name}\"{selected}>{shown}</option>")
        })
        .collect();
    let _ = write!(
        main,
        "<form method=\"get\" action=\"/ui/keys\" class=\"filters\" role=\"search\">\
         <input type=\"hidden\" name=\"project\" value=\"{}\">\
         <div><label for=\"status\">Status</label><select id=\"status\" name=\"status\">{options}</select></div>\
         <div><label for=\"label\">Label (exact)</label><input id=\"label\" name=\"label\" value=\"{}\"></div>\
         <div><label for=\"q\">Key id</label><input id=\"q\" name=\"q\" placeholder=\"key_…\" value=\"{}\"></div>\
         <div><button type=\"submit\">Filter</button> <a href=\"{}\">Clear</a></div></form>",
        esc(project),
        esc(label),
        esc(search),
        esc(&link("/ui/keys", &[("project", project)])),
    );
    if keys.is_empty() {
        main.push_str("<p>No key matches.</p>");
    } else {
        main.push_str(
            "<div class=\"scroll\"><table class=\"keys\"><thead><tr>\
             <th scope=\"col\">Label</th><th scope=\"col\">Hint</th><th scope=\"col\">Status</th>\
             <th scope=\"col\">Scopes</th><th scope=\"col\">Limits</th><th scope=\"col\">Expires</th>\
             <th scope=\"col\">Last used</th><th scope=\"col\">Last 24 h</th></tr></thead><tbody>",
        );
        for (k, usage) in keys.iter().zip(&sparks) {
            let calls: Vec<i64> = usage.series.iter().map(|p| p.allowed + p.denied).collect();
            let _ = write!(
                main,
                "<tr><th scope=\"row\"><a href=\"{}\">{}</a><br><code class=\"id\">{}</code></th>\
                 <td data-label=\"Hint\"><code>{}</code></td><td data-label=\"Status\">{}</td>\
                 <td data-label=\"Scopes\">{}</td><td data-label=\"Limits\">{}<br>{}</td>\
                 <td data-label=\"Expires\">{}</td><td data-label=\"Last used\">{}</td>\
                 <td data-label=\"Last 24 h\">{}</td></tr>",
                esc(&link("/ui/key", &[("id", &k.id)])),
                esc(&k.label),
                esc(&k.id),
                esc(&k.hint),
                text::badge(k.status),
                text::codes(&k.scopes, "none"),
                esc(&format!(
                    "rate: {}",
                    text::rate_limit(k.rate_limit.as_ref())
                )),
                esc(&format!("quota: {}", text::quota(k.quota.as_ref()))),
                text::when_rel(k.expires_at.as_ref(), "never", now),
                text::when_rel(k.last_used_at.as_ref(), "never", now),
                chart::sparkline(&calls, "last 24 hours"),
            );
        }
        main.push_str("</tbody></table></div>");
    }
    let mut pager = Vec::new();
    if !token.is_empty() {
        pager.push(format!(
            "<a href=\"{}\">First page</a>",
            esc(&link(
                "/ui/keys",
                &[
                    ("project", project),
                    ("status", status_name),
                    ("label", label)
                ]
            ))
        ));
    }
    if !next.is_empty() {
        pager.push(format!(
            "<a rel=\"next\" href=\"{}\">Next page</a>",
            esc(&link(
                "/ui/keys",
                &[
                    ("project", project),
                    ("status", status_name),
                    ("label", label),
                    ("page", &next)
                ]
            ))
        ));
    }
    if !pager.is_empty() {
        let _ = write!(
            main,
            "<nav class=\"pager\" aria-label=\"Pages\">{}</nav>",
            pager.join(" ")
        );
    }
    Ok(respond::page(
        StatusCode::OK,
        html::document(&format!("Keys of {project}"), Some(view.csrf), &main),
    ))
}
