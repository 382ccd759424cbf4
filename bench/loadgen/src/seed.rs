//! Bulk seeding: N keys in keyward's format, COPY'd into `keys`.
//!
//! The rows look like what `Issue` writes (id, project, label, digest, hint,
//! scopes), so the server's lookups do exactly the work they do in
//! production. The database must already be migrated (`keyward migrate`).
//!
//! `--limited-keys N` adds N more keys, the same in every other way, with a
//! rate limit (as `keys issue --rate-limit CALLS/PERIOD --burst B` stores
//! it), written to their own file: the rate-limit scenario's keys.

use std::{
    io::{BufWriter, Write},
    path::PathBuf,
    time::Instant,
};

use anyhow::Context;
use chrono::{SecondsFormat, Utc};
use keyward::{
    key::{Digest, KeyId, format},
    proto::v1 as pb,
};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

#[derive(clap::Args)]
pub struct SeedArgs {
    /// Postgres URL of the (migrated) benchmark database. Its `keys` and
    /// `audit_events` tables are emptied first.
    #[arg(long, env = "KEYWARD_DATABASE_URL")]
    database_url: String,
    /// How many keys.
    #[arg(long, default_value_t = 100_000)]
    keys: usize,
    /// The project of every key (its name is also the key prefix).
    #[arg(long, default_value = "bench")]
    project: String,
    /// Scopes every key grants.
    #[arg(long = "scope", default_values = ["orders:*", "users:read"])]
    scopes: Vec<String>,
    /// Where the plaintext keys go, one a line.
    #[arg(long)]
    out: PathBuf,
    /// How many keys with a rate limit, on top of `--keys`.
    #[arg(long, default_value_t = 0)]
    limited_keys: usize,
    /// Where the plaintext rate-limited keys go, one a line.
    #[arg(long)]
    limited_out: Option<PathBuf>,
    /// The rate limit of the limited keys: calls per period...
    #[arg(long, default_value_t = 1_000_000)]
    rate_limit_calls: u32,
    /// ... the period, in ms ...
    #[arg(long, default_value_t = 1000)]
    rate_limit_period_ms: u64,
    /// ... and the burst (calls at once above the rate).
    #[arg(long, default_value_t = 1_000_000)]
    rate_limit_burst: u32,
}

/// The `rate_limit` column of the limited keys, checked as `Issue` checks
/// a rate limit and in the JSON form it stores.
fn rate_limit_column(args: &SeedArgs) -> anyhow::Result<String> {
    let requested = pb::RateLimit {
        limit: args.rate_limit_calls,
        // Milliseconds in a u64 are well within the wire's i64 seconds.
        period: Some(std::time::Duration::from_millis(args.rate_limit_period_ms).into()),
        burst: args.rate_limit_burst,
    };
    let limit = keyward::grpc::convert::rate_limit("rate_limit", &requested)
        .map_err(|e| anyhow::anyhow!("the benchmark's rate limit is refused: {e}"))?;
    Ok(serde_json::to_string(&limit)?)
}

const CHUNK: usize = 20_000;

pub async fn run(args: SeedArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut conn = PgConnection::connect(&args.database_url)
        .await
        .context("cannot connect to the benchmark database")?;
    // One transaction: a seed that fails leaves the table as it was, indexes
    // included.
    let mut tx = conn.begin().await?;
    sqlx::query("TRUNCATE keys, audit_events")
        .execute(&mut *tx)
        .await
        .context("cannot empty the keys table (is the database migrated?)")?;
    // COPY into a table without its secondary indexes, then build them in
    // one sort each: several times faster than maintaining them row by row.
    // Their definitions come from the catalog, so they stay the migration's.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i \
         WHERE i.schemaname = current_schema() AND i.tablename = 'keys' \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (name, _) in &indexes {
        sqlx::raw_sql(AssertSqlSafe(format!("DROP INDEX \"{name}\"")))
            .execute(&mut *tx)
            .await?;
    }

    let prefix = format::prefix_for_project(&args.project);
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let scopes = format!("{{{}}}", args.scopes.join(","));
    let create = |path: &PathBuf| -> anyhow::Result<BufWriter<std::fs::File>> {
        Ok(BufWriter::new(std::fs::File::create(path).with_context(
            || format!("cannot write {}", path.display()),
        )?))
    };
    let mut out = create(&args.out)?;
    // The limited keys: (how many, their file, their rate_limit column).
    let limited = match (&args.limited_out, args.limited_keys) {
        (_, 0) => None,
        (Some(path), n) => Some((n, create(path)?, rate_limit_column(&args)?)),
        (None, _) => anyhow::bail!("--limited-keys needs --limited-out"),
    };

    let mut copy = tx
        .copy_in_raw(
            "COPY keys (id, project, label, label_held, digest, hint, scopes, metadata, \
             rate_limit, created_at, updated_at) FROM STDIN WITH (FREEZE)",
        )
        .await?;
    let mut buffer = Vec::with_capacity(CHUNK * 256);
    let (extra, mut limited_out, limit_column) = match limited {
        Some((n, file, column)) => (n, Some(file), copy_text(&column)),
        None => (0, None, String::new()),
    };
    for i in 0..args.keys + extra {
        let key = format::generate(&prefix);
        let digest = Digest::of(format::parse(key.expose()).expect("generated keys parse"));
        let (label, rate_limit, file) = match &mut limited_out {
            Some(file) if i >= args.keys => (
                format!("bench-limited-{}", i - args.keys),
                limit_column.as_str(),
                file,
            ),
            _ => (format!("bench-{i}"), "\\N", &mut out),
        };
        // COPY text format: tab-separated; `\\x…` is bytea's hex input with
        // COPY's backslash escaped; `\N` is NULL.
        writeln!(
            buffer,
            "{}\t{}\t{label}\tt\t\\\\x{}\t{}\t{}\t{{}}\t{rate_limit}\t{now}\t{now}",
            KeyId::generate(),
            args.project,
            hex::encode(digest.as_bytes()),
            format::hint(&key),
            scopes,
        )?;
        writeln!(file, "{}", key.expose())?;
        if buffer.len() >= CHUNK * 200 {
            copy.send(std::mem::take(&mut buffer)).await?;
        }
    }
    if !buffer.is_empty() {
        copy.send(buffer).await?;
    }
    let rows = copy.finish().await?;
    out.flush()?;
    if let Some(file) = &mut limited_out {
        file.flush()?;
    }
    let copied = started.elapsed();
    for (_, definition) in &indexes {
        sqlx::raw_sql(AssertSqlSafe(definition.clone()))
            .execute(&mut *tx)
            .await
            .context("cannot rebuild an index of keys")?;
    }
    tx.commit().await?;
    sqlx::query("ANALYZE keys").execute(&mut conn).await?;
    let total = started.elapsed();
    println!(
        "{}",
        serde_json::json!({
            "keys": rows,
            "limited_keys": extra,
            "copy_seconds": copied.as_secs_f64(),
            "seconds": total.as_secs_f64(),
            "keys_file": args.out,
            "limited_keys_file": args.limited_out,
        })
    );
    Ok(())
}

/// A value in COPY's text format: backslash, tab and newline escaped.
fn copy_text(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}
