#!/usr/bin/env python3
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
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent
MARK_BEGIN = "<!-- bench/run: generated from here to the end marker; edits here are overwritten -->"
MARK_END = "<!-- bench/run: end of generated section -->"
SECTION = "## Verify and Check throughput"

# Where each process runs: keyward on one core, the load generator on the
# other, so that every scenario competes for the CPU the same way.
SERVER_CPU = "1"
CLIENT_CPU = "0"


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


# --------------------------------------------------------------------------
# Running things


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def core_busy_ticks(cpu: str) -> int:
    """Busy ticks (all but idle and iowait) of one CPU, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            v = [int(x) for x in line.split()[1:]]
            return sum(v[:8]) - v[3] - v[4]
    return 0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_ticks(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(q * len(sorted_values) + 0.5)) - 1))
    return float(sorted_values[index])


def wait_listening(port: int, process: subprocess.Popen, what: str, log_path: Path) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: see {log_path}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen: see {log_path}")


class OtlpSink:
    """`keyward-loadgen sink`: an OTLP/gRPC trace collector that counts the
    spans it receives and discards them. It stands for a collector on
    another machine, so it runs on the load generator's core (CLIENT_CPU),
    never taking keyward's."""

    def __init__(self, run: "Run", name: str):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.status_path = run.work / f"sink-{name}.json"
        self.status_path.unlink(missing_ok=True)
        self.log_path = run.work / f"sink-{name}.log"
        command = ["taskset", "-c", CLIENT_CPU, str(run.args.loadgen), "sink",
                   "--listen", f"127.0.0.1:{self.port}", "--status-file", str(self.status_path)]
        log(f"starting the OTLP sink: {' '.join(command[4:])}")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=open(self.log_path, "w"), start_new_session=True)
        self.pid = self.process.pid  # taskset execs the sink: same pid
        wait_listening(self.port, self.process, "the OTLP sink", self.log_path)

    def counts(self) -> dict:
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {"spans": 0, "exports": 0, "bytes": 0, "by_name": {}}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Keyward:
    """One `keyward serve` process, pinned to SERVER_CPU; with `sink`, it
    exports every span to that sink."""

    def __init__(self, run: "Run", name: str, flags: list[str], sink: Optional[OtlpSink] = None):
        self.name = name
        self.sink = sink
        # Verify and Check calls sent to it (warm-ups, priming and profiles
        # included): what the sink's span count is compared with.
        self.calls = 0
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.log_path = run.work / f"keyward-{name}.log"
        # Span export only where a scenario asks for it, whatever the
        # caller's environment says.
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env["KEYWARD_DATABASE_URL"] = run.args.database_url
        if sink:
            env.update(OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint, OTEL_TRACES_SAMPLER="always_on")
        command = [
            "taskset", "-c", SERVER_CPU, str(run.args.keyward), "serve",
            "--listen", self.addr, "--no-migrate", "--log", "warn", "--log-format", "json",
            *COMMON_FLAGS, *flags,
        ]
        log(f"starting keyward ({name}): {' '.join(command[3:])}"
            + (f" with OTEL_EXPORTER_OTLP_ENDPOINT={sink.endpoint}" if sink else ""))
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "w"), start_new_session=True,
        )
        self.pid = self.process.pid  # taskset execs keyward: same pid
        wait_listening(self.port, self.process, "keyward", self.log_path)
        time.sleep(1.0)  # let start-up work (bus subscription, pools) settle
        self.idle_rss_kib = rss_kib(self.pid)
        self.threads = int(
            next(l for l in Path(f"/proc/{self.pid}/status").read_text().splitlines()
                 if l.startswith("Threads:")).split()[1]
        )

    def breaker_trips(self) -> list[str]:
        """What keyward logged about dependencies it stopped calling."""
        trips = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if "skipping it until it answers" in line:
                try:
                    entry = json.loads(line)
                    trips.append(f"{entry.get('dependency')}: {entry.get('error')}")
                except ValueError:
                    trips.append(line[:200])
        return trips

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Run:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(args.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.keys_file = self.work / "keys.txt"
        self.limited_keys_file = self.work / "keys-limited.txt"
        self._binary: Optional[bytes] = None
        self.results: dict[str, list[dict]] = {}
        self.unavailable: dict[str, str] = {}
        self.memory: dict = {}
        self.profiles: dict[str, dict] = {}
        self.notes: list[str] = []
        # Per OTLP-exporting server: spans the sink received, calls sent.
        self.spans: dict[str, dict] = {}

    # -- probes
    def binary_bytes(self) -> bytes:
        if self._binary is None:
            self._binary = Path(self.args.keyward).read_bytes()
        return self._binary

    # -- tools
    def loadgen(self, *args: str, timeout: float = 600) -> dict:
        command = ["taskset", "-c", CLIENT_CPU, str(self.args.loadgen), *args]
        p = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{p.stderr}")
        return json.loads(p.stdout.strip().splitlines()[-1])

    def watch_args(self, server: Keyward) -> list[str]:
        """Postgres backends of the benchmark database, the private Redis
        and the server's OTLP sink: their CPU per request is reported next
        to keyward's."""
        url = re.match(r"postgres(?:ql)?://([^:@/]+)(?::[^@/]*)?@[^/]+/([^?]+)", self.args.database_url)
        args = []
        if url:
            args += ["--watch-cmdline", f" {url.group(1)} {url.group(2)} "]
        if self.args.redis_pid:
            args += ["--watch-pid", str(self.args.redis_pid)]
        if server.sink:
            args += ["--watch-pid", str(server.sink.pid)]
        return args

    def key_args(self, scenario: Scenario) -> list[str]:
        if scenario.keys == "hot":
            return ["--keys-file", str(self.keys_file), "--key-count", str(self.args.hot_keys)]
        if scenario.keys == "limited":
            return ["--keys-file", str(self.limited_keys_file), "--key-count", str(self.args.hot_keys)]
        if scenario.keys == "all":
            return ["--keys-file", str(self.keys_file), "--key-count", str(self.args.keys)]
        if scenario.keys == "unknown":
            return ["--unknown"]
        return []

    def redis_info(self, section: str) -> dict[str, str]:
        port = re.search(r":(\d+)", self.args.redis_url.split("//", 1)[-1])
        p = subprocess.run(["redis-cli", "-p", port.group(1) if port else "6379", "info", section],
                           capture_output=True, text=True)
        return dict(l.strip().split(":", 1) for l in p.stdout.splitlines() if ":" in l)

    def redis_reads(self) -> Optional[int]:
        """GETs the private Redis answered so far (hits and misses): proof
        that the L2 scenario reads Redis once per request. (Postgres
        publishes its counters lazily, up to seconds late, so it gets no
        such column; its CPU per request shows its share.)"""
        stats = self.redis_info("stats")
        if "keyspace_hits" not in stats:
            return None
        return int(stats["keyspace_hits"]) + int(stats["keyspace_misses"])

    def redis_scripts(self) -> Optional[int]:
        """Lua scripts (EVALSHA and EVAL) the private Redis ran so far:
        proof that a rate-limited Verify costs one script."""
        stats = self.redis_info("commandstats")
        if not stats:
            return None
        calls = 0
        for command in ("cmdstat_evalsha", "cmdstat_eval"):
            m = re.search(r"(?:^|,)calls=(\d+)", stats.get(command, ""))
            calls += int(m.group(1)) if m else 0
        return calls

    def measure_loadgen(self, server: Keyward, scenario: Scenario) -> dict:
        reads0, scripts0 = self.redis_reads(), self.redis_scripts()
        t0, core0, ours0 = time.time(), core_busy_ticks(SERVER_CPU), cpu_ticks(server.pid)
        result = self.loadgen(
            "load", "--target", server.addr, "--rpc", scenario.rpc, "--expect", scenario.expect,
            "--connections", str(self.args.connections), "--streams", str(self.args.streams),
            "--warmup", str(self.args.warmup), "--duration", str(self.args.duration),
            "--server-pid", str(server.pid), "--label", scenario.name,
            *self.watch_args(server),
            *self.key_args(scenario),
            timeout=self.args.warmup + self.args.duration + 120,
        )
        if scenario.rpc != "health":
            server.calls += result["requests_with_warmup"]
        result["cpu_us_per_req"] = (
            result["server_cpu_ticks"] / CLK_TCK * 1e6 / result["requests"] if result["requests"] else None
        )
        # Noise: how much of keyward's core other processes took (over the
        # whole loadgen run, warm-up included).
        elapsed = time.time() - t0
        others = (core_busy_ticks(SERVER_CPU) - core0) - (cpu_ticks(server.pid) - ours0)
        result["others_on_server_core"] = max(0.0, others / CLK_TCK / elapsed)
        reads1, scripts1 = self.redis_reads(), self.redis_scripts()
        if reads0 is not None and reads1 is not None and result["requests_with_warmup"]:
            result["redis_reads_per_req"] = (reads1 - reads0) / result["requests_with_warmup"]
        if scripts0 is not None and scripts1 is not None and result["requests_with_warmup"]:
            result["redis_scripts_per_req"] = (scripts1 - scripts0) / result["requests_with_warmup"]
        result["client_cpu_share"] = result["client_cpu_ticks"] / CLK_TCK / result["duration_s"]
        result["server_cpu_share"] = result["server_cpu_ticks"] / CLK_TCK / result["duration_s"]
        result["deps_cpu_us_per_req"] = (
            result["watched_cpu_ticks"] / CLK_TCK * 1e6 / result["requests"] if result["requests"] else None
        )
        bad = result["wrong"] + result["errors"]
        if bad > 0.001 * max(1, result["requests"]):
            self.notes.append(
                f"{scenario.name} (loadgen): {result['wrong']} unexpected answers and "
                f"{result['errors']} gRPC errors next to {result['requests']} good ones"
            )
        return result

    def measure_h2load(self, server: Keyward, scenario: Scenario) -> Optional[dict]:
        h2load = shutil.which("h2load")
        if not h2load:
            self.notes.append(f"{scenario.name}: h2load is not installed, measured with loadgen only")
            return None
        body = self.work / f"{scenario.name}.grpc"
        encode = ["encode", "--rpc", scenario.rpc, "--out", str(body)]
        if scenario.rpc in ("verify", "check"):
            encode += ["--keys-file", str(self.keys_file)]
        subprocess.run([str(self.args.loadgen), *encode], check=True)
        path = {
            "health": "/grpc.health.v1.Health/Check",
            "verify": "/keyward.v1.KeyService/Verify",
            "check": "/envoy.service.auth.v3.Authorization/Check",
        }[scenario.rpc]
        log_file = self.work / f"{scenario.name}.h2load.log"
        # The server is warm (loadgen just ran the same scenario), so there
        # is no warm-up phase, and the server CPU read around the whole run
        # belongs to the measured requests.
        command = [
            "taskset", "-c", CLIENT_CPU, h2load,
            "-c", str(self.args.connections), "-m", str(self.args.streams), "-t", "1",
            "-D", str(int(self.args.duration)),
            "-d", str(body),
            "-H", "content-type: application/grpc", "-H", "te: trailers",
            f"--log-file={log_file}",
            f"http://{server.addr}{path}",
        ]
        before = cpu_ticks(server.pid)
        p = subprocess.run(command, capture_output=True, text=True, timeout=self.args.duration + 60)
        after = cpu_ticks(server.pid)
        out = p.stdout
        if p.returncode != 0:
            self.notes.append(f"{scenario.name}: h2load failed: {p.stderr.strip()[:200]}")
            return None
        finished = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
        counts = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
        durations = []
        for line in log_file.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1] == "200":
                durations.append(int(parts[2]))
        durations.sort()
        succeeded = int(counts.group(3))
        result = {
            "label": scenario.name,
            "tool": "h2load",
            "connections": self.args.connections,
            "streams": self.args.streams,
            "duration_s": float(finished.group(1)),
            "requests": succeeded,
            "errors": int(counts.group(4)) + int(counts.group(5)),
            "wrong": 0,
            "rps": float(finished.group(2)),
            "latency_us": {
                "p50": percentile(durations, 0.50),
                "p90": percentile(durations, 0.90),
                "p99": percentile(durations, 0.99),
                "p999": percentile(durations, 0.999),
                "max": float(durations[-1]) if durations else float("nan"),
                "mean": sum(durations) / len(durations) if durations else float("nan"),
            },
            "server_cpu_ticks": after - before,
            "cpu_us_per_req": (after - before) / CLK_TCK * 1e6 / succeeded if succeeded else None,
        }
        log_file.unlink(missing_ok=True)
        return result

    def prime(self, server: Keyward, offset: int, count: int, keys_file: Optional[Path] = None) -> dict:
        result = self.loadgen(
            "prime", "--target", server.addr, "--keys-file", str(keys_file or self.keys_file),
            "--key-offset", str(offset), "--key-count", str(count),
            "--connections", str(self.args.connections), "--streams", str(self.args.streams),
            timeout=900,
        )
        server.calls += result["primed"] + result["wrong"] + result["errors"]
        if result["wrong"] or result["errors"]:
            raise RuntimeError(f"priming failed: {result}")
        return result

    # -- servers
    def start(self, name: str, config: Server) -> Keyward:
        """`keyward serve` as `config` says, with its OTLP sink first if it
        has one."""
        sink = OtlpSink(self, name) if config.otlp_sink else None
        try:
            return Keyward(self, name, config.flags, sink)
        except BaseException:
            if sink:
                sink.stop()
            raise

    def stop(self, server: Keyward) -> None:
        """Stops keyward (which exports the spans it still buffers first),
        then its sink; notes breaker trips and the sink's count."""
        server.stop()
        if server.sink:
            counts = server.sink.counts()
            server.sink.stop()
            self.spans[server.name] = dict(counts, calls=server.calls)
            log(f"the OTLP sink received {counts['spans']:,} spans for {server.calls:,} "
                f"Verify calls, in {counts['exports']:,} exports")
        trips = server.breaker_trips()
        if trips:
            self.notes.append(
                f"keyward ({server.name}) stopped calling a dependency {len(trips)} time(s) in "
                f"spite of the raised timeouts: {'; '.join(sorted(set(trips)))[:300]}"
            )

    # -- phases
    def seed(self, limited: int) -> None:
        """Seeds the keys, and `limited` more with RATE_LIMIT."""
        count = max(self.args.keys, self.args.memory_keys)
        log(f"seeding {count:,} keys{f' and {limited:,} rate-limited ones' if limited else ''} "
            f"into {redact(self.args.database_url)}")
        result = self.loadgen(
            "seed", "--database-url", self.args.database_url, "--keys", str(count),
            "--out", str(self.keys_file),
            "--limited-keys", str(limited), "--limited-out", str(self.limited_keys_file),
            "--rate-limit-calls", str(RATE_LIMIT[0]), "--rate-limit-period-ms", "1000",
            "--rate-limit-burst", str(RATE_LIMIT[1]),
            timeout=900,
        )
        self.seed_result = result
        log(f"seeded {result['keys']:,} keys in {result['seconds']:.1f}s")

    def run_block(self, server: Keyward, scenarios: list[Scenario],
                  others: dict[str, Keyward]) -> None:
        """Measures `scenarios` on one keyward process (or, for those with a
        `process`, on the process of that name in `others`), interleaved
        with the baseline (Health/Check on `server`) round by round, so that
        noise from the rest of the machine falls on both alike."""
        baseline = SCENARIOS[0]
        block = [baseline] + [s for s in scenarios if s is not baseline]
        primed_sets = set()
        for scenario in block:
            target = others[scenario.process] if scenario.process else server
            count = self.args.hot_keys if scenario.keys in ("hot", "limited") else self.args.keys
            keys_file = self.limited_keys_file if scenario.keys == "limited" else self.keys_file
            if scenario.prime and (target.name, keys_file, count) not in primed_sets:
                primed_sets.add((target.name, keys_file, count))
                primed = self.prime(target, 0, count, keys_file)
                log(f"{scenario.name}: primed {primed['primed']:,} keys in {primed['seconds']:.1f}s")
        base_name = "baseline" if server.name == "cached" else f"baseline@{server.name}"
        for round_ in range(self.args.rounds):
            for scenario in block:
                name = base_name if scenario is baseline else scenario.name
                target = others[scenario.process] if scenario.process else server
                measured = [self.measure_loadgen(target, scenario)]
                if scenario.h2load and not self.args.no_h2load and server.name == "cached":
                    h2 = self.measure_h2load(target, scenario)
                    if h2:
                        measured.append(h2)
                for m in measured:
                    m["round"] = round_
                    m["server"] = server.name
                    m["process"] = target.name
                    log(f"round {round_ + 1}/{self.args.rounds} {name:<18} {m['tool']:<8} {fmt_result(m)}")
                self.results.setdefault(name, []).extend(measured)

    def run_memory(self) -> None:
        count = self.args.memory_keys
        capacity = max(1_000_000, count + count // 10)
        server = Keyward(self, "memory", ["--l1-capacity", str(capacity), "--l1-ttl", "1h"])
        try:
            self.memory["idle_rss_kib_memory_server"] = server.idle_rss_kib
            self.memory["threads"] = server.threads
            # Warm the connections and buffers with 1% of the keys first, so
            # the difference is the cache's.
            warm = max(1000, count // 100)
            self.prime(server, 0, warm)
            time.sleep(1.0)
            before = rss_kib(server.pid)
            primed = self.prime(server, warm, count - warm)
            time.sleep(2.0)  # let moka apply its pending writes
            after = rss_kib(server.pid)
            alone = self.loadgen("l1-footprint", "--keys", str(count), timeout=300)
            self.memory.update(
                l1_alone=alone,
                keys=count,
                measured_keys=count - warm,
                rss_before_kib=before,
                rss_after_kib=after,
                bytes_per_key=(after - before) * 1024 / (count - warm),
                fill_seconds=primed["seconds"],
                fill_rps=primed["rps"],
            )
            log(
                f"memory: idle {server.idle_rss_kib / 1024:.1f} MiB, "
                f"{after / 1024:.1f} MiB with {count:,} keys in L1 → "
                f"{self.memory['bytes_per_key']:.0f} bytes/key (filled in {primed['seconds']:.0f}s)"
            )
        finally:
            server.stop()
            trips = server.breaker_trips()
            if trips:
                self.notes.append(f"keyward (memory) stopped calling a dependency {len(trips)} time(s): "
                                  f"{'; '.join(sorted(set(trips)))[:300]}")

    def run_profile(self, server: Keyward, scenario: Scenario) -> None:
        """perf on keyward under this scenario's load, in a separate run
        after the measurements (perf slows what it samples)."""
        perf = shutil.which("perf")
        if not perf:
            self.profiles[scenario.name] = {"error": "perf is not installed"}
            return
        data = self.work / f"perf-{scenario.name}.data"
        seconds = 4
        log(f"{scenario.name}: perf record for {seconds}s")
        record = subprocess.Popen(
            [perf, "record", "-F", "499", "--call-graph", "dwarf,8192", "-p", str(server.pid),
             "-o", str(data), "--", "sleep", str(seconds)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        load = self.loadgen(
            "load", "--target", server.addr, "--rpc", scenario.rpc, "--expect", scenario.expect,
            "--warmup", "0.3", "--duration", str(seconds + 1),
            "--connections", str(self.args.connections), "--streams", str(self.args.streams),
            *self.key_args(scenario),
        )
        if scenario.rpc != "health":
            server.calls += load["requests_with_warmup"]
        _, err = record.communicate(timeout=60)
        if record.returncode != 0 or not data.exists():
            self.profiles[scenario.name] = {"error": f"perf record failed: {err.strip()[-300:]}"}
            return
        # One pass gives inclusive (children) and self time per symbol;
        # --no-inline keeps it to a second.
        report = subprocess.run(
            [perf, "report", "-i", str(data), "--no-inline", "--children", "--sort", "sym",
             "--stdio", "-g", "none", "--percent-limit", "0.2"],
            capture_output=True, text=True, timeout=300,
        ).stdout
        data.unlink(missing_ok=True)
        samples = re.search(r"# Samples: (\S+)", report)
        frames = []
        for line in report.splitlines():
            m = re.match(r"\s+([\d.]+)%\s+([\d.]+)%\s+\[([.k])\]\s+(.*)$", line)
            if m:
                frames.append((float(m.group(1)), float(m.group(2)), m.group(3), m.group(4).strip()))
        groups: dict[str, float] = {}
        for _, self_pct, kind, sym in frames:
            crate = crate_of(kind, sym)
            groups[crate] = groups.get(crate, 0.0) + self_pct
        self.profiles[scenario.name] = {
            "seconds": seconds,
            "samples": samples.group(1) if samples else "?",
            "top_self": sorted(((p, k, sym) for _, p, k, sym in frames), reverse=True)[:12],
            "by_crate": sorted(groups.items(), key=lambda kv: -kv[1])[:10],
            "inclusive": [
                (c, what, sym)
                for what, pattern in INCLUSIVE
                for c, _, _, sym in [next((f for f in frames if re.search(pattern, f[3])), (None,) * 4)]
                if c is not None
            ],
        }


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
    ("L1 get (moka)", r"^moka::future::base_cache::BaseCache<K,V,S>::get_with_hash"),
    ("L1 housekeeping (moka)", r"^moka::future::housekeeper::Housekeeper::try_run_pending_tasks"),
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
                f"{a['cache_bytes_per_key']:.0f} the moka cache around it. A server filled the same "
                "way with L1 off keeps nothing, so the gap between this and the server's figure is "
                "how the allocator places the cache's entries among the fill's short-lived buffers "
                "(see the analysis below).",
                "",
            ]
    else:
        lines += ["Not measured in this run (`--memory-keys 0`).", ""]

    lines += ["### Goals", "", "| Goal | Measured | Met |", "|---|---|---|"]
    for text, measured, met in goal_verdicts(run_rows, m, args.keys, compared):
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


def chart(run_rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.name for s in SCENARIOS if any(r["scenario"] == s.name for r in run_rows)]
    tools = ["loadgen", "h2load"]
    colors = {"loadgen": "#4C72B0", "h2load": "#DD8452"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    panels = [
        ("x_rps", "Throughput (× baseline req/s)", "min_throughput"),
        ("x_p99", "p99 latency (× baseline p99)", "max_p99"),
        ("x_cpu", "Server CPU per request (× baseline)", None),
    ]
    width = 0.38
    for ax, (key, title, goal_key) in zip(axes, panels):
        for t, tool in enumerate(tools):
            xs, ys = [], []
            for i, name in enumerate(names):
                r = next((r for r in run_rows if r["scenario"] == name and r["tool"] == tool), None)
                if r and r[key] is not None:
                    xs.append(i + (t - 0.5) * width)
                    ys.append(r[key])
            ax.bar(xs, ys, width, label=tool, color=colors[tool])
            for x, y in zip(xs, ys):
                ax.text(x, y, f"{y:.2f}", ha="center", va="bottom", fontsize=7)
        if goal_key:
            for i, name in enumerate(names):
                scenario = next(s for s in SCENARIOS if s.name == name)
                g = scenario.goal and getattr(scenario.goal, goal_key)
                if g and scenario.goal.of_reference:
                    # The goal in baseline units: a fraction of the
                    # reference's ratio (loadgen).
                    ref = next((r for r in run_rows if r["scenario"] == scenario.reference
                                and r["tool"] == "loadgen"), None)
                    g = g * ref[key] if ref and ref[key] is not None else None
                if g:
                    ax.hlines(g, i - 0.45, i + 0.45, colors="crimson", linestyles="--", linewidth=1.5,
                              label="goal")
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
    handles, labels = [], []
    for ax in axes:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    axes[0].legend(handles, labels, fontsize=8)
    fig.suptitle("keyward: each scenario relative to Health/Check on the same process (same run)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------


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
    for text, measured, met in goal_verdicts(rows(run.results), run.memory, args.keys, compared):
        print(f"{'MET ' if met else ('MISS' if met is False else '  – ')} {text}: {measured}")
    print(f"\nwrote {out}, {out.parent / 'benchmarks.png'}, {raw_path} in {wall / 60:.1f} min total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
