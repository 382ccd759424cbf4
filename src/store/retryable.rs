//! Which database errors mean "the database could not do it now" rather than
//! "this request is wrong": those become `StoreError::Unavailable` (gRPC
//! UNAVAILABLE), so clients retry instead of treating a lost connection as a
//! bug. In every one of these cases the transaction did not commit (Postgres
//! rolls back a transaction whose session ends or whose statement fails), so
//! a write that meets one is never reported as done.

/// SQLSTATEs (Postgres) that say the server, the connection or a conflict
/// with another transaction stopped the statement, not the statement itself.
pub(super) fn is_transient_sqlstate(code: &str) -> bool {
    // Class 08: connection exceptions (connection failure, rejected, …).
    code.starts_with("08")
        || matches!(
            code,
            // admin_shutdown (pg_terminate_backend, fast shutdown),
            // crash_shutdown, cannot_connect_now (starting up / recovery).
            "57P01" | "57P02" | "57P03"
            // idle_session_timeout, database_dropped: the session is gone.
            | "57P05" | "57P04"
            // query_canceled: statement_timeout or a cancel request.
            | "57014"
            // serialization_failure, deadlock_detected: safe to retry.
            | "40001" | "40P01"
            // lock_not_available (lock_timeout).
            | "55P03"
            // idle_in_transaction_session_timeout.
            | "25P03"
            // too_many_connections, out of memory / disk on the server.
            | "53300" | "53200" | "53100"
            // read_only_sql_transaction: a failover left us on a standby.
            | "25006"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_and_shutdown_errors_are_transient() {
        for code in [
            "57P01", "57P02", "57P03", "08000", "08003", "08006", "08001", "08P01", "57014",
            "40001", "40P01", "55P03", "25P03", "53300", "25006",
        ] {
            assert!(is_transient_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn errors_of_the_request_itself_are_not() {
        // unique_violation, syntax error, undefined table, invalid text,
        // foreign key, prepared statement already exists / does not exist.
        for code in [
            "23505", "42601", "42P01", "22P02", "23503", "42P05", "26000",
        ] {
            assert!(!is_transient_sqlstate(code), "{code}");
        }
    }
}
