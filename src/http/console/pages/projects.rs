//! The projects the admin reaches. There is no ListProjects RPC: a project
//! admin reaches one project; for an all-projects admin the list comes from
//! the newest [`SCAN_KEYS`] keys (ListKeys, newest first), so a project
//! whose keys are all older than those is not listed; the page says when
//! that may be, and "Open a project" reaches any project by name.

use std::{collections::BTreeMap, fmt::Write};

use http::StatusCode;

use super::view::View;
use crate::{
    http::{
        HttpResponse,
        console::{error::ConsoleError, form::link, html, respond},
    },
    proto::v1 as pb,
};

const PAGE: i32 = 500;
const SCAN_KEYS: usize = 2_000;

pub async fn page(view: &View<'_>) -> Result<HttpResponse, ConsoleError> {
    let mut counts = BTreeMap::<String, usize>::new();
    let mut complete = true;
    if let Some(own) = view.caller.own_project() {
        counts.insert(own.to_owned(), 0);
    }
    let mut token = String::new();
    let mut scanned = 0;
    loop {
        let reply = view
            .caller
            .list_keys(pb::ListKeysRequest {
                project: view.caller.own_project().unwrap_or_default().to_owned(),
                page_size: PAGE,
                page_token: token,
                ..Default::default()
            })
            .await?;
        scanned += reply.keys.len();
        for key in reply.keys {
            *counts.entry(key.project).or_default() += 1;
        }
        token = reply.next_page_token;
        if token.is_empty() {
            break;
        }
        if scanned >= SCAN_KEYS {
            complete = false;
            break;
        }
    }
    let mut main = String::new();
    if view.caller.own_project().is_some() {
        main.push_str("<p>This admin key reaches one project.</p>");
    }
    if counts.is_empty() {
        main.push_str("<p>No keys yet. Open a project by name below to issue its first key.</p>");
    } else {
        main.push_str(
            "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Project</th>\
             <th scope=\"col\" class=\"num\">Keys</th><th scope=\"col\">Go to</th></tr></thead><tbody>",
        );
        for (project, n) in &counts {
            let more = if complete { "" } else { "at least " };
            let _ = write!(
                main,
                "<tr><th scope=\"row\"><a href=\"{}\">{}</a></th><td class=\"num\">{more}{n}</td>\
                 <td><a href=\"{}\">Keys</a> · <a href=\"{}\">Audit</a> · <a href=\"{}\">Issue a key</a></td></tr>",
                html::esc(&link("/ui/project", &[("name", project)])),
                html::esc(project),
                html::esc(&link("/ui/keys", &[("project", project)])),
                html::esc(&link("/ui/audit", &[("project", project)])),
                html::esc(&link("/ui/issue", &[("project", project)])),
            );
        }
        main.push_str("</tbody></table></div>");
    }
    if !complete {
        let _ = write!(
            main,
            "<p class=\"hint\">Projects and counts are taken from the newest {SCAN_KEYS} keys; \
             a project with only older keys is not listed here: open it by name.</p>"
        );
    }
    if view.caller.own_project().is_none() {
        main.push_str(
            "<form method=\"get\" action=\"/ui/project\" class=\"inline\">\
             <label for=\"name\">Open a project</label>\
             <input id=\"name\" name=\"name\" required maxlength=\"128\">\
             <button type=\"submit\">Open</button></form>",
        );
    }
    Ok(respond::page(
        StatusCode::OK,
        html::document("Projects", Some(view.csrf), &main),
    ))
}
