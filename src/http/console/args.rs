//! The console's flags.

use std::time::Duration;

fn session_ttl(value: &str) -> Result<Duration, String> {
    match humantime::parse_duration(value) {
        Ok(d) if d < Duration::from_secs(60) => Err("at least 1m".to_owned()),
        Ok(d) if d > Duration::from_secs(30 * 24 * 3600) => Err("at most 30 days".to_owned()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct ConsoleArgs {
    /// Serve the web console under /ui/ on the main port (sign in with an
    /// admin key). `--console false` turns it off: /ui/ is then 404.
    #[arg(
        long,
        env = "KEYWARD_CONSOLE",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub console: bool,

    /// How long a console session lasts after sign-in (1m to 30 days). A
    /// session also ends at sign-out, and as soon as its admin key stops
    /// being valid (revoked, expired).
    #[arg(long, env = "KEYWARD_CONSOLE_SESSION_TTL", default_value = "8h", value_parser = session_ttl)]
    pub console_session_ttl: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ttl_is_bounded() {
        assert_eq!(session_ttl("8h"), Ok(Duration::from_secs(8 * 3600)));
        assert!(session_ttl("10s").is_err());
        assert!(session_ttl("31d").is_err());
        assert!(session_ttl("soon").is_err());
    }
}
