"""One benchmark run: starts the servers and load generators and gathers the results."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Optional

from harness.figures import fmt_result, redact
from harness.processes import Keyward, OtlpSink, core_busy_ticks, cpu_ticks, log, percentile, rss_kib
from harness.profile import INCLUSIVE, crate_of
from harness.scenarios import RATE_LIMIT, SCENARIOS, Scenario, Server
from harness.settings import CLIENT_CPU, CLK_TCK, SERVER_CPU


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
        # Filled by harness.callgrind and harness.revocation.
        self.callgrind: Optional[dict] = None
        self.revocation: Optional[dict] = None

    # -- probes
    def binary_bytes(self) -> bytes:
        if self._binary is None:
            self._binary = Path(self.args.keyward).read_bytes()
        return self._binary

    # -- tools
    def loadgen(self, *args: str, timeout: float = 600, env: Optional[dict] = None) -> dict:
        """`env`: more environment variables (secrets go there, never on
        the command line)."""
        command = ["taskset", "-c", CLIENT_CPU, str(self.args.loadgen), *args]
        p = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, **env) if env else None)
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
            time.sleep(2.0)  # let the fill's last requests settle
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
