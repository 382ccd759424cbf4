"""Reading a CPU profile: which frames tell where a request's time goes."""

from __future__ import annotations

import re


# Frames whose inclusive time tells where a request's time goes: (what,
# symbol pattern); the first matching frame, the one with most samples, wins.
INCLUSIVE = [
    ("HTTP/2 connection task (hyper)", r"^<hyper::proto::h2::server::Server<.*>::poll$"),
    ("one stream: handler + response (hyper)", r"^<hyper::proto::h2::server::H2Stream<.*>::poll$"),
    ("socket writes (writev)", r"^__GI___writev$|^__writev$|^writev$"),
    ("socket reads (recv)", r"^__libc_recv$|^__libc_recvfrom$|^recv$"),
    ("gRPC KeyService handler (tonic, decode + encode)",
     r"^<keyward::proto::v1::key_service_server::KeyServiceServer<T> as tower_service::Service.*::call::\{\{closure\}\}$"),
    ("gRPC Health handler (tonic)", r"health_server::HealthServer<T> as tower_service::Service.*::call::\{\{closure\}\}$"),
    ("KeyService::verify (keyward)", r"^<keyward::grpc::key_service::KeyServiceImpl as .*>::verify::\{\{closure\}\}$"),
    ("KeyLookup::find (keyward, all tiers)", r"^keyward::cache::KeyLookup::find::\{\{closure\}\}$"),
    ("L1 get (keyward CLOCK cache)", r"^keyward::cache::clock::Clock<K,V>::get"),
    ("L1 insert (keyward CLOCK cache)", r"^keyward::cache::clock::Clock<K,V>::insert"),
    ("L2 read (keyward RedisCache)", r"^keyward::cache::redis::RedisCache::get"),
    ("Redis client (redis-rs)", r"^<?redis::aio::"),
    ("rate limit: Lua script round trip (keyward RedisLimiter)", r"^keyward::limit::redis::RedisLimiter::check"),
    ("ext_authz Check handler (keyward)", r"^<keyward::grpc::ext_authz::ExtAuthzService as .*>::check::\{\{closure\}\}$"),
    ("spans: tracing-opentelemetry layer", r"^<?tracing_opentelemetry::"),
    ("spans: OpenTelemetry SDK (span processor, batching)", r"^<?opentelemetry_sdk::"),
    ("spans: OTLP export (opentelemetry-otlp)", r"^<?opentelemetry_otlp::"),
    ("store read (keyward)", r"^<keyward::store::(postgres::PgStore|timeout::TimeoutStore) as keyward::store::KeyStore>::find_by_digest"),
    ("Postgres client (sqlx)", r"^<?sqlx_postgres::connection::"),
    ("SHA-256 (sha2)", r"^sha2::"),
    ("key parse + checksum (keyward)", r"^keyward::key::format::parse$"),
    ("decision (keyward)", r"^keyward::decision::decide"),
    ("Verify response (keyward)", r"^keyward::grpc::convert::verify_response"),
]


def crate_of(kind: str, symbol: str) -> str:
    if kind == "k":
        return "kernel"
    s = symbol
    s = re.sub(r"^<", "", s)
    s = re.sub(r"^(core::ptr::drop_in_place)<", "", s)
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", s)
    if m:
        return m.group(1)
    if s.startswith("0x"):
        return "unresolved"
    if re.match(r"_?_?(mem|str|malloc|free|cfree|realloc|calloc|_int_|pthread|__lll|__GI)", s):
        return "libc (memcpy, malloc, …)"
    return s.split("(")[0][:40]
