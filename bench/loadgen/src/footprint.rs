//! The L1's memory per key, without a server around it: records shaped as
//! the Postgres store returns them, then the same records in keyward's
//! `LocalCache`. Splits bytes per cached key into the record and the cache
//! structure around it.

use std::sync::Arc;

use keyward::{
    cache::{Entry, LocalCache, LocalOptions},
    key::{Digest, KeyId},
    record::KeyRecord,
};

#[derive(clap::Args)]
pub struct FootprintArgs {
    /// Records to cache.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub async fn run(args: FootprintArgs) -> anyhow::Result<()> {
    let n = args.keys;
    let mut pairs: Vec<(Digest, Entry)> = Vec::with_capacity(n);
    let start = rss_kib();
    for i in 0..n {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
        bytes[8..16].copy_from_slice(&(i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
        // As PgStore::find_by_digest builds it: the id inline, the project
        // name and scope list interned.
        let record = KeyRecord {
            id: KeyId::from_trusted(KeyId::generate().as_str().to_owned()),
            project: keyward::intern::project("bench"),
            scopes: keyward::intern::scopes(["orders:*", "users:read"]),
            expires_at: None,
            revoked_at: None,
            limits: None,
            cidrs: Box::new([]),
        };
        pairs.push((
            Digest::from_bytes(bytes),
            Entry {
                record: Some(Arc::new(record)),
                confirmed_at: 0,
                fetched_at: 0,
            },
        ));
    }
    let with_records = rss_kib();
    let cache = LocalCache::new(&LocalOptions {
        capacity: (n as u64).max(1) * 11 / 10,
        ..LocalOptions::default()
    });
    let with_empty_cache = rss_kib();
    for (digest, entry) in &pairs {
        let entry = entry.clone();
        cache
            .refresh(*digest, async move |_| {
                Ok::<_, std::convert::Infallible>(Some(entry))
            })
            .await
            .map_err(|_| anyhow::anyhow!("insert failed"))?;
    }
    let with_cache = rss_kib();
    let kib = |a: u64, b: u64| (b.saturating_sub(a) * 1024) as f64 / n as f64;
    let pair_bytes = std::mem::size_of::<(Digest, Entry)>() as f64;
    println!(
        "{}",
        serde_json::json!({
            "keys": n,
            "entries": cache.entry_count(),
            "record_bytes_per_key": kib(start, with_records) - pair_bytes,
            "empty_cache_bytes": kib(with_records, with_empty_cache) * n as f64,
            "cache_bytes_per_key": kib(with_empty_cache, with_cache),
            "total_bytes_per_key": kib(start, with_cache) - pair_bytes,
        })
    );
    Ok(())
}
