//! Rotate (with a grace period) and revoke (with a reason, after a
//! confirmation).

use std::fmt::Write;

use http::StatusCode;

use super::{issue, text, view::View};
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

pub async fn rotate(view: &View<'_>) -> Result<HttpResponse, ConsoleError> {
    let id = view.form.required("id")?;
    let grace = match view.form.text("grace") {
        "" => None,
        value => {
            let d = humantime::parse_duration(value).map_err(|e| {
                ConsoleError::form("grace", format!("{value:?}: {e} (e.g. 0s, 10m, 24h)"))
            })?;
            Some(pbjson_types::Duration {
                seconds: d.as_secs() as i64,
                nanos: d.subsec_nanos() as i32,
            })
        }
    };
    let reply = view
        .caller
        .rotate(pb::RotateRequest {
            key_id: id.to_owned(),
            grace_period: grace,
        })
        .await?;
    let previous = reply.previous.unwrap_or_default();
    let extra = format!(
        "<p>The old key <a href=\"{}\"><code>{}</code></a> is {} and stops working {}.</p>",
        esc(&link("/ui/key", &[("id", &previous.id)])),
        esc(&previous.id),
        text::status(previous.status),
        text::when_rel(previous.revoked_at.as_ref(), "now", chrono::Utc::now()),
    );
    Ok(issue::secret(
        view,
        "Key rotated",
        &reply.key,
        reply.info.as_ref(),
        &extra,
    ))
}

pub async fn revoke_form(view: &View<'_>) -> Result<HttpResponse, ConsoleError> {
    let id = view.form.required("id")?;
    let info = view.caller.get_key(id).await?;
    let mut main = String::new();
    let _ = write!(
        main,
        "<p>Revoking <strong>{}</strong> (<code>{}</code>, project {}) ends it at once: every \
         replica denies it within the revocation bound. This cannot be undone.</p>\
         <form method=\"post\" action=\"/ui/revoke\" class=\"card\" \
         data-confirm=\"Revoke this key now? This cannot be undone.\">{}\
         <input type=\"hidden\" name=\"id\" value=\"{}\">\
         <label for=\"reason\">Reason <span class=\"hint\">kept in the audit log</span></label>\
         <input id=\"reason\" name=\"reason\" required maxlength=\"512\">\
         <div class=\"check\"><input type=\"checkbox\" id=\"confirm\" name=\"confirm\" value=\"yes\" required>\
         <label for=\"confirm\">I want to revoke this key</label></div>\
         <button type=\"submit\" class=\"danger\">Revoke key</button> <a href=\"{}\">Cancel</a></form>",
        esc(&info.label),
        esc(&info.hint),
        esc(&info.project),
        html::csrf_field(view.csrf),
        esc(id),
        esc(&link("/ui/key", &[("id", id)])),
    );
    Ok(respond::page(
        StatusCode::OK,
        html::document("Revoke a key", Some(view.csrf), &main),
    ))
}

pub async fn revoke(view: &View<'_>) -> Result<HttpResponse, ConsoleError> {
    let id = view.form.required("id")?;
    let reason = view.form.required("reason")?;
    if view.form.text("confirm") != "yes" {
        return Err(ConsoleError::form("confirm", "tick the box to confirm"));
    }
    view.caller
        .revoke(pb::RevokeRequest {
            key_id: id.to_owned(),
            reason: reason.to_owned(),
        })
        .await?;
    Ok(respond::redirect(&link(
        "/ui/key",
        &[("id", id), ("done", "revoked")],
    )))
}
