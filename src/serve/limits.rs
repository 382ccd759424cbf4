//! The resource limits of the gRPC port, as flags and `KEYWARD_*` variables.
//!
//! Keyward faces clients that hold no key, so every resource a connection
//! can make the server hold is bounded here, with defaults that drop a
//! request that has not finished arriving, or a connection that sends
//! nothing, well within 30 s.

use std::time::Duration;

fn positive_duration(value: &str) -> Result<Duration, String> {
    match humantime::parse_duration(value) {
        Ok(d) if d.is_zero() => Err("must be longer than 0s".to_owned()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// HTTP/2 caps the frame size between 16 KiB and 16 MiB - 1.
fn frame_size(value: &str) -> Result<u32, String> {
    let n: u32 = value.parse().map_err(|e| format!("{e}"))?;
    if (16_384..=16_777_215).contains(&n) {
        Ok(n)
    } else {
        Err("HTTP/2 allows 16384 to 16777215".to_owned())
    }
}

/// HTTP/2 flow-control windows: at least one default frame, at most 2^31-1.
fn window(value: &str) -> Result<u32, String> {
    let n: u32 = value.parse().map_err(|e| format!("{e}"))?;
    if (16_384..=i32::MAX as u32).contains(&n) {
        Ok(n)
    } else {
        Err("must be 16384 to 2147483647 bytes".to_owned())
    }
}

fn at_least_one<T: std::str::FromStr + PartialOrd + From<u8>>(value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    let n: T = value.parse().map_err(|e: T::Err| e.to_string())?;
    if n >= T::from(1) {
        Ok(n)
    } else {
        Err("must be at least 1".to_owned())
    }
}

/// Limits of the gRPC port. See README "Resource limits" for why each
/// default is what it is.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most open connections; one more is accepted and closed at once
    /// (never queued), so the listen backlog cannot grow without bound.
    #[arg(long, env = "KEYWARD_MAX_CONNECTIONS", default_value_t = 1024, value_parser = at_least_one::<u32>)]
    pub max_connections: u32,

    /// Most concurrent HTTP/2 streams (calls) per connection; the client is
    /// told so in SETTINGS and streams beyond it are refused.
    #[arg(long, env = "KEYWARD_MAX_CONCURRENT_STREAMS", default_value_t = 100, value_parser = at_least_one::<u32>)]
    pub max_concurrent_streams: u32,

    /// Most calls being handled at once over all connections; past it a call
    /// fails RESOURCE_EXHAUSTED at once instead of waiting.
    #[arg(long, env = "KEYWARD_MAX_IN_FLIGHT", default_value_t = 1024, value_parser = at_least_one::<usize>)]
    pub max_in_flight: usize,

    /// How long a new connection may take to finish its TLS handshake (and,
    /// over HTTP/1.1, to send a request's headers).
    #[arg(long, env = "KEYWARD_HEADER_READ_TIMEOUT", default_value = "5s", value_parser = positive_duration)]
    pub header_read_timeout: Duration,

    /// How long a call's request body may take to arrive in full; past it
    /// the call is dropped with DEADLINE_EXCEEDED.
    #[arg(long, env = "KEYWARD_REQUEST_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub request_timeout: Duration,

    /// A connection with no call in flight for this long is closed (HTTP/2
    /// GOAWAY); clients reconnect on their next call.
    #[arg(long, env = "KEYWARD_IDLE_TIMEOUT", default_value = "15s", value_parser = positive_duration)]
    pub idle_timeout: Duration,

    /// How often an HTTP/2 PING checks that a quiet peer is still there.
    #[arg(long, env = "KEYWARD_HTTP2_KEEPALIVE_INTERVAL", default_value = "20s", value_parser = positive_duration)]
    pub http2_keepalive_interval: Duration,

    /// How long a PING may go unanswered before the connection is closed.
    #[arg(long, env = "KEYWARD_HTTP2_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub http2_keepalive_timeout: Duration,

    /// Request bytes one HTTP/2 stream may send ahead of the server reading
    /// them (its flow-control window).
    #[arg(long, env = "KEYWARD_HTTP2_STREAM_WINDOW", default_value_t = 64 * 1024, value_parser = window)]
    pub http2_stream_window: u32,

    /// Request bytes one connection may send ahead of the server reading them,
    /// over all its streams (the connection window).
    #[arg(long, env = "KEYWARD_HTTP2_CONNECTION_WINDOW", default_value_t = 256 * 1024, value_parser = window)]
    pub http2_connection_window: u32,

    /// Largest HTTP/2 frame payload the server accepts.
    #[arg(long, env = "KEYWARD_HTTP2_MAX_FRAME_SIZE", default_value_t = 16_384, value_parser = frame_size)]
    pub http2_max_frame_size: u32,

    /// Largest header block (decoded names and values) of one request.
    #[arg(long, env = "KEYWARD_HTTP2_MAX_HEADER_LIST_SIZE", default_value_t = 16 * 1024, value_parser = at_least_one::<u32>)]
    pub http2_max_header_list_size: u32,
}

impl Default for Limits {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            limits: Limits,
        }
        use clap::Parser;
        Wrapper::parse_from(["keyward"]).limits
    }
}

impl Limits {
    /// The read buffer of an HTTP/1.1 connection, which bounds its request
    /// head as `--http2-max-header-list-size` bounds an HTTP/2 one (hyper
    /// takes no less than 8 KiB). One HTTP/1.1 request is read at a time,
    /// so the bounds below hold for it too.
    pub fn http1_max_buf_size(&self) -> usize {
        (self.http2_max_header_list_size as usize).max(8192)
    }

    /// Request bytes one connection can make the server buffer before any
    /// handler reads them: its connection window plus a full header block
    /// on every stream it may open.
    pub fn connection_buffer_bound(&self) -> u64 {
        u64::from(self.http2_connection_window)
            + u64::from(self.max_concurrent_streams) * u64::from(self.http2_max_header_list_size)
    }

    /// The global budget, from the same two parts: every connection's window,
    /// plus a header block for each call in flight (streams past
    /// `max_in_flight` are answered RESOURCE_EXHAUSTED at once and freed).
    pub fn total_buffer_bound(&self) -> u64 {
        u64::from(self.max_connections) * u64::from(self.http2_connection_window)
            + self.max_in_flight as u64 * u64::from(self.http2_max_header_list_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_drop_stalled_work_well_within_30s() {
        let limits = Limits::default();
        // Unless the environment of the test run overrides them.
        if std::env::vars().any(|(k, _)| k.starts_with("KEYWARD_")) {
            return;
        }
        assert!(limits.request_timeout < Duration::from_secs(30));
        assert!(limits.idle_timeout < Duration::from_secs(30));
        assert!(
            limits.http2_keepalive_interval + limits.http2_keepalive_timeout
                <= Duration::from_secs(30)
        );
        assert_eq!(
            limits.connection_buffer_bound(),
            256 * 1024 + 100 * 16 * 1024
        );
        assert_eq!(
            limits.total_buffer_bound(),
            1024 * 256 * 1024 + 1024 * 16 * 1024
        );
    }

    #[test]
    fn nonsense_is_refused() {
        use clap::Parser;
        #[derive(clap::Parser, Debug)]
        struct Wrapper {
            #[command(flatten)]
            limits: Limits,
        }
        for args in [
            ["--max-connections", "0"],
            ["--max-in-flight", "0"],
            ["--idle-timeout", "0s"],
            ["--http2-max-frame-size", "100"],
            ["--http2-stream-window", "3000000000"],
        ] {
            let parsed = Wrapper::try_parse_from(std::iter::once("keyward").chain(args));
            assert!(parsed.is_err(), "{args:?} was accepted");
        }
    }
}
