"""One benchmark run of keyward, driven by bench/run (which builds the
binaries and starts Postgres and Redis first).

Every scenario is measured as req/s, p50/p99/p99.9 latency and server CPU
per request, and reported both as absolute figures and as a ratio to the
baseline measured in the same run: `grpc.health.v1.Health/Check` served by
the same keyward process, i.e. what tonic itself costs. The machine is
shared and noisy; ratios are what carry from one run to the next.

To add a scenario, add a `Scenario(...)` to SCENARIOS (and, if it needs a
differently configured server, an entry to `servers()`). A scenario with a
`reference` is also compared with that scenario directly ("With and
without" in the report).
"""

from __future__ import annotations

import argparse
import datetime
import json
import time

from harness.callgrind import run_callgrind
from harness.chart import chart
from harness.figures import comparisons, f_ms, f_x, goal_verdicts, rows
from harness.processes import Keyward, log
from harness.report import splice, write_report
from harness.revocation import revocation_verdicts, run_revocation
from harness.run import Run
from harness.scenarios import SCENARIOS, servers
from harness.settings import ROOT


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=100_000, help="keys seeded into Postgres (default 100,000)")
    parser.add_argument("--duration", type=float, default=4,
                        help="measured seconds per scenario, tool and round (default 4)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds: each measures the baseline, then every scenario (default 3)")
    parser.add_argument("--warmup", type=float, default=1,
                        help="warm-up seconds before each measurement (default 1)")
    parser.add_argument("--scenarios", default="all",
                        help="comma-separated: " + ",".join(s.name for s in SCENARIOS) + " (default all)")
    parser.add_argument("--out", default="docs/BENCHMARKS.md", help="report (default docs/BENCHMARKS.md)")
    parser.add_argument("--connections", type=int, default=4, help="HTTP/2 connections (default 4)")
    parser.add_argument("--streams", type=int, default=32, help="concurrent streams per connection (default 32)")
    parser.add_argument("--hot-keys", type=int, default=10_000, help="distinct keys of the cache-hit scenarios")
    parser.add_argument("--memory-keys", type=int, default=None,
                        help="keys put in L1 to measure bytes per cached key (default: --keys, "
                        "at most 1,000,000; 0 skips)")
    parser.add_argument("--profile", default=",".join(["baseline"] + [s.name for s in SCENARIOS if s.goal]),
                        help="scenarios to profile with perf after measuring them (default: the "
                        "baseline and those with a goal, %(default)s)")
    parser.add_argument("--no-profile", action="store_true", help="profile nothing")
    parser.add_argument("--no-h2load", action="store_true", help="measure with loadgen only")
    parser.add_argument("--no-callgrind", action="store_true",
                        help="skip the instruction counts under callgrind")
    parser.add_argument("--callgrind-requests", type=int, default=2000,
                        help="requests per kind counted under callgrind (default 2,000)")
    parser.add_argument("--callgrind-keys", type=int, default=200,
                        help="distinct keys of the callgrind requests (default 200)")
    parser.add_argument("--no-revocation-lag", action="store_true",
                        help="skip the revocation lag between two replicas")
    parser.add_argument("--revocations", type=int, default=200,
                        help="revocations per phase (idle, under load) of the lag (default 200)")
    parser.add_argument("--lag-load", type=float, default=0.8,
                        help="each replica's load during the lag, a fraction of its capacity (default 0.8)")
    parser.add_argument("--lag-keys", type=int, default=2000,
                        help="distinct keys of the load beside the lag (default 2,000)")
    # Set by bench/run.
    parser.add_argument("--keyward", required=True, help=argparse.SUPPRESS)
    parser.add_argument("--loadgen", required=True, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", required=True, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", required=True, help=argparse.SUPPRESS)
    parser.add_argument("--work", required=True, help=argparse.SUPPRESS)
    parser.add_argument("--redis-pid", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--started", type=float, default=time.time(), help=argparse.SUPPRESS)
    parser.add_argument("--build-seconds", type=float, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--command", default="bench/run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.hot_keys = min(args.hot_keys, args.keys)
    if args.memory_keys is None:
        args.memory_keys = min(args.keys, 1_000_000)

    known = {s.name for s in SCENARIOS}
    wanted = known if args.scenarios == "all" else set(args.scenarios.split(","))
    if wanted - known:
        parser.error(f"unknown scenarios: {', '.join(sorted(wanted - known))}")
    if "baseline" not in wanted:
        wanted.add("baseline")
        log("the baseline is always measured: every figure is relative to it")
    for s in SCENARIOS:
        if s.name in wanted and s.reference and s.reference not in wanted:
            wanted.add(s.reference)
            log(f"{s.name} is compared with {s.reference}: measuring it too")

    profiled = set() if args.no_profile else set(args.profile.split(","))
    run = Run(args)
    for s in SCENARIOS:
        if s.name in wanted and s.server is None:
            run.unavailable[s.name] = s.needs(run) if s.needs else "not written yet"
            log(f"{s.name}: {run.unavailable[s.name]}")
    run.seed(args.hot_keys if any(s.keys == "limited" for s in SCENARIOS if s.name in wanted) else 0)

    configs = servers(args.redis_url)
    order = []
    for s in SCENARIOS:
        if s.name in wanted and s.server and s.server not in order:
            order.append(s.server)
    for name in order:
        block = [s for s in SCENARIOS if s.name in wanted and s.server == name]
        started: list[Keyward] = []
        try:
            for process in [name] + sorted({s.process for s in block if s.process}):
                started.append(run.start(process, configs[process]))
            server, others = started[0], {k.name: k for k in started[1:]}
            if name == "cached":
                # Idle RSS: keyward as deployed (Postgres, default L1), before
                # any request.
                run.memory["idle_rss_kib"] = server.idle_rss_kib
            run.run_block(server, block, others)
            for s in block:
                if s.name in profiled:
                    run.run_profile(others[s.process] if s.process else server, s)
        finally:
            for keyward in started:
                run.stop(keyward)
    if not args.no_callgrind:
        run_callgrind(run)
    if not args.no_revocation_lag:
        run_revocation(run)
    if args.memory_keys:
        run.run_memory()

    out = ROOT / args.out
    raw_path = out.parent / "benchmarks.json"
    previous = None
    if raw_path.exists():
        try:
            previous = json.loads(raw_path.read_text())
        except ValueError:
            previous = None
    wall = time.time() - args.started
    section = write_report(run, wall, previous)
    splice(out, section)
    chart(rows(run.results), out.parent / "benchmarks.png")
    raw_path.write_text(json.dumps({
        "when": datetime.datetime.now().isoformat(timespec="seconds"),
        "args": {k: v for k, v in vars(args).items() if k not in ("database_url", "redis_url")},
        "wall_seconds": wall,
        "seed": run.seed_result,
        "results": run.results,
        "memory": run.memory,
        "profiles": run.profiles,
        "comparisons": comparisons(run.results),
        "spans": run.spans,
        "callgrind": run.callgrind,
        "revocation": run.revocation,
        "unavailable": run.unavailable,
        "notes": run.notes,
    }, indent=1, default=str) + "\n")

    # The summary on the terminal, with the previous run's ratios beside.
    prev = {(r["scenario"], r["tool"]): r for r in rows(previous["results"])} if previous else {}
    print(f"\n{'scenario':<16}{'tool':<9}{'req/s':>10}{'×base':>8}{'p99 ms':>9}{'×base':>8}"
          f"{'CPU µs':>8}{'×base':>8}   previous run ×base (req/s, p99, CPU)")
    for r in rows(run.results):
        p = prev.get((r["scenario"], r["tool"]))
        print(f"{r['scenario']:<16}{r['tool']:<9}{r['rps']:>10,.0f}{f_x(r['x_rps']):>8}"
              f"{f_ms(r['p99']):>9}{f_x(r['x_p99']):>8}"
              f"{'–' if r['cpu'] is None else format(r['cpu'], '.1f'):>8}{f_x(r['x_cpu']):>8}   "
              + (f"{f_x(p['x_rps'])}, {f_x(p['x_p99'])}, {f_x(p['x_cpu'])}" if p else "–"))
    compared = comparisons(run.results)
    for c in compared:
        print(f"{c['scenario']} ÷ {c['reference']} ({c['tool']}): req/s {f_x(c['x_rps'])}, "
              f"p99 {f_x(c['x_p99'])}, keyward CPU {f_x(c['x_cpu'])}")
    for name, spans in run.spans.items():
        print(f"OTLP sink ({name}): {spans['spans']:,} spans for {spans['calls']:,} Verify calls")
    if run.callgrind and "probes" in run.callgrind:
        for name, p in run.callgrind["probes"].items():
            print(f"callgrind {name}: {p['ir_per_req']:,.0f} Ir/request")
    for text, measured, met in (goal_verdicts(rows(run.results), run.memory, args.keys, compared)
                                + revocation_verdicts(run)):
        print(f"{'MET ' if met else ('MISS' if met is False else '  – ')} {text}: {measured}")
    print(f"\nwrote {out}, {out.parent / 'benchmarks.png'}, {raw_path} in {wall / 60:.1f} min total")
    return 0
