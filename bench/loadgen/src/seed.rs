//! Bulk seeding: N keys in keyward's format, COPY'd into `keys`.
//!
//! The rows look like what `Issue` writes (id, project, label, digest, hint,
//! scopes), so the server's lookups do exactly the work they do in
//! production. The database must already be migrated (`keyward migrate`).

use std::{
    io::{BufWriter, Write},
    path::PathBuf,
    time::Instant,
};

use anyhow::Context;
use chrono::{SecondsFormat, Utc};
use keyward::key::{Digest, KeyId, format};
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
    let mut out = BufWriter::new(
        std::fs::File::create(&args.out)
            .with_context(|| format!("cannot write {}", args.out.display()))?,
    );

    let mut copy = tx
        .copy_in_raw(
            "COPY keys (id, project, label, label_held, digest, hint, scopes, metadata, \
             created_at, updated_at) FROM STDIN WITH (FREEZE)",
        )
        .await?;
    let mut buffer = Vec::with_capacity(CHUNK * 256);
    for i in 0..args.keys {
        let key = format::generate(&prefix);
        let digest = Digest::of(format::parse(key.expose()).expect("generated keys parse"));
        // COPY text format: tab-separated; `\\x…` is bytea's hex input with
        // COPY's backslash escaped.
        writeln!(
            buffer,
            "{}\t{}\tbench-{i}\tt\t\\\\x{}\t{}\t{}\t{{}}\t{now}\t{now}",
            KeyId::generate(),
            args.project,
            hex::encode(digest.as_bytes()),
            format::hint(&key),
            scopes,
        )?;
        writeln!(out, "{}", key.expose())?;
        if buffer.len() >= CHUNK * 200 {
            copy.send(std::mem::take(&mut buffer)).await?;
        }
    }
    if !buffer.is_empty() {
        copy.send(buffer).await?;
    }
    let rows = copy.finish().await?;
    out.flush()?;
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
            "copy_seconds": copied.as_secs_f64(),
            "seconds": total.as_secs_f64(),
            "keys_file": args.out,
        })
    );
    Ok(())
}
