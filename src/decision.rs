//! The decision itself: a pure function of a key record and a request, so
//! that Verify, ext_authz Check and admin authentication cannot disagree.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::{record::KeyRecord, scope};

/// Why a key was allowed or denied; mirrors `keyward.v1.Reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Ok,
    Missing,
    Malformed,
    Unknown,
    Revoked,
    Expired,
    InsufficientScope,
    RateLimited,
    QuotaExceeded,
    SourceNotAllowed,
}

impl Reason {
    /// Every reason, in declaration order: `ALL[r as usize] == r`.
    pub const ALL: [Reason; 10] = [
        Reason::Ok,
        Reason::Missing,
        Reason::Malformed,
        Reason::Unknown,
        Reason::Revoked,
        Reason::Expired,
        Reason::InsufficientScope,
        Reason::RateLimited,
        Reason::QuotaExceeded,
        Reason::SourceNotAllowed,
    ];

    pub fn allowed(self) -> bool {
        self == Reason::Ok
    }

    /// Stable lower-case name for logs, spans and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::Missing => "missing",
            Reason::Malformed => "malformed",
            Reason::Unknown => "unknown",
            Reason::Revoked => "revoked",
            Reason::Expired => "expired",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::RateLimited => "rate_limited",
            Reason::QuotaExceeded => "quota_exceeded",
            Reason::SourceNotAllowed => "source_not_allowed",
        }
    }
}

/// Checks, in this order: the key exists, is not revoked, has not expired,
/// is used from an allowed address, and covers every required scope. Revoked
/// wins over expired so that the stronger statement is the one reported. A
/// key restricted to some addresses is refused when the address is unknown.
/// (Rate limits and quotas are stateful: `limit` applies them after this.)
pub fn decide<S: AsRef<str>>(
    record: Option<&KeyRecord>,
    required_scopes: &[S],
    client_ip: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Reason {
    let Some(record) = record else {
        return Reason::Unknown;
    };
    if record.revoked_at.is_some_and(|at| at <= now) {
        return Reason::Revoked;
    }
    if record.expires_at.is_some_and(|at| at <= now) {
        return Reason::Expired;
    }
    if !record.cidrs.is_empty()
        && !client_ip.is_some_and(|ip| record.cidrs.iter().any(|net| source_in(net, ip)))
    {
        return Reason::SourceNotAllowed;
    }
    if !scope::covers_all(&record.scopes, required_scopes) {
        return Reason::InsufficientScope;
    }
    Reason::Ok
}

/// Whether `ip` lies in `net`, an IPv4 address and its IPv4-mapped IPv6
/// form (`::ffff:10.1.2.3`, what a dual-stack listener reports for an IPv4
/// client) being one address: `10.0.0.0/8` and `::ffff:10.0.0.0/104` both
/// hold it, whichever way it is written.
fn source_in(net: &ipnet::IpNet, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    net.contains(&ip)
        || match ip {
            IpAddr::V4(v4) => net.contains(&IpAddr::V6(v4.to_ipv6_mapped())),
            IpAddr::V6(_) => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyId;
    use chrono::Duration;

    fn record(scopes: &[&str]) -> KeyRecord {
        KeyRecord {
            id: KeyId::generate(),
            project: "acme".into(),
            scopes: scopes.iter().map(|s| Box::from(*s)).collect(),
            expires_at: None,
            revoked_at: None,
            limits: None,
            cidrs: Box::new([]),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn all_is_indexed_by_the_discriminant() {
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i);
        }
    }

    #[test]
    fn ok_when_every_scope_is_covered() {
        let r = record(&["orders:*", "users:read"]);
        assert_eq!(
            decide(Some(&r), &["orders:read", "users:read"], None, now()),
            Reason::Ok
        );
        assert_eq!(decide(Some(&r), &[] as &[&str], None, now()), Reason::Ok);
        assert!(Reason::Ok.allowed());
    }

    #[test]
    fn unknown_without_a_record() {
        assert_eq!(decide(None, &["a"], None, now()), Reason::Unknown);
    }

    #[test]
    fn revoked_once_revoked_at_has_passed() {
        let mut r = record(&["a"]);
        let t = now();
        r.revoked_at = Some(t);
        assert_eq!(decide(Some(&r), &["a"], None, t), Reason::Revoked);
        assert_eq!(
            decide(Some(&r), &["a"], None, t - Duration::seconds(1)),
            Reason::Ok,
            "rotation grace"
        );
    }

    #[test]
    fn expired_once_expires_at_has_passed() {
        let mut r = record(&["a"]);
        let t = now();
        r.expires_at = Some(t);
        assert_eq!(decide(Some(&r), &["a"], None, t), Reason::Expired);
        assert_eq!(
            decide(Some(&r), &["a"], None, t - Duration::microseconds(1)),
            Reason::Ok
        );
    }

    #[test]
    fn revoked_wins_over_expired_and_scope() {
        let mut r = record(&[]);
        let t = now();
        r.expires_at = Some(t - Duration::seconds(2));
        r.revoked_at = Some(t - Duration::seconds(1));
        assert_eq!(decide(Some(&r), &["a"], None, t), Reason::Revoked);
    }

    #[test]
    fn expired_wins_over_scope() {
        let mut r = record(&[]);
        let t = now();
        r.expires_at = Some(t - Duration::seconds(1));
        assert_eq!(decide(Some(&r), &["a"], None, t), Reason::Expired);
    }

    #[test]
    fn insufficient_scope_when_one_is_missing() {
        let r = record(&["orders:read"]);
        assert_eq!(
            decide(Some(&r), &["orders:read", "orders:write"], None, now()),
            Reason::InsufficientScope
        );
        assert!(!Reason::InsufficientScope.allowed());
    }

    #[test]
    fn source_not_allowed_outside_the_key_cidrs() {
        let mut r = record(&["a"]);
        r.cidrs = vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ]
        .into_boxed_slice();
        let inside: IpAddr = "10.1.2.3".parse().unwrap();
        let outside: IpAddr = "192.168.0.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(decide(Some(&r), &["a"], Some(inside), now()), Reason::Ok);
        assert_eq!(decide(Some(&r), &["a"], Some(v6), now()), Reason::Ok);
        assert_eq!(
            decide(Some(&r), &["a"], Some(outside), now()),
            Reason::SourceNotAllowed
        );
        assert_eq!(
            decide(Some(&r), &["a"], None, now()),
            Reason::SourceNotAllowed,
            "unknown address"
        );
        assert_eq!(
            decide(Some(&r), &["b"], Some(outside), now()),
            Reason::SourceNotAllowed,
            "source before scope"
        );
        assert!(!Reason::SourceNotAllowed.allowed());
        let open = record(&["a"]);
        assert_eq!(
            decide(Some(&open), &["a"], None, now()),
            Reason::Ok,
            "no restriction"
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_the_ipv4_address() {
        let mut v4_net = record(&[]);
        v4_net.cidrs = vec!["10.0.0.0/8".parse().unwrap()].into_boxed_slice();
        let mut mapped_net = record(&[]);
        mapped_net.cidrs = vec!["::ffff:10.0.0.0/104".parse().unwrap()].into_boxed_slice();
        let no_scopes: [&str; 0] = [];
        for r in [&v4_net, &mapped_net] {
            for ip in ["10.1.2.3", "::ffff:10.1.2.3", "::FFFF:a01:203"] {
                let ip: IpAddr = ip.parse().unwrap();
                assert_eq!(
                    decide(Some(r), &no_scopes, Some(ip), now()),
                    Reason::Ok,
                    "{ip} in {:?}",
                    r.cidrs
                );
            }
            for ip in [
                "11.1.2.3",
                "::ffff:11.1.2.3",
                "::10.1.2.3",
                "2001:db8::a01:203",
            ] {
                let ip: IpAddr = ip.parse().unwrap();
                assert_eq!(
                    decide(Some(r), &no_scopes, Some(ip), now()),
                    Reason::SourceNotAllowed,
                    "{ip} in {:?}",
                    r.cidrs
                );
            }
        }
    }

    #[test]
    fn reason_names_are_stable() {
        assert_eq!(Reason::InsufficientScope.as_str(), "insufficient_scope");
        assert_eq!(Reason::SourceNotAllowed.as_str(), "source_not_allowed");
    }
}
