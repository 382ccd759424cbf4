//! Changing a key's label, scopes, limits, sources, expiry and metadata:
//! only the fields that differ from the key's current settings go into the
//! update mask, so the audit event names what really changed.

use std::fmt::Write;

use http::StatusCode;

use super::{settings::Settings, view::View};
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
    let id = view.form.required("id")?;
    let info = view.caller.get_key(id).await?;
    Ok(page(view, &info, &Settings::of(&info), None))
}

fn page(
    view: &View<'_>,
    info: &pb::KeyInfo,
    settings: &Settings,
    error: Option<&ConsoleError>,
) -> HttpResponse {
    let mut main = String::new();
    if let Some(error) = error {
        main.push_str(&html::message("error", &error.to_string()));
    }
    let _ = write!(
        main,
        "<p>Key <code>{}</code> of project {}.</p>\
         <form method=\"post\" action=\"/ui/edit\" class=\"card\">{}\
         <input type=\"hidden\" name=\"id\" value=\"{}\">{}\
         <button type=\"submit\">Save</button> <a href=\"{}\">Cancel</a></form>",
        esc(&info.id),
        esc(&info.project),
        html::csrf_field(view.csrf),
        esc(&info.id),
        settings.fields(),
        esc(&link("/ui/key", &[("id", &info.id)])),
    );
    let status = error.map_or(StatusCode::OK, crate::http::status::for_console);
    respond::page(
        status,
        html::document(&format!("Change {}", info.label), Some(view.csrf), &main),
    )
}

pub async fn submit(view: &View<'_>) -> Result<HttpResponse, ConsoleError> {
    let id = view.form.required("id")?;
    let info = view.caller.get_key(id).await?;
    let wanted = match Settings::parse(view.form) {
        Ok(s) => s,
        Err(error) => return Ok(page(view, &info, &Settings::of(&info), Some(&error))),
    };
    let paths = wanted.changed_from(&Settings::of(&info));
    if paths.is_empty() {
        return Ok(respond::redirect(&link(
            "/ui/key",
            &[("id", id), ("done", "unchanged")],
        )));
    }
    let request = pb::UpdateKeyRequest {
        key_id: id.to_owned(),
        label: wanted.label.clone(),
        scopes: wanted.scopes.clone(),
        expires_at: wanted.expires_at,
        metadata: wanted.metadata.clone(),
        update_mask: Some(pbjson_types::FieldMask { paths }),
        rate_limit: wanted.rate_limit,
        quota: wanted.quota,
        allowed_cidrs: wanted.cidrs.clone(),
    };
    match view.caller.update_key(request).await {
        Ok(_) => Ok(respond::redirect(&link(
            "/ui/key",
            &[("id", id), ("done", "updated")],
        ))),
        Err(error @ ConsoleError::Rpc { .. }) => Ok(page(view, &info, &wanted, Some(&error))),
        Err(error) => Err(error),
    }
}
