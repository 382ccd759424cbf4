"""Revocation lag between two replicas, idle and under load: revoke on A,
first denial on B (issue 18: p99 ≤ 10 ms with both replicas serving Verify
at 80% of their capacity).

Two keyward processes share the benchmark database and the private Redis
(L2 and the invalidation bus); `keyward-loadgen revoke-lag` does the rest
(see bench/loadgen/src/revoke_lag.rs).
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Optional

from harness.processes import Keyward, log
from harness.run import Run
from harness.settings import CLK_TCK

GOAL_P99_MS = 10.0


def admin_key(run: Run) -> str:
    """A fresh all-projects admin key, straight into the database (the seed
    emptied the keys table). Kept in memory, passed on in the environment."""
    env = dict(os.environ, KEYWARD_DATABASE_URL=run.args.database_url)
    p = subprocess.run(
        [str(run.args.keyward), "--log", "warn", "admin", "bootstrap",
         "--label", f"bench-revoke-lag-{os.getpid()}-{int(time.time())}"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    if p.returncode != 0 or not p.stdout.strip():
        # stderr names the key's id and hint only, never the secret.
        raise RuntimeError(f"keyward admin bootstrap failed: {p.stderr.strip()[-300:]}")
    return p.stdout.strip().splitlines()[-1]


def run_revocation(run: Run) -> None:
    args = run.args
    flags = ["--l1-ttl", "1h", "--redis-url", args.redis_url, "--redis-ttl", "1h",
             "--namespace", f"bench-lag-{os.getpid()}"]
    admin = admin_key(run)
    keys = min(args.lag_keys, args.hot_keys)
    replicas: list[Keyward] = []
    try:
        for name in ("replica-a", "replica-b"):
            replicas.append(Keyward(run, name, flags))
        a, b = replicas
        for replica in replicas:
            run.prime(replica, 0, keys)
        log(f"revocation lag: {args.revocations} revocations idle, then under load at "
            f"{args.lag_load:.0%} of capacity")
        result = run.loadgen(
            "revoke-lag", "--a", a.addr, "--b", b.addr, "--a-pid", str(a.pid), "--b-pid", str(b.pid),
            "--revocations", str(args.revocations), "--load-fraction", str(args.lag_load),
            "--keys-file", str(run.keys_file), "--key-count", str(keys),
            "--connections", str(max(1, args.connections // 2)), "--streams", str(args.streams),
            timeout=600, env={"KEYWARD_ADMIN_KEY": admin},
        )
        for phase in ("idle", "loaded"):
            seconds = result[f"{phase}_seconds"]
            result[f"{phase}_cpu_share"] = [
                None if t is None else t / CLK_TCK / seconds for t in result[f"{phase}_cpu_ticks"]]
        for replica, load in zip(replicas, result["load"]):
            replica.calls += load["ok"] + load["wrong"] + load["errors"]
        run.revocation = result
        idle, loaded = result["idle"], result["loaded"]
        log(f"revocation lag idle: p50 {idle['p50_ms']:.2f} ms, p99 {idle['p99_ms']:.2f} ms; under "
            f"load: p50 {loaded['p50_ms']:.2f} ms, p99 {loaded['p99_ms']:.2f} ms, "
            f"{result['load'][0]['achieved_rps']:,.0f} + {result['load'][1]['achieved_rps']:,.0f} req/s")
    finally:
        for replica in replicas:
            run.stop(replica)


def revocation_verdicts(run: Run) -> list[tuple[str, str, Optional[bool]]]:
    r = run.revocation
    if not r:
        return []
    loaded = r["loaded"]
    text = (f"Revocation lag (revoke on A, first denial on B) with both replicas at "
            f"{r['load_fraction']:.0%} of capacity: p99 ≤ {GOAL_P99_MS:g} ms")
    measured = (f"p99 {loaded['p99_ms']:.2f} ms over {loaded['count']} revocations "
                f"(idle: {r['idle']['p99_ms']:.2f} ms)")
    met = loaded["p99_ms"] <= GOAL_P99_MS and loaded["over_limit"] == 0 and r["load_covered_revocations"]
    return [(text, measured, met)]


def share(x: Optional[float]) -> str:
    return "–" if x is None else f"{x:.0%}"


def revocation_lines(run: Run, previous: Optional[dict]) -> list[str]:
    r = run.revocation
    if not r:
        return []
    prev = (previous or {}).get("revocation")
    idle, loaded = r["idle"], r["loaded"]
    cap, load = r["capacity_rps"], r["load"]
    lines = [
        "### Revocation lag under load", "",
        "Two keyward replicas (`--l1-ttl 1h --redis-url … --redis-ttl 1h`, the private Redis "
        "carrying the invalidation bus; the same Postgres), both on keyward's core. "
        f"`keyward-loadgen revoke-lag` issues {r['revocations']} keys per phase on A, verifies each "
        "into B's L1 twice 200 ms apart (as tests/common/revocation.rs does), then one key at a "
        "time: Revoke on A (admin key), poll Verify on B every 0.2 ms (about 1 ms: tokio's "
        "timer) until it denies, check that A denies. The lag runs from Revoke's return to B's "
        "first denial. Idle: nothing else runs. Under load: first each replica's capacity, "
        f"closed-loop Verify L1 hits on both at once for {r['capacity_seconds']:g} s "
        f"({r['connections']} connections × {r['streams']} streams each; the two share a core, "
        "so their capacities alone would add up to twice what the pair can serve), then an "
        f"open-loop load of {r['load_fraction']:.0%} of it on each (calls scheduled every "
        "millisecond whether or not earlier ones answered, latency from the scheduled time; "
        "bounded in time, so in calls) on a thread of its own while the revocations run.",
        "",
        "| Phase | Revocations | Lag p50 ms | Lag p99 ms | Lag max ms | Over the 2 s limit "
        "| keyward CPU A, B | previous run p99 ms |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, title in (("idle", "Idle"), ("loaded", f"Both replicas at {r['load_fraction']:.0%}")):
        lag, cpu = r[name], r[f"{name}_cpu_share"]
        before = prev[name]["p99_ms"] if prev and name in prev else None
        lines.append(
            f"| {title} | {lag['count']} | {lag['p50_ms']:.2f} | {lag['p99_ms']:.2f} | "
            f"{lag['max_ms']:.2f} | {lag['over_limit']} | {share(cpu[0])}, {share(cpu[1])} | "
            + (f"{before:.2f} |" if before is not None else "– |"))
    ratio = loaded["p99_ms"] / idle["p99_ms"] if idle["p99_ms"] else None
    busy = r["loaded_cpu_share"]
    lines += [
        "",
        ("" if ratio is None else f"p99 under load ÷ idle: {ratio:.2f}×. ")
        + f"Revocations under load took {r['loaded_seconds']:.1f} s"
        + ("." if None in busy else
           f", with the two replicas using {busy[0] + busy[1]:.0%} of keyward's core"
           + ("." if busy[0] + busy[1] >= 0.6 else
              ": the capacity is the pair's as the load generator (one tonic client on one "
              "core) can drive it, so here the client's core, not keyward's, set it.")),
        "",
        "| Replica | Capacity req/s | Target req/s | Achieved req/s | Verify p50 ms | Verify p99 ms "
        "| Shed | Wrong + errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, c, l in zip("AB", cap, load):
        lines.append(
            f"| {name} | {c:,.0f} | {l['target_rps']:,.0f} | {l['achieved_rps']:,.0f} | "
            f"{l['latency_us']['p50'] / 1000:.2f} | {l['latency_us']['p99'] / 1000:.2f} | "
            f"{l['shed']:,} | {l['wrong'] + l['errors']} |")
    lines.append("")
    if not r["load_covered_revocations"]:
        lines += ["The load stopped at its time bound before the last revocation: the last ones "
                  "ran on idle replicas.", ""]
    return lines
