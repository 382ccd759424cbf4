"""Writing docs/BENCHMARKS.md: the generated section and its splice into the file."""

from __future__ import annotations

import datetime
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Optional

from harness.callgrind import callgrind_lines
from harness.figures import comparisons, f_ms, f_x, goal_verdicts, rows
from harness.revocation import revocation_lines, revocation_verdicts
from harness.run import Run
from harness.scenarios import SCENARIOS
from harness.settings import CLIENT_CPU, MARK_BEGIN, MARK_END, ROOT, SECTION, SERVER_CPU


def machine_lines() -> list[str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    h2load = subprocess.run(["h2load", "--version"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("h2load") else "not installed"
    return [
        f"- CPU: {os.cpu_count()} × {cpu}; memory {mem_kib / 1024 / 1024:.0f} GiB; "
        f"Linux {platform.release()}",
        f"- keyward {commit}{' (with uncommitted changes)' if dirty else ''}, release build, {rustc}; {h2load}",
        f"- Pinning: keyward on CPU {SERVER_CPU} (`taskset`, so tokio runs one worker thread), "
        f"the load generator (loadgen or h2load) and the OTLP sink on CPU {CLIENT_CPU}; Postgres "
        "and Redis are not pinned.",
    ]


def write_report(run: Run, wall: float, previous: Optional[dict]) -> str:
    args = run.args
    run_rows = rows(run.results)
    prev_rows = {(r["scenario"], r["tool"]): r for r in rows(previous["results"])} if previous else {}
    base = next((r for r in run_rows if r["scenario"] == "baseline" and r["tool"] == "loadgen"), None)
    lines = [
        SECTION, "", MARK_BEGIN, "",
        f"Measured by `{args.command}` on {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} "
        f"in {wall / 60:.1f} minutes ({args.build_seconds:.0f} s of it building). "
        f"{args.keys:,} keys in Postgres (seeded by "
        f"COPY in {run.seed_result['seconds']:.1f} s"
        + (f", with {run.seed_result['limited_keys']:,} more that have a rate limit"
           if run.seed_result.get("limited_keys") else "")
        + f"); cache-hit scenarios use {args.hot_keys:,} of "
        f"them. Load: {args.connections} HTTP/2 connections × {args.streams} concurrent streams; "
        f"{args.rounds} rounds of {args.duration:g} s measured (after {args.warmup:g} s of warm-up) "
        "per scenario and tool.",
        "",
        "Every figure is also given relative to the **baseline measured in the same run, on the "
        "same keyward process, in the same round**: `grpc.health.v1.Health/Check`, that is, what "
        "tonic and HTTP/2 cost before keyward does any work. Each round measures the baseline and "
        "then every scenario of that process, so noise from the rest of the machine (shared with "
        "other builds) falls on both; the tables give medians over the rounds and, for req/s, the "
        "range of the per-round ratios. Compare ratios between runs, not absolute times"
        + (f" (the baseline's own req/s varied by {base['rps_spread']:.0%} between rounds here)."
           if base and base["rps_spread"] is not None else "."),
        "",
        "Two load generators: `loadgen` (bench/loadgen: a tonic client, keys spread over the set, "
        "every answer decoded and checked) and `h2load` (nghttp2: pre-encoded gRPC bodies, one "
        "key, answers not decoded; it spends far less CPU per request than a tonic client). "
        "CPU per request (utime+stime over the measured window ÷ requests) is given for keyward "
        "and for what it waits on (the Postgres backends of the benchmark database, the "
        "private Redis and, for span export, the OTLP sink); *busy* is the share of one core "
        "that keyward and the load generator used during the window: a side near 100% is the "
        "bottleneck.",
        "",
        noise_line(run_rows),
        "",
        "![Throughput, p99 and server CPU per request relative to the baseline](benchmarks.png)",
        "",
        "### Results",
        "",
    ]
    header = ("| Scenario | Tool | req/s | × baseline (rounds' range) | p50 ms | p99 ms | p99.9 ms "
              "| p99 × baseline | keyward CPU µs/req | CPU × baseline | Postgres + Redis (+ sink) CPU µs/req "
              "| busy: keyward, loadgen | Redis GETs per request |")
    sep = "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    if prev_rows:
        header += " previous run: × baseline req/s, p99, CPU |"
        sep += "--:|"
    lines += [header, sep]
    for r in run_rows:
        spread = ""
        if r["x_rps_range"] and r["scenario"] != "baseline":
            spread = f" ({r['x_rps_range'][0]:.2f}–{r['x_rps_range'][1]:.2f})"
        title = r["title"] if r["server"] == "cached" or r["scenario"] == "baseline" else (
            f"{r['title']} ¹")
        line = (
            f"| {title} | {r['tool']} | {r['rps']:,.0f} | {f_x(r['x_rps'])}{spread} | {f_ms(r['p50'])} | "
            f"{f_ms(r['p99'])} | {f_ms(r['p999'])} | {f_x(r['x_p99'])} | "
            f"{'–' if r['cpu'] is None else format(r['cpu'], '.1f')} | {f_x(r['x_cpu'])} | "
            f"{'–' if r['deps_cpu'] is None else format(r['deps_cpu'], '.1f')} | "
            + (f"{r['server_cpu_share']:.0%}, {r['client_cpu_share']:.0%} |"
               if r.get("client_cpu_share") is not None else "– |")
            + (f" {r['redis_reads']:.2f} |" if r.get("redis_reads") is not None else " – |")
        )
        if prev_rows:
            p = prev_rows.get((r["scenario"], r["tool"]))
            line += (f" {f_x(p['x_rps'])}, {f_x(p['x_p99'])}, {f_x(p['x_cpu'])} |" if p else " – |")
        lines.append(line)
    others = [r for r in run_rows if r["server"] != "cached"]
    if others:
        lines += ["", "¹ On its own keyward process (other flags); its baseline is Health/Check on "
                  "that process: " + ", ".join(
                      f"{r['base_rps']:,.0f} req/s ({r['scenario']})" for r in others) + "."]
    lines.append("")
    for scenario in SCENARIOS:
        if scenario.describe and scenario.name in run.results:
            lines.append(f"- *{scenario.title}*: {scenario.describe}.")
    for name, why in run.unavailable.items():
        title = next(s.title for s in SCENARIOS if s.name == name)
        lines.append(f"- *{title}*: {why}.")
    lines.append("")
    compared = comparisons(run.results)
    if compared:
        lines += comparison_lines(run, compared)
    if run.notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in run.notes] + [""]
    lines += callgrind_lines(run, previous)
    lines += revocation_lines(run, previous)

    lines += ["### Memory", ""]
    m = run.memory
    if m.get("bytes_per_key") is not None:
        lines += [
            "| Idle RSS | RSS before the fill | RSS with the keys in L1 | Keys in L1 | Bytes per cached key |",
            "|--:|--:|--:|--:|--:|",
            f"| {m['idle_rss_kib'] / 1024:.1f} MiB | {m['rss_before_kib'] / 1024:.1f} MiB | "
            f"{m['rss_after_kib'] / 1024:.1f} MiB | {m['keys']:,} | {m['bytes_per_key']:.0f} |",
            "",
        ]
        lines += [
            f"A fresh keyward (`--l1-capacity {max(1_000_000, m['keys'] + m['keys'] // 10):,} "
            f"--l1-ttl 1h`, Postgres, {m['threads']} threads) verifies 1% of the keys (connections "
            f"and buffers warm up), then the other {m['measured_keys']:,} once each "
            f"({m['fill_rps']:,.0f} req/s through Postgres); bytes per key = VmRSS growth ÷ "
            f"{m['measured_keys']:,}.",
            "",
        ]
        if m.get("l1_alone"):
            a = m["l1_alone"]
            lines += [
                f"The L1 alone (`keyward-loadgen l1-footprint --keys {a['keys']}`: the same "
                "`LocalCache`, filled with records shaped as the Postgres store returns them, no "
                f"server): {a['total_bytes_per_key']:.0f} bytes per key, of which "
                f"{a['record_bytes_per_key']:.0f} are the record (`Arc<KeyRecord>` and its id, "
                f"project and scope strings, each its own allocation) and "
                f"{a['cache_bytes_per_key']:.0f} the L1's CLOCK cache around it. A server filled the same "
                "way with L1 off keeps nothing, so the gap between this and the server's figure is "
                "how the allocator places the cache's entries among the fill's short-lived buffers "
                "(see the analysis below).",
                "",
            ]
    else:
        lines += ["Not measured in this run (`--memory-keys 0`).", ""]

    lines += ["### Goals", "", "| Goal | Measured | Met |", "|---|---|---|"]
    for text, measured, met in goal_verdicts(run_rows, m, args.keys, compared) + revocation_verdicts(run):
        lines.append(f"| {text} | {measured} | {'–' if met is None else ('yes' if met else '**no**')} |")
    lines += [
        "",
        "For reference, the issue's plain tonic server (no work, or one SHA-256 and a hash-map "
        "lookup) did about 80,000 req/s with h2load, p99 about 3 ms and 16 µs of server CPU per "
        "request on this kind of machine.",
        "",
    ]

    if run.profiles:
        lines += [
            "### Where the time goes", "",
            "`perf record -F 499 --call-graph dwarf -p <keyward>` for 4 s under each profiled "
            "scenario's load, in a separate run after its measurements. Per scenario: self time by "
            "crate (`kernel` is mostly the socket writes and reads of HTTP/2 frames; `libc` is "
            "memcpy and malloc), the top frames by self time, and the inclusive time of a few "
            "frames that show where the request's time goes.",
            "",
        ]
        for name, p in run.profiles.items():
            title = next(s.title for s in SCENARIOS if s.name == name)
            lines += [f"#### {title}", ""]
            if "error" in p:
                lines += [f"No profile: {p['error']}.", ""]
                continue
            lines += [
                f"{p['samples']} samples. By crate (self): "
                + ", ".join(f"{crate} {pct:.0f}%" for crate, pct in p["by_crate"]) + ".",
                "",
                "| Top frames (self) | % | | Inclusive (self + callees) | % |",
                "|---|--:|---|---|--:|",
            ]
            for i in range(max(len(p["top_self"]), len(p["inclusive"]))):
                left = p["top_self"][i] if i < len(p["top_self"]) else None
                right = p["inclusive"][i] if i < len(p["inclusive"]) else None
                lines.append(
                    (f"| `{short(left[2])}` | {left[0]:.1f} | " if left else "| | | ")
                    + (f"| {right[1]} | {right[0]:.1f} |" if right else "| | |")
                )
            lines.append("")

    lines += ["### Machine", ""] + machine_lines() + [""]
    lines += [
        "### Commands", "",
        "```sh",
        "bench/run                          # everything above, default settings",
        "bench/run --keys 1000000           # the scale run: 1,000,000 keys in Postgres",
        "bench/run --scenarios l1_hit,store --rounds 5       # a subset, more rounds",
        "bench/run --memory-keys 0 --no-profile               # skip the memory fill and perf",
        "bench/run --no-callgrind --no-revocation-lag         # skip the instruction counts and the lag",
        "```",
        "",
        "`bench/run --help` lists every option. It builds the release binaries "
        "(`cargo build --release -p keyward -p keyward-loadgen`), starts Postgres if it is down, "
        "starts a private Redis on a spare port, installs h2load (nghttp2-client) and matplotlib "
        "if missing, seeds the `keyward_bench` database, runs the scenarios and rewrites this "
        "section, `docs/benchmarks.png` and `docs/benchmarks.json` (the raw figures; the next run "
        "shows them in the 'previous run' column).",
        "",
        MARK_END,
    ]
    return "\n".join(lines)


def comparison_lines(run: Run, compared: list[dict]) -> list[str]:
    """The "With and without" table: each scenario against its reference,
    round by round."""
    lines = [
        "### With and without", "",
        "Each row divides a scenario by the one it differs from in a single feature, round by "
        "round: each one's ratio to its baseline in that round, divided by the other's. Where "
        "both are measured against the same baseline (the same block of rounds), the baseline "
        "cancels and this is the plain ratio of the two measured in the same round. Medians "
        "over the rounds, with the range of the per-round req/s ratios.",
        "",
        "| Comparison | Tool | req/s ratio (rounds' range) | p99 ratio | keyward CPU µs/req: "
        "with, without (ratio) | Checks |",
        "|---|---|--:|--:|--:|---|",
    ]
    for c in compared:
        scenario = next(s for s in SCENARIOS if s.name == c["scenario"])
        detail = ""
        if c["redis_scripts"] is not None and scenario.keys == "limited":
            detail = (f"Redis scripts per Verify: {c['redis_scripts']:.2f} with, "
                      f"{c['ref_redis_scripts'] or 0:.2f} without")
        spans = run.spans.get(scenario.process or scenario.server or "")
        if spans and c["tool"] == "loadgen":
            share = spans["spans"] / spans["calls"] if spans["calls"] else float("nan")
            detail = (f"the sink received {spans['spans']:,} spans for {spans['calls']:,} Verify "
                      f"calls ({share:.1%}) in {spans['exports']:,} exports")
        spread = f" ({c['x_rps_range'][0]:.2f}–{c['x_rps_range'][1]:.2f})" if c["x_rps_range"] else ""
        cpu = "–" if c["cpu"] is None or c["ref_cpu"] is None else (
            f"{c['cpu']:.1f}, {c['ref_cpu']:.1f} ({f_x(c['x_cpu'])})")
        lines.append(f"| {scenario.compare} | {c['tool']} | {f_x(c['x_rps'])}{spread} | "
                     f"{f_x(c['x_p99'])} | {cpu} | {detail} |")
    lines.append("")
    for name, spans in run.spans.items():
        if spans["calls"] and spans["spans"] < 0.99 * spans["calls"]:
            lines += [
                f"The OTLP sink received {spans['spans'] / spans['calls']:.1%} of the spans of the "
                f"`{name}` process's Verify calls: keyward's exporter dropped the rest, so span "
                "export cost it less than exporting every span would.", "",
            ]
    return lines


def noise_line(run_rows: list[dict]) -> str:
    shares = [r["others_on_server_core"] for r in run_rows if r.get("others_on_server_core") is not None]
    if not shares:
        return ""
    return (
        f"Noise: other processes (builds, tests, Postgres, Redis) took {min(shares):.0%} to "
        f"{max(shares):.0%} of keyward's core during the measurements (median per scenario)."
    )


def short(symbol: str) -> str:
    symbol = re.sub(r"::h[0-9a-f]{16}$", "", symbol).replace("|", "\\|")
    return symbol if len(symbol) <= 90 else symbol[:87] + "…"


def splice(path: Path, section: str) -> None:
    """Replaces the generated part of our section, keeping everything else
    in the file (other sections, hand-written notes after the end marker)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# Benchmarks\n\n" + section + "\n")
        return
    text = path.read_text()
    begin = text.find(SECTION + "\n\n" + MARK_BEGIN)
    end = text.find(MARK_END)
    if begin >= 0 and end > begin:
        text = text[:begin] + section + text[end + len(MARK_END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
