//! One key: its settings, calls per minute, hour and day (allowed, and
//! denied by reason), quota left, its audit events, and what can be done
//! with it.

use std::fmt::Write;

use chrono::{Datelike, Duration, Utc};
use http::StatusCode;

use super::{
    audit, text,
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

pub async fn page(view: &View<'_>) -> Result<HttpResponse, ConsoleError> {
    let id = view.form.required("id")?;
    let caller = view.caller;
    let now = Utc::now();
    let whose = Whose::Key(id);
    let (info, minutes, hours, days, events) = futures_util::try_join!(
        caller.get_key(id),
        usage::read(caller, whose, now, Duration::hours(1), 60, 0),
        usage::read(caller, whose, now, Duration::hours(48), 3600, 0),
        usage::read(caller, whose, now, Duration::days(31), 86_400, 0),
        caller.audit(pb::ListAuditEventsRequest {
            key_id: id.to_owned(),
            page_size: 20,
            ..Default::default()
        }),
    )?;
    let live = matches!(
        pb::KeyStatus::try_from(info.status),
        Ok(pb::KeyStatus::Active | pb::KeyStatus::Rotating)
    );
    let mut main = String::new();
    match view.form.text("done") {
        "revoked" => main.push_str(&html::message("notice", "The key is revoked.")),
        "updated" => main.push_str(&html::message("notice", "The key's settings are saved.")),
        "unchanged" => main.push_str(&html::message("notice", "Nothing was changed.")),
        _ => {}
    }
    let metadata = {
        let mut pairs: Vec<_> = info.metadata.iter().collect();
        pairs.sort();
        let items: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        text::codes(&items, "none")
    };
    let related = |label: &str, other: &str| {
        if other.is_empty() {
            String::new()
        } else {
            format!(
                "<dt>{label}</dt><dd><a href=\"{}\"><code>{}</code></a></dd>",
                esc(&link("/ui/key", &[("id", other)])),
                esc(other)
            )
        }
    };
    let _ = write!(
        main,
        "<p><a href=\"{}\">← Keys of {}</a></p>\
         <dl class=\"facts\"><dt>Id</dt><dd><code>{}</code></dd><dt>Hint</dt><dd><code>{}</code></dd>\
         <dt>Status</dt><dd>{}{}</dd><dt>Project</dt><dd><a href=\"{}\">{}</a></dd>\
         <dt>Scopes</dt><dd>{}</dd><dt>Rate limit</dt><dd>{}</dd><dt>Quota</dt><dd>{}{}</dd>\
         <dt>Allowed sources</dt><dd>{}</dd><dt>Expires</dt><dd>{}</dd><dt>Issued</dt><dd>{}</dd>\
         <dt>Last used</dt><dd>{}</dd><dt>Metadata</dt><dd>{metadata}</dd>{}{}</dl>",
        esc(&link("/ui/keys", &[("project", &info.project)])),
        esc(&info.project),
        esc(&info.id),
        esc(&info.hint),
        text::badge(info.status),
        if info.revoke_reason.is_empty() {
            String::new()
        } else {
            format!(" — {}", esc(&info.revoke_reason))
        },
        esc(&link("/ui/project", &[("name", &info.project)])),
        esc(&info.project),
        text::codes(&info.scopes, "none"),
        esc(&text::rate_limit(info.rate_limit.as_ref())),
        esc(&text::quota(info.quota.as_ref())),
        quota_left(info.quota.as_ref(), &hours.series, &days.series),
        text::codes(&info.allowed_cidrs, "anywhere"),
        text::when_rel(info.expires_at.as_ref(), "never", now),
        text::when_rel(info.created_at.as_ref(), "", now),
        text::when_rel(info.last_used_at.as_ref(), "never", now),
        related("Replaced by", &info.replaced_by),
        related("Replaces", &info.replaces),
    );
    if live {
        let _ = write!(
            main,
            "<section class=\"actions\"><h2>Actions</h2>\
             <a class=\"button\" href=\"{}\">Change settings</a> \
             <a class=\"button danger\" href=\"{}\">Revoke…</a>",
            esc(&link("/ui/edit", &[("id", id)])),
            esc(&link("/ui/revoke", &[("id", id)])),
        );
        if info.replaced_by.is_empty() {
            let _ = write!(
                main,
                "<form method=\"post\" action=\"/ui/rotate\" class=\"inline\" \
                 data-confirm=\"Rotate this key? A new secret is shown once; the old key works until the grace period ends.\">\
                 {}<input type=\"hidden\" name=\"id\" value=\"{}\">\
                 <label for=\"grace\">Grace period</label>\
                 <input id=\"grace\" name=\"grace\" value=\"24h\" size=\"6\">\
                 <button type=\"submit\">Rotate</button></form>",
                html::csrf_field(view.csrf),
                esc(id)
            );
        }
        main.push_str("</section>");
    }
    main.push_str("<section><h2>Calls</h2><p class=\"hint\">Usage is written every flush interval; the latest calls show up after the next flush.</p><div class=\"charts\">");
    main.push_str(&chart::bars(
        &usage::bars(&minutes.series, "%H:%M"),
        "Per minute, last hour (UTC)",
    ));
    main.push_str(&chart::bars(
        &usage::bars(&hours.series, "%d %H:00"),
        "Per hour, last 48 hours (UTC)",
    ));
    main.push_str(&chart::bars(
        &usage::bars(&days.series, "%m-%d"),
        "Per day, last 31 days (UTC)",
    ));
    main.push_str("</div>");
    let last_day = &hours.series[hours.series.len().saturating_sub(24)..];
    main.push_str(&chart::ranking(
        &usage::denials(last_day),
        "Denied by reason, last 24 hours",
    ));
    main.push_str("</section><section><h2>Audit events</h2>");
    main.push_str(&audit::table(&events.events, now));
    let _ = write!(
        main,
        "<p><a href=\"{}\">All audit events of this key</a></p></section>",
        esc(&link("/ui/audit", &[("key", id)]))
    );
    Ok(respond::page(
        StatusCode::OK,
        html::document(&format!("Key {}", info.label), Some(view.csrf), &main),
    ))
}

/// What is left of a day or month quota, from the usage written so far.
fn quota_left(
    quota: Option<&pb::Quota>,
    hours: &[pb::UsagePoint],
    days: &[pb::UsagePoint],
) -> String {
    let Some(quota) = quota else {
        return String::new();
    };
    let today = Utc::now().date_naive();
    let used: i64 = match pb::quota::Period::try_from(quota.period) {
        Ok(pb::quota::Period::Day) => hours
            .iter()
            .filter(|p| text::time(p.start.as_ref()).is_some_and(|t| t.date_naive() == today))
            .map(|p| p.allowed)
            .sum(),
        Ok(pb::quota::Period::Month) => days
            .iter()
            .filter(|p| {
                text::time(p.start.as_ref())
                    .is_some_and(|t| t.year() == today.year() && t.month() == today.month())
            })
            .map(|p| p.allowed)
            .sum(),
        _ => {
            return " (the credit balance is kept by the limiter; not shown here)".to_owned();
        }
    };
    format!(
        " — about {} left this period (from the usage written so far)",
        (quota.limit - used).max(0)
    )
}
