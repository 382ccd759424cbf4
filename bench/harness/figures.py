"""Turning raw results into rows, ratios, comparisons and goal verdicts."""

from __future__ import annotations

import re
from typing import Optional

from harness.scenarios import SCENARIOS


def redact(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//…@", url)


def fmt_result(r: dict) -> str:
    lat = r["latency_us"]
    cpu = r.get("cpu_us_per_req")
    return (
        f"{r['rps']:,.0f} req/s, p50 {lat['p50'] / 1000:.2f} ms, p99 {lat['p99'] / 1000:.2f} ms, "
        f"p99.9 {lat['p999'] / 1000:.2f} ms, server CPU {cpu:.1f} µs/req"
        if cpu is not None
        else f"{r['rps']:,.0f} req/s"
    )


# --------------------------------------------------------------------------
# The report


def ratio(value, base) -> Optional[float]:
    if value is None or base in (None, 0):
        return None
    return value / base


def median(values) -> Optional[float]:
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def rows(results: dict) -> list[dict]:
    """One row per scenario and tool: medians over the rounds, and ratios
    to the baseline of the same round on the same process."""
    out = []
    for scenario in SCENARIOS:
        measured = results.get(scenario.name, [])
        for tool in ("loadgen", "h2load"):
            runs = [m for m in measured if m["tool"] == tool]
            if not runs:
                continue
            server = runs[0]["server"]
            base_name = "baseline" if server == "cached" else f"baseline@{server}"
            bases = {m["round"]: m for m in results.get(base_name, []) if m["tool"] == tool}
            x_rps, x_p99, x_cpu = [], [], []
            for m in runs:
                b = bases.get(m["round"])
                if not b:
                    continue
                x_rps.append(ratio(m["rps"], b["rps"]))
                x_p99.append(ratio(m["latency_us"]["p99"], b["latency_us"]["p99"]))
                x_cpu.append(ratio(m.get("cpu_us_per_req"), b.get("cpu_us_per_req")))
            rps = [m["rps"] for m in runs]
            out.append({
                "scenario": scenario.name,
                "title": scenario.title,
                "tool": tool,
                "server": server,
                "rounds": len(runs),
                "rps": median(rps),
                "rps_spread": max(rps) / min(rps) - 1 if min(rps) > 0 else None,
                "p50": median(m["latency_us"]["p50"] for m in runs),
                "p99": median(m["latency_us"]["p99"] for m in runs),
                "p999": median(m["latency_us"]["p999"] for m in runs),
                "cpu": median(m.get("cpu_us_per_req") for m in runs),
                "x_rps": median(x_rps),
                "x_rps_range": (min(x for x in x_rps if x is not None), max(x for x in x_rps if x is not None))
                if any(x is not None for x in x_rps) else None,
                "x_p99": median(x_p99),
                "x_cpu": median(x_cpu),
                "base_rps": median(b["rps"] for b in bases.values()),
                "client_cpu_share": median(m.get("client_cpu_share") for m in runs),
                "others_on_server_core": median(m.get("others_on_server_core") for m in runs),
                "server_cpu_share": median(m.get("server_cpu_share") for m in runs),
                "deps_cpu": median(m.get("deps_cpu_us_per_req") for m in runs),
                "redis_reads": median(m.get("redis_reads_per_req") for m in runs),
                "redis_scripts": median(m.get("redis_scripts_per_req") for m in runs),
                "bad": sum(m["wrong"] + m["errors"] for m in runs),
            })
    return out


def comparisons(results: dict) -> list[dict]:
    """Each scenario with a reference against it, per tool measured by
    both: per round, the scenario's ratio to its process's baseline divided
    by the reference's (on one process the baselines cancel: it is then the
    plain ratio of the two in that round); medians over the rounds."""
    out = []
    by_tool = {(r["scenario"], r["tool"]): r for r in rows(results)}

    def per_round(name: str, tool: str) -> dict[int, tuple]:
        measured = [m for m in results.get(name, []) if m["tool"] == tool]
        if not measured:
            return {}
        base_name = "baseline" if measured[0]["server"] == "cached" else f"baseline@{measured[0]['server']}"
        bases = {m["round"]: m for m in results.get(base_name, []) if m["tool"] == tool}
        return {
            m["round"]: (
                ratio(m["rps"], b["rps"]),
                ratio(m["latency_us"]["p99"], b["latency_us"]["p99"]),
                ratio(m.get("cpu_us_per_req"), b.get("cpu_us_per_req")),
            )
            for m in measured
            if (b := bases.get(m["round"]))
        }

    for scenario in SCENARIOS:
        if not scenario.reference:
            continue
        for tool in ("loadgen", "h2load"):
            ours, theirs = per_round(scenario.name, tool), per_round(scenario.reference, tool)
            common = sorted(set(ours) & set(theirs))
            if not common:
                continue
            x = [[ratio(ours[r][i], theirs[r][i]) for r in common] for i in range(3)]
            rps = [v for v in x[0] if v is not None]
            row, ref = by_tool[(scenario.name, tool)], by_tool[(scenario.reference, tool)]
            out.append({
                "scenario": scenario.name,
                "reference": scenario.reference,
                "tool": tool,
                "rounds": len(common),
                "x_rps": median(x[0]),
                "x_rps_range": (min(rps), max(rps)) if rps else None,
                "x_p99": median(x[1]),
                "x_cpu": median(x[2]),
                "cpu": row["cpu"],
                "ref_cpu": ref["cpu"],
                "p99": row["p99"],
                "ref_p99": ref["p99"],
                "redis_scripts": row.get("redis_scripts"),
                "ref_redis_scripts": ref.get("redis_scripts"),
            })
    return out


def goal_verdicts(run_rows: list[dict], memory: dict, keys: int,
                  compared: list[dict]) -> list[tuple[str, str, Optional[bool]]]:
    verdicts = []
    for scenario in SCENARIOS:
        if not scenario.goal:
            continue
        g = scenario.goal
        of = "the baseline's"
        if g.of_reference:
            of = next(f"*{s.title}*'s" for s in SCENARIOS if s.name == scenario.reference)
        text = f"{scenario.title}: ≥ {g.min_throughput:.0%} of {of} req/s"
        if g.max_p99:
            text += f", p99 ≤ {g.max_p99:g}× {of}"
        if g.note:
            text += f" ({g.note})"
        # Relative to the reference, the figures are the comparison's.
        source = compared if g.of_reference else run_rows
        candidates = [r for r in source if r["scenario"] == scenario.name]
        if not candidates:
            verdicts.append((text, "not measured", None))
            continue
        parts, met = [], True
        for r in candidates:
            ok = r["x_rps"] is not None and r["x_rps"] >= g.min_throughput
            part = f"{r['tool']}: {r['x_rps']:.2f}×"
            if g.max_p99:
                ok = ok and r["x_p99"] is not None and r["x_p99"] <= g.max_p99
                part += f", p99 {r['x_p99']:.2f}×"
            parts.append(part)
            met = met and ok
        measured = "; ".join(parts)
        if scenario.name == "store" and keys < 1_000_000:
            measured += f" (with {keys:,} keys; run `bench/run --keys 1000000` for the goal's setting)"
        verdicts.append((text, measured, met))
    if memory.get("idle_rss_kib"):
        mib = memory["idle_rss_kib"] / 1024
        verdicts.append(("Idle RSS under 20 MiB", f"{mib:.1f} MiB", mib < 20))
    if memory.get("bytes_per_key") is not None:
        b = memory["bytes_per_key"]
        verdicts.append((
            "At most 300 bytes per cached key",
            f"{b:.0f} bytes (RSS growth over {memory['measured_keys']:,} keys; "
            f"{memory['keys']:,} keys in L1)",
            b <= 300,
        ))
    return verdicts


def f_ms(us) -> str:
    return "–" if us is None else f"{us / 1000:.2f}"


def f_x(x) -> str:
    return "–" if x is None else f"{x:.2f}×"
