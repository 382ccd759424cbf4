//! A key's settings as form fields: shared by the issue and edit pages.
//! Empty fields mean "none" (no expiry, no rate limit, no quota).

use std::{collections::HashMap, fmt::Write};

use chrono::{NaiveDateTime, Utc};

use super::text;
use crate::{
    grpc::convert,
    http::console::{error::ConsoleError, form::Form, html::esc},
    proto::{timestamp::Timestamp, v1 as pb},
};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Settings {
    pub label: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<Timestamp>,
    pub rate_limit: Option<pb::RateLimit>,
    pub quota: Option<pb::Quota>,
    pub cidrs: Vec<String>,
    pub metadata: HashMap<String, String>,
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn duration(
    field: &'static str,
    value: &str,
) -> Result<Option<pbjson_types::Duration>, ConsoleError> {
    if value.is_empty() {
        return Ok(None);
    }
    let d = humantime::parse_duration(value)
        .map_err(|e| ConsoleError::form(field, format!("{value:?}: {e} (e.g. 1s, 10m, 1h)")))?;
    Ok(Some(pbjson_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }))
}

fn expiry(value: &str) -> Result<Option<Timestamp>, ConsoleError> {
    if value.is_empty() {
        return Ok(None);
    }
    let at = chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
                .map(|t| t.and_utc())
                .ok_or(())
        })
        .map_err(|_| {
            ConsoleError::form("expires_at", format!("{value:?} is not a date and time"))
        })?;
    Ok(Some(convert::timestamp(at)))
}

impl Settings {
    pub fn parse(form: &Form) -> Result<Self, ConsoleError> {
        let rate_limit = match form.number::<u32>("rl_limit")? {
            None => None,
            Some(limit) => Some(pb::RateLimit {
                limit,
                period: duration("rl_period", form.text("rl_period"))?,
                burst: form.number("rl_burst")?.unwrap_or(0),
            }),
        };
        let quota = match (form.text("q_period"), form.number::<i64>("q_limit")?) {
            ("" | "none", _) | (_, None) => None,
            (period, Some(limit)) => {
                let period = match period {
                    "day" => pb::quota::Period::Day,
                    "month" => pb::quota::Period::Month,
                    "credits" => pb::quota::Period::Credits,
                    _ => return Err(ConsoleError::form("q_period", "day, month or credits")),
                };
                Some(pb::Quota {
                    limit,
                    period: period as i32,
                    refill_amount: form.number("q_refill_amount")?.unwrap_or(0),
                    refill_interval: duration("q_refill_interval", form.text("q_refill_interval"))?,
                })
            }
        };
        let mut metadata = HashMap::new();
        for line in form
            .text("metadata")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let Some((name, value)) = line.split_once('=') else {
                return Err(ConsoleError::form(
                    "metadata",
                    format!("{line:?}: write name=value, one a line"),
                ));
            };
            metadata.insert(name.trim().to_owned(), value.trim().to_owned());
        }
        Ok(Self {
            label: form.text("label").to_owned(),
            scopes: words(form.text("scopes")),
            expires_at: expiry(form.text("expires_at"))?,
            rate_limit,
            quota,
            cidrs: words(form.text("allowed_cidrs")),
            metadata,
        })
    }

    pub fn of(info: &pb::KeyInfo) -> Self {
        Self {
            label: info.label.clone(),
            scopes: info.scopes.clone(),
            expires_at: info.expires_at,
            rate_limit: info.rate_limit,
            quota: info.quota,
            cidrs: info.allowed_cidrs.clone(),
            metadata: info.metadata.clone(),
        }
    }

    /// The fields of the update mask in which `self` differs from `old`.
    pub fn changed_from(&self, old: &Settings) -> Vec<String> {
        let rate = |l: &Option<pb::RateLimit>| {
            l.map(|l| {
                (
                    l.limit,
                    l.period.map_or(1_000_000_000, |p| {
                        p.seconds as i128 * 1_000_000_000 + p.nanos as i128
                    }),
                    l.burst.max(1),
                )
            })
        };
        let secs = |t: &Option<Timestamp>| t.map(|t| t.seconds);
        let mut paths = Vec::new();
        let mut differs = |name: &str, changed: bool| {
            if changed {
                paths.push(name.to_owned());
            }
        };
        differs("label", self.label != old.label);
        differs("scopes", self.scopes != old.scopes);
        differs(
            "expires_at",
            secs(&self.expires_at) != secs(&old.expires_at),
        );
        differs(
            "rate_limit",
            rate(&self.rate_limit) != rate(&old.rate_limit),
        );
        differs("quota", self.quota != old.quota);
        differs("allowed_cidrs", self.cidrs != old.cidrs);
        differs("metadata", self.metadata != old.metadata);
        paths
    }

    /// The form fields, filled with these settings.
    pub fn fields(&self) -> String {
        let mut html = String::new();
        let expires = text::time(self.expires_at.as_ref())
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
            .unwrap_or_default();
        let rl = self.rate_limit.unwrap_or_default();
        let q = self.quota.unwrap_or_default();
        let num = |present: bool, n: i64| {
            if present {
                n.to_string()
            } else {
                String::new()
            }
        };
        let period = text::quota_period(q.period);
        let option = |value: &str, name: &str| {
            let selected = if (period.is_empty() && value == "none") || period == value {
                " selected"
            } else {
                ""
            };
            format!("<option value=\"{value}\"{selected}>{name}</option>")
        };
        let mut metadata: Vec<_> = self
            .metadata
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        metadata.sort();
        let _ = write!(
            html,
            "<label for=\"label\">Label</label>\
             <input id=\"label\" name=\"label\" required maxlength=\"128\" value=\"{label}\">\
             <label for=\"scopes\">Scopes <span class=\"hint\">space or comma separated, e.g. orders:read orders:*</span></label>\
             <input id=\"scopes\" name=\"scopes\" value=\"{scopes}\">\
             <label for=\"expires_at\">Expires at (UTC) <span class=\"hint\">empty: never</span></label>\
             <input id=\"expires_at\" name=\"expires_at\" type=\"datetime-local\" step=\"1\" value=\"{expires}\">\
             <fieldset><legend>Rate limit <span class=\"hint\">empty limit: none</span></legend>\
             <label for=\"rl_limit\">Calls</label><input id=\"rl_limit\" name=\"rl_limit\" inputmode=\"numeric\" value=\"{rl_limit}\">\
             <label for=\"rl_period\">Per <span class=\"hint\">e.g. 1s, 1m</span></label><input id=\"rl_period\" name=\"rl_period\" value=\"{rl_period}\">\
             <label for=\"rl_burst\">Burst</label><input id=\"rl_burst\" name=\"rl_burst\" inputmode=\"numeric\" value=\"{rl_burst}\">\
             </fieldset>\
             <fieldset><legend>Quota</legend>\
             <label for=\"q_period\">Kind</label><select id=\"q_period\" name=\"q_period\">{o_none}{o_day}{o_month}{o_credits}</select>\
             <label for=\"q_limit\">Limit</label><input id=\"q_limit\" name=\"q_limit\" inputmode=\"numeric\" value=\"{q_limit}\">\
             <label for=\"q_refill_amount\">Credits refill amount</label><input id=\"q_refill_amount\" name=\"q_refill_amount\" inputmode=\"numeric\" value=\"{q_refill}\">\
             <label for=\"q_refill_interval\">Credits refill every <span class=\"hint\">e.g. 1h</span></label><input id=\"q_refill_interval\" name=\"q_refill_interval\" value=\"{q_interval}\">\
             </fieldset>\
             <label for=\"allowed_cidrs\">Allowed sources <span class=\"hint\">CIDR ranges, one a line; empty: anywhere</span></label>\
             <textarea id=\"allowed_cidrs\" name=\"allowed_cidrs\" rows=\"3\">{cidrs}</textarea>\
             <label for=\"metadata\">Metadata <span class=\"hint\">name=value, one a line</span></label>\
             <textarea id=\"metadata\" name=\"metadata\" rows=\"3\">{metadata}</textarea>",
            label = esc(&self.label),
            scopes = esc(&self.scopes.join(" ")),
            rl_limit = num(self.rate_limit.is_some(), rl.limit as i64),
            rl_period = if self.rate_limit.is_some() {
                esc(&text::duration(rl.period.as_ref()))
            } else {
                String::new()
            },
            rl_burst = num(self.rate_limit.is_some() && rl.burst > 0, rl.burst as i64),
            o_none = option("none", "none"),
            o_day = option("day", "calls per UTC day"),
            o_month = option("month", "calls per UTC month"),
            o_credits = option("credits", "credits"),
            q_limit = num(self.quota.is_some(), q.limit),
            q_refill = num(q.refill_amount > 0, q.refill_amount),
            q_interval = if q.refill_interval.is_some() {
                esc(&text::duration(q.refill_interval.as_ref()))
            } else {
                String::new()
            },
            cidrs = esc(&self.cidrs.join("\n")),
            metadata = esc(&metadata.join("\n")),
        );
        html
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(text: &str) -> Form {
        Form::parse(text.as_bytes())
    }

    #[test]
    fn a_filled_form_reads_back() {
        let s = Settings::parse(&form(
            "label=checkout&scopes=orders%3Aread%2C+orders%3Awrite&expires_at=2030-01-02T03%3A04\
             &rl_limit=10&rl_period=1m&q_period=day&q_limit=500&allowed_cidrs=10.0.0.0%2F8\
             &metadata=team%3Dpay%0D%0Aticket+%3D+T-1",
        ))
        .unwrap();
        assert_eq!(s.scopes, ["orders:read", "orders:write"]);
        assert_eq!(s.rate_limit.unwrap().period.unwrap().seconds, 60);
        assert_eq!(s.quota.unwrap().limit, 500);
        assert_eq!(s.metadata["ticket"], "T-1");
        assert_eq!(s.cidrs, ["10.0.0.0/8"]);
        let reparsed = Settings::parse(&Form::parse(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields_of(&s.fields()))
                .finish()
                .as_bytes(),
        ))
        .unwrap();
        assert!(
            reparsed.changed_from(&s).is_empty(),
            "{:?}",
            reparsed.changed_from(&s)
        );
    }

    #[test]
    fn empty_fields_mean_none_and_bad_ones_are_named() {
        let s = Settings::parse(&form("label=a&q_period=none&q_limit=3")).unwrap();
        assert_eq!((s.rate_limit, s.quota, s.expires_at), (None, None, None));
        let e = Settings::parse(&form("label=a&rl_limit=x")).unwrap_err();
        assert!(e.to_string().starts_with("rl_limit"), "{e}");
        let e = Settings::parse(&form("label=a&metadata=novalue")).unwrap_err();
        assert!(e.to_string().starts_with("metadata"), "{e}");
        let old = Settings::parse(&form("label=a")).unwrap();
        let new = Settings::parse(&form("label=b&scopes=x")).unwrap();
        assert_eq!(new.changed_from(&old), ["label", "scopes"]);
    }

    /// The name and value of every input, select and textarea, as a
    /// browser would send them.
    fn fields_of(html: &str) -> Vec<(String, String)> {
        let attr = |tag: &str, name: &str| {
            let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
            let end = tag[start..].find('"')? + start;
            Some(tag[start..end].to_owned())
        };
        let unesc = |s: &str| {
            s.replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&#39;", "'")
                .replace("&amp;", "&")
        };
        let mut out = Vec::new();
        for (i, _) in html.match_indices('<') {
            let tag = &html[i..i + html[i..].find('>').unwrap()];
            let Some(name) = attr(tag, "name") else {
                continue;
            };
            let value = if tag.starts_with("<input") {
                attr(tag, "value").unwrap_or_default()
            } else if tag.starts_with("<textarea") {
                let body = &html[i + tag.len() + 1..];
                body[..body.find("</textarea>").unwrap()].to_owned()
            } else {
                let body = &html[i..];
                let body = &body[..body.find("</select>").unwrap()];
                body.find(" selected")
                    .map(|at| {
                        let before = &body[..at];
                        let v = before.rfind("value=\"").unwrap() + 7;
                        before[v..before[v..].find('"').unwrap() + v].to_owned()
                    })
                    .unwrap_or_default()
            };
            out.push((name, unesc(&value)));
        }
        out
    }
}
