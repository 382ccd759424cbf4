//! What `keyward keys` prints: aligned tables for people, JSON for scripts.
//!
//! The JSON is the response message in the proto3 JSON mapping (pbjson's,
//! the same as Connect's on the wire and grpcurl's): lowerCamelCase names,
//! enum names, RFC 3339 times in UTC (`Z`, 0/3/6/9 digits, see
//! `proto::timestamp`), 64-bit integers as strings, defaults left
//! out.

use std::io::{ErrorKind, Write};

use crate::proto::timestamp::Timestamp;
use anyhow::Context;
use chrono::{DateTime, SecondsFormat};

use crate::proto::v1::{self as pb, KeyInfo, KeyStatus, Reason, VerifyResponse};

/// Writes to stdout; a closed pipe (`keyward keys list | head`) is not an error.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(error) if error.kind() == ErrorKind::BrokenPipe => Ok(()),
        result => result.context("cannot write to stdout"),
    }
}

/// A wire message as pretty proto3 JSON, with a final newline.
pub fn message_json(message: &impl serde::Serialize) -> String {
    let mut text =
        serde_json::to_string_pretty(message).expect("a proto message serialises to JSON");
    text.push('\n');
    text
}

/// Columns padded to their widest cell, two spaces apart.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_header(header: &[&str]) -> Self {
        let mut table = Self::new();
        table.row(header.iter().map(|h| (*h).to_owned()).collect());
        table
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                let cells = self.rows.iter().filter_map(|row| row.get(c));
                cells.map(|cell| cell.chars().count()).max().unwrap_or(0)
            })
            .collect();
        let mut text = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (cell, width) in row.iter().zip(&widths) {
                line.push_str(cell);
                let pad = width - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// Server-supplied text can hold anything (metadata is free-form); escaping
/// control characters keeps it from breaking the table or driving the terminal.
pub fn clean(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        clean(text)
    }
}

fn datetime(ts: &Timestamp) -> Option<DateTime<chrono::Utc>> {
    let nanos = u32::try_from(ts.nanos).ok()?;
    DateTime::from_timestamp(ts.seconds, nanos)
}

/// RFC 3339 in UTC to the second; `absent` when there is no time.
pub fn time_text(ts: Option<&Timestamp>, absent: &str) -> String {
    match ts {
        None => absent.to_owned(),
        Some(ts) => match datetime(ts) {
            Some(at) => at.to_rfc3339_opts(SecondsFormat::Secs, true),
            None => format!("invalid time ({}s {}ns)", ts.seconds, ts.nanos),
        },
    }
}

/// `active`, `rotating`, ...; a status this client does not know shows its number.
pub fn status_word(status: i32) -> String {
    match KeyStatus::try_from(status) {
        Ok(s) => s
            .as_str_name()
            .trim_start_matches("KEY_STATUS_")
            .to_ascii_lowercase(),
        Err(_) => format!("unknown({status})"),
    }
}

/// `OK`, `INSUFFICIENT_SCOPE`, ...
pub fn reason_word(reason: i32) -> String {
    match Reason::try_from(reason) {
        Ok(r) => r.as_str_name().trim_start_matches("REASON_").to_owned(),
        Err(_) => format!("UNKNOWN({reason})"),
    }
}

fn scopes_text(scopes: &[String], separator: &str) -> String {
    if scopes.is_empty() {
        return "-".to_owned();
    }
    scopes
        .iter()
        .map(|s| clean(s))
        .collect::<Vec<_>>()
        .join(separator)
}

fn sorted_metadata(info: &KeyInfo) -> Vec<(&String, &String)> {
    let mut pairs: Vec<_> = info.metadata.iter().collect();
    pairs.sort();
    pairs
}

/// One line per key, newest first as the server sent them.
pub fn key_list(keys: &[KeyInfo]) -> String {
    let mut table = Table::with_header(&[
        "ID", "PROJECT", "LABEL", "STATUS", "SCOPES", "HINT", "EXPIRES", "CREATED",
    ]);
    for key in keys {
        table.row(vec![
            clean(&key.id),
            clean(&key.project),
            clean(&key.label),
            status_word(key.status),
            scopes_text(&key.scopes, ","),
            clean(&key.hint),
            time_text(key.expires_at.as_ref(), "never"),
            time_text(key.created_at.as_ref(), "-"),
        ]);
    }
    table.render()
}

/// Every field of one key, one per line; metadata one pair per line.
pub fn key_details(info: &KeyInfo) -> String {
    let mut table = Table::new();
    let mut field = |name: &str, value: String| table.row(vec![name.to_owned(), value]);
    field("id", or_dash(&info.id));
    field("project", or_dash(&info.project));
    field("label", or_dash(&info.label));
    field("status", status_word(info.status));
    field("hint", or_dash(&info.hint));
    field("scopes", scopes_text(&info.scopes, ", "));
    field("created_at", time_text(info.created_at.as_ref(), "-"));
    field("updated_at", time_text(info.updated_at.as_ref(), "-"));
    field("expires_at", time_text(info.expires_at.as_ref(), "never"));
    field("revoked_at", time_text(info.revoked_at.as_ref(), "-"));
    field("revoke_reason", or_dash(&info.revoke_reason));
    field("replaced_by", or_dash(&info.replaced_by));
    field("replaces", or_dash(&info.replaces));
    field(
        "rate_limit",
        info.rate_limit.as_ref().map_or("-".to_owned(), rate_text),
    );
    field(
        "quota",
        info.quota.as_ref().map_or("-".to_owned(), quota_text),
    );
    field("allowed_cidrs", scopes_text(&info.allowed_cidrs, ", "));
    field("last_used_at", time_text(info.last_used_at.as_ref(), "-"));
    let pairs = sorted_metadata(info);
    if pairs.is_empty() {
        field("metadata", "-".to_owned());
    }
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        let name = if i == 0 { "metadata" } else { "" };
        field(name, format!("{}={}", clean(k), clean(v)));
    }
    table.render()
}

/// A proto duration as seconds, e.g. `1.5s`.
fn duration_text(d: &pbjson_types::Duration) -> String {
    let secs = d.seconds as f64 + f64::from(d.nanos) / 1e9;
    format!("{secs}s")
}

fn rate_text(r: &pb::RateLimit) -> String {
    let period = r.period.as_ref().map_or("1s".to_owned(), duration_text);
    format!("{}/{period}, burst {}", r.limit, r.burst.max(1))
}

fn quota_text(q: &pb::Quota) -> String {
    let period = match pb::quota::Period::try_from(q.period) {
        Ok(pb::quota::Period::Day) => "day",
        Ok(pb::quota::Period::Month) => "month",
        Ok(pb::quota::Period::Credits) => "credits",
        _ => "?",
    };
    match &q.refill_interval {
        Some(every) if q.refill_amount > 0 => {
            format!(
                "{}/{period}, +{} every {}",
                q.limit,
                q.refill_amount,
                duration_text(every)
            )
        }
        _ => format!("{}/{period}", q.limit),
    }
}

pub fn verify_details(response: &VerifyResponse) -> String {
    let mut table = Table::new();
    let mut field = |name: &str, value: String| table.row(vec![name.to_owned(), value]);
    field(
        "allowed",
        if response.allowed { "yes" } else { "no" }.to_owned(),
    );
    field("reason", reason_word(response.reason));
    field("key_id", or_dash(&response.key_id));
    field("project", or_dash(&response.project));
    field("scopes", scopes_text(&response.scopes, ", "));
    // Absent means "never" only for a key that was found.
    let absent = if response.key_id.is_empty() {
        "-"
    } else {
        "never"
    };
    field(
        "expires_at",
        time_text(response.expires_at.as_ref(), absent),
    );
    if let Some(retry) = &response.retry_after {
        field("retry_after", duration_text(retry));
    }
    if let Some(remaining) = response.quota_remaining {
        field("quota_remaining", remaining.to_string());
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn ts(rfc3339: &str) -> Option<Timestamp> {
        let at = DateTime::parse_from_rfc3339(rfc3339).unwrap();
        Some(Timestamp {
            seconds: at.timestamp(),
            nanos: at.timestamp_subsec_nanos() as i32,
        })
    }

    fn info() -> KeyInfo {
        KeyInfo {
            id: "key_01".into(),
            project: "acme".into(),
            label: "billing".into(),
            scopes: vec!["orders:read".into(), "orders:write".into()],
            status: KeyStatus::Active as i32,
            hint: "acme_...Xy3z".into(),
            created_at: ts("2025-01-02T03:04:05.250Z"),
            updated_at: ts("2025-01-02T03:04:05Z"),
            metadata: [("team", "pay"), ("owner", "ana")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn table_pads_columns_and_trims_line_ends() {
        let mut table = Table::with_header(&["A", "LONGER"]);
        table.row(vec!["wide cell".into(), "x".into()]);
        table.row(vec!["é".into(), String::new()]);
        assert_eq!(table.render(), "A          LONGER\nwide cell  x\né\n");
    }

    #[test]
    fn key_list_has_one_aligned_row_per_key() {
        let mut revoked = info();
        revoked.id = "key_02".into();
        revoked.status = KeyStatus::Revoked as i32;
        revoked.scopes.clear();
        revoked.expires_at = ts("2026-01-01T00:00:00Z");
        let text = key_list(&[info(), revoked]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID      PROJECT  LABEL    STATUS   SCOPES"));
        assert!(lines[1].contains("active   orders:read,orders:write"));
        assert!(lines[1].ends_with("never                 2025-01-02T03:04:05Z"));
        assert!(lines[2].contains("revoked  -"));
        assert!(lines[2].contains("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn key_details_lists_every_field_and_sorted_metadata() {
        let mut info = info();
        info.rate_limit = Some(pb::RateLimit {
            limit: 100,
            period: Some(pbjson_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            burst: 10,
        });
        info.quota = Some(pb::Quota {
            limit: 500,
            period: pb::quota::Period::Day as i32,
            ..Default::default()
        });
        let text = key_details(&info);
        let expected = "\
id             key_01
project        acme
label          billing
status         active
hint           acme_...Xy3z
scopes         orders:read, orders:write
created_at     2025-01-02T03:04:05Z
updated_at     2025-01-02T03:04:05Z
expires_at     never
revoked_at     -
revoke_reason  -
replaced_by    -
replaces       -
rate_limit     100/1s, burst 10
quota          500/day
allowed_cidrs  -
last_used_at   -
metadata       owner=ana
               team=pay
";
        assert_eq!(text, expected);
    }

    #[test]
    fn key_json_is_the_proto3_mapping() {
        let value: Value =
            serde_json::from_str(&message_json(&pb::GetKeyResponse { info: Some(info()) }))
                .unwrap();
        let info = &value["info"];
        assert_eq!(info["id"], "key_01");
        assert_eq!(info["status"], "KEY_STATUS_ACTIVE");
        assert_eq!(info["scopes"], json!(["orders:read", "orders:write"]));
        // Z-normalised, 3 digits: as grpcurl prints it.
        assert_eq!(info["createdAt"], "2025-01-02T03:04:05.250Z");
        assert_eq!(info["metadata"], json!({"owner": "ana", "team": "pay"}));
        for absent in ["expiresAt", "replacedBy", "rateLimit", "allowedCidrs"] {
            assert!(info.get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn unknown_enum_values_stay_visible() {
        assert_eq!(status_word(2), "rotating");
        assert_eq!(status_word(42), "unknown(42)");
        assert_eq!(
            reason_word(Reason::InsufficientScope as i32),
            "INSUFFICIENT_SCOPE"
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("plain"), "plain");
        assert_eq!(clean("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
    }

    #[test]
    fn verify_output_shows_the_decision() {
        let response = VerifyResponse {
            allowed: false,
            reason: Reason::InsufficientScope as i32,
            key_id: "key_01".into(),
            project: "acme".into(),
            scopes: vec!["orders:read".into()],
            expires_at: None,
            retry_after: None,
            quota_remaining: None,
        };
        let text = verify_details(&response);
        assert!(
            text.starts_with("allowed     no\nreason      INSUFFICIENT_SCOPE\n"),
            "{text}"
        );
        assert!(text.contains("expires_at  never"));
        let value: Value = serde_json::from_str(&message_json(&response)).unwrap();
        // The proto3 JSON mapping: defaults (`allowed: false`) left out.
        assert_eq!(
            value,
            json!({"reason": "REASON_INSUFFICIENT_SCOPE", "keyId": "key_01",
                   "project": "acme", "scopes": ["orders:read"]})
        );
    }
}
