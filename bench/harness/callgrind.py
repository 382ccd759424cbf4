"""Instructions per request under callgrind: figures that do not move with
machine noise, so that a change of a few percent shows from one run to the
next (the timings above cannot show it on a shared machine).

One keyward process runs under `valgrind --tool=callgrind`, with the flags
of the main benchmark process plus the route rule the forward-auth
sub-request needs. For each request kind, after a warm-up: zero the
counters, send exactly N requests on one connection, one at a time, dump;
instructions per request = the dump's total Ir ÷ N. The N requests go in
two dumps of N/2, whose difference is the run's own repeatability.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from harness.processes import Keyward, log
from harness.run import Run
from harness.scenarios import servers

# The route rule of bench/ext_authz/run: a sub-request has no context
# extensions, so /orders needs orders:read through keyward's own rules (a
# Check's `keyward_scopes` extension wins over them, so Check is unchanged).
ROUTES = '[[ext_authz.routes]]\npath_prefix = "/orders"\nscopes = ["orders:read"]\n'
WARMUP = 300


@dataclass
class Probe:
    name: str
    title: str
    rpc: str  # a loadgen --rpc, or "nginx" (HTTP/1.1 from here)


PROBES = [
    Probe("baseline", "Health/Check (baseline)", "health"),
    Probe("l1_hit", "Verify, L1 hit", "verify"),
    Probe("check_l1_hit", "Check (ext_authz), L1 hit", "check"),
    Probe("connect_l1_hit", "Verify over Connect (JSON), L1 hit", "connect-verify"),
    Probe("nginx_l1_hit", "Forward auth `/authz/nginx`, L1 hit (HTTP/1.1)", "nginx"),
]


def control(pid: int, *what: str) -> None:
    p = subprocess.run(["callgrind_control", *what, str(pid)], capture_output=True, text=True,
                       timeout=120)
    if p.returncode != 0 or "OK" not in p.stdout:
        raise RuntimeError(f"callgrind_control {' '.join(what)} failed: {p.stdout} {p.stderr}")


def dumped_ir(path: Path) -> int:
    """The dump's total (what callgrind_annotate prints as PROGRAM TOTALS)."""
    for line in path.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary line in {path}")


def nginx_requests(addr: str, keys: list[str], count: int) -> int:
    """`count` forward-auth sub-requests as nginx's auth_request sends them,
    on one keep-alive HTTP/1.1 connection; how many were allowed (200)."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    allowed = 0
    try:
        for i in range(count):
            conn.request("GET", "/authz/nginx", headers={
                "X-Original-Method": "GET",
                "X-Original-URI": "/orders/1",
                "x-api-key": keys[i % len(keys)],
            })
            response = conn.getresponse()
            response.read()
            allowed += response.status == 200
    finally:
        conn.close()
    return allowed


class Callgrind:
    def __init__(self, run: Run):
        self.run = run
        self.requests = run.args.callgrind_requests
        self.key_count = min(run.args.callgrind_keys, run.args.hot_keys)
        self.keys = run.keys_file.read_text().splitlines()[: self.key_count]
        self.out = run.work / "callgrind.out"
        self.dumps = 0

    def send(self, server: Keyward, probe: Probe, count: int) -> int:
        """Exactly `count` requests of `probe`'s kind, one at a time; how
        many got the expected answer."""
        if probe.rpc == "nginx":
            return nginx_requests(server.addr, self.keys, count)
        keys = [] if probe.rpc == "health" else [
            "--keys-file", str(self.run.keys_file), "--key-count", str(self.key_count)]
        result = self.run.loadgen(
            "load", "--target", server.addr, "--rpc", probe.rpc, "--connections", "1",
            "--streams", "1", "--requests", str(count), "--duration", "300", *keys, timeout=400)
        if probe.rpc != "health":
            server.calls += result["requests_with_warmup"]
        return result["requests"]

    def dump(self, server: Keyward) -> int:
        control(server.pid, "-d")
        self.dumps += 1
        return dumped_ir(Path(f"{self.out}.{self.dumps}"))

    def measure(self) -> dict:
        for old in self.out.parent.glob(self.out.name + "*"):
            old.unlink()
        config = self.run.work / "callgrind-routes.toml"
        config.write_text(ROUTES)
        flags = servers(self.run.args.redis_url)["cached"].flags + ["--config", str(config)]
        wrapper = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}")
        server = Keyward(self.run, "callgrind", flags, wrapper=wrapper, listen_timeout=120)
        started = time.time()
        try:
            self.run.prime(server, 0, self.key_count)
            # Timers and pollers run whether or not requests come: their rate
            # over an idle window, for the reader to weigh against the
            # windows below (nothing is subtracted).
            control(server.pid, "-z")
            idle_started = time.time()
            time.sleep(2)
            idle_ir = self.dump(server)
            result = {
                "requests": self.requests,
                "idle_ir_per_s": idle_ir / (time.time() - idle_started),
                "flags": flags[:-2] + ["--config", "<route /orders: orders:read>"],
                "probes": {},
            }
            half = self.requests // 2
            for probe in PROBES:
                ok = self.send(server, probe, WARMUP)
                if ok != WARMUP:
                    raise RuntimeError(f"callgrind {probe.name}: {ok} of {WARMUP} warm-up "
                                       "requests got the expected answer")
                halves, seconds = [], []
                for _ in range(2):
                    control(server.pid, "-z")
                    window = time.time()
                    ok = self.send(server, probe, half)
                    halves.append(self.dump(server))
                    seconds.append(time.time() - window)
                    if ok != half:
                        raise RuntimeError(f"callgrind {probe.name}: {ok} of {half} requests "
                                           "got the expected answer")
                result["probes"][probe.name] = {
                    "ir": sum(halves),
                    "ir_per_req": sum(halves) / (2 * half),
                    "halves_per_req": [h / half for h in halves],
                    "seconds": sum(seconds),
                    # What the idle rate would add over these windows: the
                    # part that grows with wall time (a loaded machine
                    # stretches valgrind's windows), shown, not subtracted.
                    "idle_ir_per_req": result["idle_ir_per_s"] * sum(seconds) / (2 * half),
                }
                log(f"callgrind {probe.name}: {sum(halves) / (2 * half):,.0f} Ir/request "
                    f"(halves {halves[0] / half:,.0f}, {halves[1] / half:,.0f})")
            result["seconds"] = time.time() - started
            return result
        finally:
            self.run.stop(server)
            for old in self.out.parent.glob(self.out.name + "*"):
                old.unlink()


def run_callgrind(run: Run) -> None:
    missing = [t for t in ("valgrind", "callgrind_control") if not shutil.which(t)]
    if missing:
        run.callgrind = {"error": f"{' and '.join(missing)} not installed"}
        log(f"callgrind: {run.callgrind['error']}")
        return
    run.callgrind = Callgrind(run).measure()


def callgrind_lines(run: Run, previous: Optional[dict]) -> list[str]:
    c = run.callgrind
    if not c:
        return []
    lines = ["### Instructions per request (callgrind)", ""]
    if "error" in c:
        return lines + [f"Not measured: {c['error']}.", ""]
    prev = ((previous or {}).get("callgrind") or {}).get("probes", {})
    probes = c["probes"]
    base = probes.get("baseline", {}).get("ir_per_req")
    lines += [
        "Instructions (Ir) that keyward executed per request, counted by `valgrind "
        "--tool=callgrind`: unlike the timings they do not move with machine noise, so a change "
        "of a few percent between runs is real. One keyward process under callgrind (`"
        + " ".join(c["flags"]) + "`, Postgres, pinned like the others); after priming "
        f"{run.args.callgrind_keys:,} keys into L1 and {WARMUP} warm-up requests of each kind, "
        "`callgrind_control -z`, exactly "
        f"{c['requests'] // 2:,} requests on one connection one at a time, `callgrind_control "
        f"-d`, twice: Ir/request = the two dumps' total Ir ÷ {c['requests']:,}. Nothing is "
        "subtracted: the figure includes tonic, hyper and h2 (hyper's HTTP/1.1 for forward "
        "auth), tokio, the client connection's setup, and what keyward's timers and pollers ran "
        f"meanwhile: {c['idle_ir_per_s']:,.0f} Ir/s on an idle window (mostly the invalidation "
        "outbox tail, read every quarter of `--revocation-bound`, and the store's fail-over "
        "monitor, every second). That part follows wall time, which valgrind stretches when the "
        "machine is busy, so it is the noise left in these counts: the column before the last "
        "estimates it per request. gRPC requests come from "
        "`keyward-loadgen load --requests N --connections 1 --streams 1`, the forward-auth "
        "sub-requests (`GET /authz/nginx` with `X-Original-Method: GET`, `X-Original-URI: "
        "/orders/1`, `x-api-key`) from a keep-alive Python client; the Check is shaped as in "
        "*Check (ext_authz), L1 hit* above.",
        "",
        "| Request | Ir/request | × Health/Check | the two halves differ by | of which the idle "
        "rate over the windows | previous run Ir/request (change) |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for probe in PROBES:
        p = probes.get(probe.name)
        if not p:
            continue
        a, b = p["halves_per_req"]
        before = prev.get(probe.name, {}).get("ir_per_req")
        lines.append(
            f"| {probe.title} | {p['ir_per_req']:,.0f} | "
            + (f"{p['ir_per_req'] / base:.2f}× | " if base else "– | ")
            + f"{abs(a - b) / ((a + b) / 2):.2%} | "
            + f"≈ {p['idle_ir_per_req']:,.0f} ({p['seconds']:.1f} s) | "
            + (f"{before:,.0f} ({p['ir_per_req'] / before - 1:+.1%}) |" if before else "– |")
        )
    lines += ["", f"Under callgrind in {c['seconds']:.0f} s (start-up and priming included).", ""]
    return lines
