"""Running things: ports, /proc readings, the OTLP sink and the keyward server process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, TYPE_CHECKING

from harness.scenarios import COMMON_FLAGS
from harness.settings import CLIENT_CPU, SERVER_CPU

if TYPE_CHECKING:  # annotations only: run.py imports this module
    from harness.run import Run


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


def wait_listening(port: int, process: subprocess.Popen, what: str, log_path: Path,
                   timeout: float = 30) -> None:
    deadline = time.time() + timeout
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
    exports every span to that sink; with `wrapper`, run under it (valgrind,
    which runs keyward in its own process: the pid stays keyward's)."""

    def __init__(self, run: "Run", name: str, flags: list[str], sink: Optional[OtlpSink] = None,
                 wrapper: tuple[str, ...] = (), listen_timeout: float = 30):
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
            "taskset", "-c", SERVER_CPU, *wrapper, str(run.args.keyward), "serve",
            "--listen", self.addr, "--no-migrate", "--log", "warn", "--log-format", "json",
            *COMMON_FLAGS, *flags,
        ]
        log(f"starting keyward ({name}): {' '.join(command[3 + len(wrapper):])}"
            + (f" under {wrapper[0]}" if wrapper else "")
            + (f" with OTEL_EXPORTER_OTLP_ENDPOINT={sink.endpoint}" if sink else ""))
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "w"), start_new_session=True,
        )
        self.pid = self.process.pid  # taskset execs keyward: same pid
        wait_listening(self.port, self.process, "keyward", self.log_path, listen_timeout)
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
