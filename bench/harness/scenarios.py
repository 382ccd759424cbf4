"""What is measured: the scenarios, their goals, and the servers they run against."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Callable, Optional, TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: run.py imports this module
    from harness.run import Run


# --------------------------------------------------------------------------
# What is measured


@dataclass
class Goal:
    """A goal of the issue, relative to the baseline (or, with
    `of_reference`, to the scenario's reference)."""

    min_throughput: float  # fraction of the baseline's (reference's) req/s
    max_p99: Optional[float] = None  # multiple of the baseline's (reference's) p99
    note: str = ""
    of_reference: bool = False


@dataclass
class Scenario:
    name: str
    title: str
    # Key of servers(): how keyward is configured for it, and whose baseline
    # it is measured against; None when this harness does not measure it
    # (`needs` then says why).
    server: Optional[str]
    rpc: str = "verify"  # verify | check (ext_authz) | health
    # hot: the first --hot-keys keys; limited: as many keys seeded with a
    # rate limit; all: every seeded key; unknown: a fresh unissued key per
    # request; none: Health/Check.
    keys: str = "hot"
    expect: str = "allowed"
    prime: bool = False  # verify every key once before the warm-up
    h2load: bool = False  # also measure with h2load (one key, pre-encoded)
    goal: Optional[Goal] = None
    # Returns None when the feature is there, else why the scenario cannot
    # run yet.
    needs: Optional[Callable[["Run"], Optional[str]]] = None
    describe: str = ""
    # Another scenario this one is compared with directly, round by round
    # (measured too whenever this one is); `compare` says what the ratio
    # shows.
    reference: Optional[str] = None
    compare: str = ""
    # Key of servers(): serve this scenario from a second keyward process so
    # configured, started alongside `server`'s and measured in the same
    # rounds against `server`'s baseline (for a setting that changes nothing
    # on Health/Check, such as span export).
    process: Optional[str] = None


# The rate limit of the rate_limit scenario's keys: (calls per second,
# burst). 1,000,000/s is the most keyward accepts (one call per µs); the
# burst lets a key's schedule run up to a second ahead, so the 128 calls in
# flight, whose timestamps reach Redis out of order, are never denied.
RATE_LIMIT = (1_000_000, 1_000_000)


def probe_envoy(run: "Run") -> Optional[str]:
    where = ("measured through a real Envoy (with wrk) by `bench/ext_authz/run`, not by this "
             "harness: see the Envoy ext_authz section")
    if b"envoy.service.auth.v3.Authorization" not in run.binary_bytes():
        return "not available: keyward serves no envoy.service.auth.v3.Authorization"
    if not (shutil.which("envoy") and shutil.which("wrk")):
        where += " (it needs `envoy` and `wrk`, not installed here)"
    return where + "; keyward's Check without Envoy is *Check (ext_authz), L1 hit* above"


SCENARIOS = [
    Scenario(
        "baseline", "Health/Check (baseline)", "cached", rpc="health", keys="none", h2load=True,
        describe="`grpc.health.v1.Health/Check` on the same keyward process: tonic's own cost",
    ),
    Scenario(
        "l1_hit", "Verify, L1 hit", "cached", prime=True, h2load=True,
        goal=Goal(0.90, 1.2),
        describe="Verify of keys already in the in-process cache",
    ),
    Scenario(
        "check_l1_hit", "Check (ext_authz), L1 hit", "cached", rpc="check", prime=True, h2load=True,
        reference="l1_hit",
        describe="`envoy.service.auth.v3.Authorization/Check` called directly (no Envoy), shaped "
        "as Envoy's ext_authz filter sends it: the key in an `x-api-key` header, "
        "`keyward_scopes: orders:read` as the route's context extension, the same keys as "
        "*Verify, L1 hit*; an answer counts when it is an OK response",
        compare="Check (ext_authz, no Envoy) ÷ Verify, same keys in L1, same process",
    ),
    Scenario(
        "connect_l1_hit", "Verify over Connect (JSON), L1 hit", "cached", rpc="connect-verify",
        prime=True, reference="l1_hit", goal=Goal(0.70, of_reference=True),
        describe="the same Verify as *Verify, L1 hit*, as `POST /keyward.v1.KeyService/Verify` "
        "with `application/json` (the Connect protocol) on the same HTTP/2 connections: the "
        "JSON decoding and encoding and the HTTP side of the port",
        compare="Connect-JSON Verify ÷ gRPC Verify, same keys in L1, same process",
    ),
    Scenario(
        "unknown_flood", "Verify, flood of unknown keys", "flood", keys="unknown",
        expect="unknown",
        describe="a fresh well-formed key that no one issued with every request: "
        "each is a miss of L1, one Postgres lookup (batched with the other misses in flight), and a negative L1 entry",
    ),
    Scenario(
        "l2_hit", "Verify, L2 (Redis) hit, L1 off", "l2", prime=True,
        goal=Goal(0.50),
        describe="`--l1-capacity 0 --redis-url …`: every Verify reads Redis",
    ),
    Scenario(
        "store", "Verify, store path, caches off", "store", keys="all",
        goal=Goal(0.25, note="goal set for 1,000,000 keys in Postgres"),
        describe="`--l1-capacity 0`, no Redis: every Verify looks its key up in Postgres (concurrent lookups batched into one query), random keys among all seeded",
    ),
    Scenario(
        "rate_limit_off", "Verify, L1 hit, Redis on, no limit", "limited", prime=True,
        describe="the *rate limit* process (`--redis-url …`), keys without a limit: the "
        "\"without\" of the next row; L1 hits, so Redis is not read",
    ),
    Scenario(
        "rate_limit", "Verify with a Redis rate limit", "limited", keys="limited", prime=True,
        reference="rate_limit_off",
        describe=f"the same process, keys seeded like the others but with the rate limit "
        f"`keys issue --rate-limit {RATE_LIMIT[0]}/s --burst {RATE_LIMIT[1]}` stores (the "
        "highest rate keyward accepts, and a burst wide enough that concurrent calls never "
        "deny): an L1 hit, then one Redis round trip per Verify (the limiter's Lua script, "
        "whose read of the key's schedule is the Redis GET counted here)",
        compare="Verify with a Redis-backed rate limit ÷ without, same process, same round",
    ),
    Scenario(
        "span_export", "Verify with span export on", "cached", process="otel", prime=True,
        reference="l1_hit", goal=Goal(0.85, of_reference=True),
        describe="*Verify, L1 hit* on a second keyward process, the same flags plus "
        "`OTEL_EXPORTER_OTLP_ENDPOINT` (`OTEL_TRACES_SAMPLER=always_on`, the SDK's default "
        "batching) pointing at `keyward-loadgen sink`, an OTLP/gRPC collector that decodes and "
        "counts the spans and discards them: every Verify makes and exports one "
        "`keyward.verify` span. The sink stands for a collector on another machine, so it runs "
        "on the load generator's core, where its decoding (its CPU per Verify is in the "
        "dependencies' column) also slows the client a little: the keyward CPU ratio under "
        "*With and without* is the figure free of that. Started with the first process and "
        "measured in the same rounds, against the first process's baseline (Health/Check makes "
        "no span)",
        compare="Verify with span export on (100% sampling) ÷ off (*Verify, L1 hit*), same round",
    ),
    Scenario(
        "envoy_ext_authz", "Envoy ext_authz", None, needs=probe_envoy,
    ),
]


# Flags of every benchmark server. The default timeouts (300 ms for the
# store, 100 ms for Redis) trip keyward's breakers on this shared machine
# when another process takes the core for a moment under 128 requests in
# flight; the scenarios measure the tiers, not the breakers, so they are
# raised. Trips that still happen are reported.
COMMON_FLAGS = ["--lookup-timeout", "2s", "--redis-timeout", "1s"]


@dataclass
class Server:
    """How `keyward serve` is started for a group of scenarios."""

    flags: list[str]
    # Export spans to an OTLP sink of our own (keyward-loadgen sink).
    otlp_sink: bool = False


def servers(redis_url: str) -> dict[str, Server]:
    """Flags of `keyward serve` per configuration (database, listen,
    --no-migrate and COMMON_FLAGS are added for all)."""
    return {
        # L1 on (default capacity 1,000,000) and fresh for the whole run.
        "cached": Server(["--l1-ttl", "1h"]),
        # The same, on a process of its own: the flood fills L1 with negative
        # entries whose expiry would otherwise cost the L1-hit rounds.
        "flood": Server(["--l1-ttl", "1h"]),
        "l2": Server(["--l1-capacity", "0", "--redis-url", redis_url, "--redis-ttl", "1h"]),
        "store": Server(["--l1-capacity", "0"]),
        # As "cached", with Redis: the L2 (not read on an L1 hit) and the
        # shared rate limiter.
        "limited": Server(["--l1-ttl", "1h", "--redis-url", redis_url, "--redis-ttl", "1h"]),
        # As "cached", exporting every decision's span.
        "otel": Server(["--l1-ttl", "1h"], otlp_sink=True),
    }
