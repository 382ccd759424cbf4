//! Which keys look unusual: calls or denials in the last hour far above the
//! key's own usual hourly level, said in words.
//!
//! "Usual" is the mean per hour over the baseline window from the key's
//! first call in it (the caller passes only those hours). A key is flagged when the
//! last hour is both large in itself (at least [`MIN_CALLS`] calls or
//! [`MIN_DENIALS`] denials, so a quiet key going from 0 to 2 is no alarm)
//! and at least [`FACTOR`] times its usual level. A key with less than
//! [`MIN_HOURS`] of history has no usual level yet and is never flagged.

/// Calls (or denials) in one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hour {
    pub allowed: i64,
    pub denied: i64,
}

pub const FACTOR: f64 = 5.0;
pub const MIN_CALLS: i64 = 30;
pub const MIN_DENIALS: i64 = 10;
pub const MIN_HOURS: usize = 3;

/// Why the key is unusual, or `None` when it is not. `top_reason` names
/// the commonest denial reason of the last hour, if any.
pub fn judge(last: Hour, usual: &[Hour], top_reason: Option<&str>) -> Option<String> {
    if usual.len() < MIN_HOURS {
        return None;
    }
    let hours = usual.len() as f64;
    let mean_allowed = usual.iter().map(|h| h.allowed).sum::<i64>() as f64 / hours;
    let mean_denied = usual.iter().map(|h| h.denied).sum::<i64>() as f64 / hours;
    let span = describe_span(usual.len());
    let said = |what: String, mean: f64, last: i64| {
        if mean < 0.05 {
            format!("{what} in the last hour, where it had none over {span}")
        } else {
            format!(
                "{what} in the last hour, against a usual {} an hour over {span} ({:.0}× its usual level)",
                round(mean),
                last as f64 / mean
            )
        }
    };
    let mut why = Vec::new();
    if last.allowed >= MIN_CALLS && last.allowed as f64 >= FACTOR * mean_allowed.max(1.0) {
        why.push(said(
            format!("{} calls", last.allowed),
            mean_allowed,
            last.allowed,
        ));
    }
    if last.denied >= MIN_DENIALS && last.denied as f64 >= FACTOR * mean_denied.max(1.0) {
        let reason = top_reason
            .map(|r| format!(" (mostly {r})"))
            .unwrap_or_default();
        why.push(said(
            format!("{} denied calls{reason}", last.denied),
            mean_denied,
            last.denied,
        ));
    }
    if why.is_empty() {
        None
    } else {
        Some(why.join("; "))
    }
}

fn describe_span(hours: usize) -> String {
    if hours >= 48 {
        format!("the past {} days", hours / 24)
    } else {
        format!("the past {hours} hours")
    }
}

fn round(mean: f64) -> String {
    if mean < 10.0 {
        format!("{mean:.1}")
    } else {
        format!("{mean:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(allowed: i64, denied: i64, n: usize) -> Vec<Hour> {
        vec![Hour { allowed, denied }; n]
    }

    #[test]
    fn a_burst_far_above_the_usual_level_is_flagged_in_words() {
        let why = judge(
            Hour {
                allowed: 400,
                denied: 0,
            },
            &hours(40, 0, 168),
            None,
        )
        .unwrap();
        assert_eq!(
            why,
            "400 calls in the last hour, against a usual 40 an hour over the past 7 days (10× its usual level)"
        );
    }

    #[test]
    fn denials_are_judged_on_their_own_and_name_the_reason() {
        let why = judge(
            Hour {
                allowed: 40,
                denied: 25,
            },
            &hours(40, 0, 24),
            Some("RATE_LIMITED"),
        )
        .unwrap();
        assert!(
            why.starts_with("25 denied calls (mostly RATE_LIMITED) in the last hour"),
            "{why}"
        );
        assert!(
            why.ends_with("where it had none over the past 24 hours"),
            "{why}"
        );
    }

    #[test]
    fn normal_small_or_new_keys_are_not_flagged() {
        // Busy but as usual.
        assert_eq!(
            judge(
                Hour {
                    allowed: 1000,
                    denied: 0
                },
                &hours(900, 0, 24),
                None
            ),
            None
        );
        // Far above a quiet usual, but small.
        assert_eq!(
            judge(
                Hour {
                    allowed: 12,
                    denied: 3
                },
                &hours(0, 0, 24),
                None
            ),
            None
        );
        // No history.
        assert_eq!(
            judge(
                Hour {
                    allowed: 5000,
                    denied: 0
                },
                &hours(0, 0, 2),
                None
            ),
            None
        );
        // Exactly at the factor counts.
        assert!(
            judge(
                Hour {
                    allowed: 50,
                    denied: 0
                },
                &hours(10, 0, 24),
                None
            )
            .is_some()
        );
        assert!(
            judge(
                Hour {
                    allowed: 49,
                    denied: 0
                },
                &hours(10, 0, 24),
                None
            )
            .is_none()
        );
    }
}
