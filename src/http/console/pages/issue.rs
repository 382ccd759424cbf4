//! Issuing a key, and the page that shows a new secret: once, with a copy
//! button. It is the answer to the POST itself and is never stored, so
//! leaving the page loses the secret, as with the CLI.

use std::fmt::Write;

use http::StatusCode;

use super::{settings::Settings, text, view::View};
use crate::{
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

pub async fn form(view: &View<'_>) -> Result<HttpResponse, ConsoleError> {
    let project = view
        .caller
        .own_project()
        .unwrap_or(view.form.text("project"));
    Ok(page(
        view,
        project,
        &Settings::default(),
        None,
        StatusCode::OK,
    ))
}

fn page(
    view: &View<'_>,
    project: &str,
    settings: &Settings,
    error: Option<&ConsoleError>,
    status: StatusCode,
) -> HttpResponse {
    let mut main = String::new();
    if let Some(error) = error {
        main.push_str(&html::message("error", &error.to_string()));
    }
    let _ = write!(
        main,
        "<form method=\"post\" action=\"/ui/issue\" class=\"card\">{}\
         <label for=\"project\">Project</label>\
         <input id=\"project\" name=\"project\" required maxlength=\"128\" value=\"{}\">{}\
         <button type=\"submit\">Issue key</button></form>",
        html::csrf_field(view.csrf),
        esc(project),
        settings.fields()
    );
    respond::page(
        status,
        html::document("Issue a key", Some(view.csrf), &main),
    )
}

pub async fn submit(view: &View<'_>) -> Result<HttpResponse, ConsoleError> {
    let project = view.form.text("project").to_owned();
    let settings = match Settings::parse(view.form) {
        Ok(s) => s,
        Err(error) => {
            let kept = Settings {
                label: view.form.text("label").to_owned(),
                ..Default::default()
            };
            return Ok(page(
                view,
                &project,
                &kept,
                Some(&error),
                StatusCode::BAD_REQUEST,
            ));
        }
    };
    let request = pb::IssueRequest {
        project: project.clone(),
        label: settings.label.clone(),
        scopes: settings.scopes.clone(),
        expires_at: settings.expires_at,
        metadata: settings.metadata.clone(),
        rate_limit: settings.rate_limit,
        quota: settings.quota,
        allowed_cidrs: settings.cidrs.clone(),
    };
    match view.caller.issue(request).await {
        Ok(reply) => Ok(secret(
            view,
            "Key issued",
            &reply.key,
            reply.info.as_ref(),
            "",
        )),
        Err(error @ ConsoleError::Rpc { .. }) => {
            let status = crate::http::status::for_console(&error);
            Ok(page(view, &project, &settings, Some(&error), status))
        }
        Err(error) => Err(error),
    }
}

/// The one page that ever shows a secret.
pub fn secret(
    view: &View<'_>,
    title: &str,
    key: &str,
    info: Option<&pb::KeyInfo>,
    extra: &str,
) -> HttpResponse {
    let info = info.cloned().unwrap_or_default();
    let mut main = String::new();
    let _ = write!(
        main,
        "<div class=\"card secret\"><p class=\"message notice\" role=\"status\"><strong>Copy this key now.</strong> \
         It is shown only on this page; keyward keeps only its digest and cannot show it again.</p>\
         <label for=\"secret\">Secret key for <strong>{}</strong> ({})</label>\
         <div class=\"copy\"><input id=\"secret\" class=\"secret-value\" readonly value=\"{}\" spellcheck=\"false\" autocomplete=\"off\">\
         <button type=\"button\" data-copy=\"secret\">Copy</button></div>\
         <p class=\"copied\" id=\"copied\" role=\"status\" aria-live=\"polite\"></p></div>{extra}\
         <p><a href=\"{}\">Go to the key <code>{}</code></a> (the secret will not be shown there)</p>",
        esc(&info.label),
        text::status(info.status),
        esc(key),
        esc(&link("/ui/key", &[("id", &info.id)])),
        esc(&info.id),
    );
    respond::page(
        StatusCode::OK,
        html::document(title, Some(view.csrf), &main),
    )
}
