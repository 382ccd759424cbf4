//! Where Redis is: one server, a Sentinel-watched master, or a Cluster,
//! read from `--redis-url`.
//!
//! - `redis://[user:pass@]host:port[/db]`, `rediss://…` (TLS)
//! - `redis+sentinel://[user:pass@]h:p,h:p/<master>[/db]`, `rediss+sentinel://…`
//! - `redis+cluster://[user:pass@]h:p,h:p`, `rediss+cluster://…` (seed nodes)
//!
//! Errors never quote the URL: it may hold a password.

use std::fmt;

/// Holds no secret: the credentials are in [`RedisTarget`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    Single {
        host: String,
        port: u16,
        db: i64,
    },
    /// A Unix socket: `redis+unix:///path` or `unix:///path`.
    Unix {
        path: String,
        db: i64,
    },
    Sentinel {
        sentinels: Vec<(String, u16)>,
        master: String,
        db: i64,
    },
    Cluster {
        seeds: Vec<(String, u16)>,
    },
}

#[derive(Clone, PartialEq, Eq)]
pub struct RedisTarget {
    pub topology: Topology,
    pub tls: bool,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (tls {})", self.describe(), self.tls)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(
        "the Redis URL's scheme must be redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster, rediss+cluster or redis+unix"
    )]
    Scheme,
    #[error("the Redis URL names no host")]
    NoHost,
    #[error("a host in the Redis URL has a port that is not a number from 1 to 65535")]
    Port,
    #[error("the Redis URL's database must be a number")]
    Database,
    #[error(
        "a redis+sentinel URL names the master after the hosts: redis+sentinel://h:p,h:p/<master>"
    )]
    NoMaster,
    #[error("a redis+cluster URL takes no database or path: a cluster has only database 0")]
    ClusterPath,
    #[error("a redis:// URL names one host; several are for redis+sentinel:// or redis+cluster://")]
    SeveralHosts,
    #[error("the Redis URL's user or password is not valid percent-encoding")]
    Encoding,
}

const DEFAULT_PORT: u16 = 6379;
const DEFAULT_SENTINEL_PORT: u16 = 26379;

impl RedisTarget {
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let (scheme, rest) = url.split_once("://").ok_or(TargetError::Scheme)?;
        if matches!(scheme.to_ascii_lowercase().as_str(), "unix" | "redis+unix") {
            return unix(rest);
        }
        let (tls, kind) = match scheme.to_ascii_lowercase().as_str() {
            "redis" => (false, ""),
            "rediss" => (true, ""),
            "redis+sentinel" => (false, "sentinel"),
            "rediss+sentinel" => (true, "sentinel"),
            "redis+cluster" => (false, "cluster"),
            "rediss+cluster" => (true, "cluster"),
            _ => return Err(TargetError::Scheme),
        };
        // Query parameters (protocol=…) are the client's business, not ours.
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, pass) = info.split_once(':').unwrap_or((info, ""));
                (non_empty(decode(user)?), non_empty(decode(pass)?))
            }
        };
        let default_port = if kind == "sentinel" {
            DEFAULT_SENTINEL_PORT
        } else {
            DEFAULT_PORT
        };
        let nodes = hosts
            .split(',')
            .map(|h| host_port(h, default_port))
            .collect::<Result<Vec<_>, _>>()?;
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let topology = match kind {
            "sentinel" => {
                let master = segments.first().ok_or(TargetError::NoMaster)?;
                let db = segments.get(1).map_or(Ok(0), |d| database(d))?;
                Topology::Sentinel {
                    sentinels: nodes,
                    master: (*master).to_owned(),
                    db,
                }
            }
            "cluster" => {
                if !segments.is_empty() {
                    return Err(TargetError::ClusterPath);
                }
                Topology::Cluster { seeds: nodes }
            }
            _ => {
                let [(host, port)] =
                    <[_; 1]>::try_from(nodes).map_err(|_| TargetError::SeveralHosts)?;
                let db = segments.first().map_or(Ok(0), |d| database(d))?;
                Topology::Single { host, port, db }
            }
        };
        Ok(Self {
            topology,
            tls,
            username,
            password,
        })
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.topology, Topology::Cluster { .. })
    }

    /// For logs and `config check`: the shape, no credentials.
    pub fn describe(&self) -> String {
        let list = |nodes: &[(String, u16)]| {
            nodes
                .iter()
                .map(|(h, p)| format!("{h}:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        match &self.topology {
            Topology::Single { host, port, .. } => format!("server {host}:{port}"),
            Topology::Unix { path, .. } => format!("server {path}"),
            Topology::Sentinel {
                sentinels, master, ..
            } => format!("sentinel master {master} via {}", list(sentinels)),
            Topology::Cluster { seeds } => format!("cluster via {}", list(seeds)),
        }
    }
}

/// `/path/to/socket[?db=N]`; the password, if any, comes from
/// --redis-password-file.
fn unix(rest: &str) -> Result<RedisTarget, TargetError> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(TargetError::NoHost);
    }
    let db = query
        .split('&')
        .find_map(|p| p.strip_prefix("db="))
        .map_or(Ok(0), database)?;
    Ok(RedisTarget {
        topology: Topology::Unix {
            path: path.to_owned(),
            db,
        },
        tls: false,
        username: None,
        password: None,
    })
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn database(segment: &str) -> Result<i64, TargetError> {
    segment.parse().map_err(|_| TargetError::Database)
}

fn host_port(text: &str, default_port: u16) -> Result<(String, u16), TargetError> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        // [v6]:port
        let (host, after) = rest.split_once(']').ok_or(TargetError::NoHost)?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(TargetError::NoHost);
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or(TargetError::Port)?,
    };
    Ok((host.to_owned(), port))
}

/// Percent-decoding of the user and password (`%40` for `@`).
fn decode(text: &str) -> Result<String, TargetError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(TargetError::Encoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| TargetError::Encoding)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| TargetError::Encoding)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| TargetError::Encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_scheme() {
        let single = RedisTarget::parse("rediss://app:p%40ss@cache:6380/2").unwrap();
        assert!(single.tls);
        assert_eq!(single.username.as_deref(), Some("app"));
        assert_eq!(single.password.as_deref(), Some("p@ss"));
        assert!(
            matches!(single.topology, Topology::Single { ref host, port: 6380, db: 2 } if host == "cache")
        );

        let plain = RedisTarget::parse("redis://:secret@127.0.0.1").unwrap();
        assert_eq!(plain.username, None);
        assert_eq!(plain.password.as_deref(), Some("secret"));

        let sentinel = RedisTarget::parse("redis+sentinel://a:1,b/mymaster/3").unwrap();
        assert_eq!(
            sentinel.topology,
            Topology::Sentinel {
                sentinels: vec![("a".into(), 1), ("b".into(), DEFAULT_SENTINEL_PORT)],
                master: "mymaster".into(),
                db: 3
            }
        );
        let cluster = RedisTarget::parse("rediss+cluster://[::1]:7000,b:7001").unwrap();
        assert!(cluster.tls && cluster.is_cluster());
        assert_eq!(
            cluster.topology,
            Topology::Cluster {
                seeds: vec![("::1".into(), 7000), ("b".into(), 7001)]
            }
        );
        assert_eq!(cluster.describe(), "cluster via ::1:7000,b:7001");
        let unix = RedisTarget::parse("redis+unix:///run/redis.sock?db=4").unwrap();
        assert_eq!(
            unix.topology,
            Topology::Unix {
                path: "/run/redis.sock".into(),
                db: 4
            }
        );
    }

    #[test]
    fn refuses_bad_urls_without_quoting_them() {
        for (url, error) in [
            ("memcached://x", TargetError::Scheme),
            ("cache:6379", TargetError::Scheme),
            ("redis://:hunter2@", TargetError::NoHost),
            ("redis://:hunter2@h:99999", TargetError::Port),
            ("redis://:hunter2@h/x", TargetError::Database),
            ("redis+sentinel://:hunter2@a,b", TargetError::NoMaster),
            ("redis+cluster://:hunter2@a,b/0", TargetError::ClusterPath),
            ("redis://:hunter2@a,b", TargetError::SeveralHosts),
            ("redis://:hunter2%zz@a", TargetError::Encoding),
        ] {
            let got = RedisTarget::parse(url).unwrap_err();
            assert_eq!(got, error, "{url}");
            assert!(!got.to_string().contains("hunter2"));
        }
        let shown = format!("{:?}", RedisTarget::parse("redis://:hunter2@h").unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
