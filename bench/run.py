"""`make bench`: gpucloud against its ceiling, under wrk, on one machine.

Two servers, started by the same command line (`bench/serve.py`: gpucloud's own server
entry point with the app swapped, so both get the uvicorn options gpucloud ships; one
worker, pinned to one core; wrk pinned to the other where there are two):

1. the **ceiling**, `bench.ceiling:create_app`: a bare Starlette app that answers each
   benchmarked route with a constant, pre-serialised response of gpucloud's shape;
2. **gpucloud**, `gpucloud.app:serving_app` (what `gpucloud serve` runs), on a
   fresh copy of a cached SQLite database per scenario.

For each scenario (GET list, POST create, PATCH makedefault; then GET and POST again with
1,000,000 keys stored), rounds alternate ceiling and gpucloud; each is a warm-up followed
by a measured wrk run. Results: medians over rounds of requests/s and p50/p99 latency, the
ratio to the ceiling, the ratio large/small database, and the server's RSS (VmHWM and
VmRSS from /proc). Any non-2xx response or socket error makes the run invalid (exit 1).

    python -m bench.run                 # full run, writes docs/benchmarks.md
    python -m bench.run --quick         # < 1 minute smoke run, writes .bench/quick.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.util
import json
import os
import platform
import re
import resource
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from bench import load_data
from bench.load_data import CACHE, ROOT, BenchOwner, Dataset

BENCH_DIR = Path(__file__).resolve().parent
RUN_DIR = CACHE / "run"
LOG_DIR = CACHE / "logs"
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
QUICK_OUTPUT = CACHE / "quick.md"
PATH = "/gpu-cloud/ssh-keys"
WRK_THREADS = 2
# Rate limits stay on (their check is part of every request's cost) but never throttle.
NO_THROTTLE = "1000000000"
# Only for a gpucloud without `gpucloud.server` (see launcher_command): the uvicorn options
# `gpucloud serve` passed before it had one, as a command line.
UVICORN_OPTIONS = [
    "--factory",
    "--workers", "1",
    "--loop", "auto",
    "--http", "auto",
    "--no-access-log",
    "--no-server-header",
    "--timeout-keep-alive", "5",
    "--timeout-graceful-shutdown", "10",
    "--log-level", "warning",
]  # fmt: skip
TARGETS = {
    "ceiling": "bench.ceiling:create_app",
    "gpucloud": "gpucloud.app:serving_app",
}
PACKAGES = (
    "gpucloud", "uvicorn", "uvloop", "httptools", "starlette", "fastapi", "pydantic",
    "sqlalchemy", "aiosqlite", "orjson", "cryptography", "limits", "prometheus-client",
)  # fmt: skip


class BenchError(Exception):
    """The benchmark could not run, or a run was invalid; the message says why."""


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Options:
    quick: bool
    rounds: int
    duration: float
    warmup: float
    connections: int
    output: Path
    scale: bool
    post_rate_cap: int
    server_env: dict[str, str]
    keep_logs: bool
    nice: int = 0  # scheduling priority of the servers and wrk alike (negative: higher)


@dataclass(frozen=True)
class Scenario:
    key: str  # "get", "post", "patch"
    label: str
    data: str  # "small" or "large"

    @property
    def title(self) -> str:
        return self.label if self.data == "small" else f"{self.label}, 1M keys"

    @property
    def slug(self) -> str:
        return f"{self.key}-{self.data}"


SCENARIOS = (
    Scenario("get", "GET list", "small"),
    Scenario("post", "POST create", "small"),
    Scenario("patch", "PATCH makedefault", "small"),
)
SCALE_SCENARIOS = (
    Scenario("get", "GET list", "large"),
    Scenario("post", "POST create", "large"),
)


# ---------------------------------------------------------------------------- machine


@dataclass(frozen=True)
class Pinning:
    server: str | None  # a core for taskset -c, or None (not pinned)
    loadgen: str | None

    def prefix(self, core: str | None) -> list[str]:
        return ["taskset", "-c", core] if core is not None else []

    def describe(self) -> str:
        if self.server is None:
            return "not pinned (fewer than 2 usable cores, or no taskset)"
        return (
            f"server on core {self.server} (`taskset -c {self.server}`), wrk on core {self.loadgen}"
        )


def pinning() -> Pinning:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or shutil.which("taskset") is None:
        return Pinning(None, None)
    return Pinning(str(cores[0]), str(cores[1]))


def ensure_wrk() -> str:
    """The path of wrk, installed from Debian's packages when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("bench: wrk is missing; installing it with apt-get (Debian's package)", file=sys.stderr)
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, "apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-q"], env=env, check=False)
        subprocess.run(install, env=env, check=False)
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk is not installed and `apt-get install -y wrk` failed; install it")
    return found


def _run_text(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout + done.stderr).strip()


def machine_description(wrk: str) -> dict[str, str]:
    lscpu = _run_text(["lscpu"])

    def cpu_field(name: str) -> str:
        match = re.search(rf"^{re.escape(name)}:\s*(.+)$", lscpu, re.MULTILINE)
        return match.group(1).strip() if match else "?"

    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
    os_name = "?"
    if Path("/etc/os-release").exists():
        match = re.search(r'PRETTY_NAME="?([^"\n]+)', Path("/etc/os-release").read_text())
        os_name = match.group(1) if match else "?"
    import sqlite3

    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    wrk_version = _run_text([wrk, "-v"]).splitlines()
    return {
        "CPU": f"{cpu_field('Model name')} ({cpu_field('Vendor ID')}), "
        f"{cpu_field('CPU(s)')} CPU(s), {cpu_field('Thread(s) per core')} thread(s) per core, "
        f"hypervisor {cpu_field('Hypervisor vendor')}",
        "RAM": f"{mem_kb / 2**20:.1f} GiB",
        "OS / kernel": f"{os_name}, Linux {platform.release()} ({platform.machine()})",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "SQLite library": sqlite3.sqlite_version,
        "Packages": ", ".join(versions),
        "Load generator": wrk_version[0] if wrk_version else "wrk",
    }


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _cpu_ticks(core: str | None) -> tuple[int, int, int]:
    """(busy, stolen, total) jiffies of one core (or of all cores), from /proc/stat.

    Stolen is the time the hypervisor ran something else while this guest wanted the core.
    """
    name = f"cpu{core}" if core is not None else "cpu"
    for line in Path("/proc/stat").read_text().splitlines():
        parts = line.split()
        if parts[0] == name:
            # user nice system idle iowait irq softirq steal (guest time is inside user)
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, parts[1:9])
            busy = user + nice + system + irq + softirq
            return busy, steal, busy + steal + idle + iowait
    return 0, 0, 1


_HZ = os.sysconf("SC_CLK_TCK")


def _children_seconds() -> float:
    """CPU seconds of the waited-for children so far (wrk, once it has finished)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_ticks(pid: int) -> int:
    """User + system jiffies of a process, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


# ---------------------------------------------------------------------------- servers


def uses_gpucloud_server() -> bool:
    """True when gpucloud ships `gpucloud.server` (what `gpucloud serve` execs)."""
    return importlib.util.find_spec("gpucloud.server") is not None


def launcher_command(target: str, port: int) -> list[str]:
    """The command line that serves `target`: gpucloud's own server entry point with the
    app swapped (bench/serve.py), or, for a gpucloud without one, uvicorn's CLI with the
    options `gpucloud serve` used to pass."""
    if uses_gpucloud_server():
        return [sys.executable, "-m", "bench.serve", target,
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    return [sys.executable, "-m", "uvicorn", target,
            "--host", "127.0.0.1", "--port", str(port), *UVICORN_OPTIONS]  # fmt: skip


def _nice(level: int) -> list[str]:
    return ["nice", "-n", str(level)] if level else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One uvicorn process, started with the shared command line."""

    def __init__(
        self, name: str, env: dict[str, str], pin: Pinning, log: Path, label: str, nice: int = 0
    ) -> None:
        self.name = name
        self.label = label
        self.port = free_port()
        self.command = [
            *_nice(nice),
            *pin.prefix(pin.server),
            *launcher_command(TARGETS[name], self.port),
        ]
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            self.command,
            env=env,
            cwd=ROOT,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.peak_kb = 0
        self._wait_ready()
        self.start_kb = self.memory_kb()[0]
        self.uvicorn_options = self._logged_options()

    def _logged_options(self) -> dict[str, object] | None:
        """The uvicorn options bench.serve printed (None with the uvicorn-CLI fallback)."""
        for line in self.tail(200).splitlines():
            if line.startswith("BENCH_UVICORN_OPTIONS "):
                options: dict[str, object] = json.loads(line.split(" ", 1)[1])
                options.pop("port", None)  # each server has its own
                return options
        return None

    @property
    def pid(self) -> int:
        return self.process.pid

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"the {self.name} server exited at start ({self.process.returncode}):\n"
                    f"{self.tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as answer:  # noqa: S310 (our http URL)
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        raise BenchError(f"the {self.name} server did not answer /healthz:\n{self.tail()}")

    def memory_kb(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in KiB, from /proc/<pid>/status."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        self.peak_kb = max(self.peak_kb, hwm)
        return rss, hwm

    def log_size(self) -> int:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.stat().st_size

    def errors_since(self, offset: int, limit: int = 5) -> str:
        """The statuses >= 400 and the warnings the server logged after `offset`, summarised."""
        if not self._log_file.closed:
            self._log_file.flush()
        with self.log.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        statuses: dict[str, int] = {}
        warnings = []
        for line in text.splitlines():
            status = re.search(r'"status": ([45]\d\d)', line)
            if status:
                statuses[status.group(1)] = statuses.get(status.group(1), 0) + 1
            if re.search(r'"level": "(warning|error|critical)"', line) or "Traceback" in line:
                warnings.append(line[:600])
        summary = f"--- the {self.name} server logged statuses {statuses or 'none'} >= 400"
        if warnings:
            shown = "\n".join(warnings[:limit])
            summary += f"; {len(warnings)} warnings or errors, the first:\n{shown}"
        return summary + "\n"

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(
                f"the {self.name} server died ({self.process.returncode}):\n{self.tail()}"
            )

    def tail(self, lines: int = 30) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self, *, keep_log: bool) -> None:
        """Stop the server; its log is cut to its last lines unless `keep_log`."""
        if self.process.poll() is None:
            self.memory_kb()
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()
        if not keep_log:
            # The access log of a run is large; keep its end for a post-mortem.
            tail = self.tail(200)
            self.log.write_text(tail + "\n" if tail else "")


def server_env(database: Path, extra: dict[str, str]) -> dict[str, str]:
    """The environment of a gpucloud server: the caller's, minus any GPUCLOUD_* setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")}
    env.update(
        {
            "GPUCLOUD_DATABASE_URL": f"sqlite:///{database}",
            "GPUCLOUD_RATE_LIMIT_BURST": NO_THROTTLE,
            "GPUCLOUD_RATE_LIMIT_PER_SECOND": NO_THROTTLE,
        }
    )
    env.update(extra)
    return env


def ceiling_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")}


# ---------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: dict[str, int]
    used: int | None
    exhausted: int
    output: str
    server_cpu: float = 0.0  # share of one core the server used during the run
    others_cpu: float = 0.0  # share of the server's core used by other processes
    stolen_cpu: float = 0.0  # share of the server's core the hypervisor gave to others
    wrk_cpu: float = 0.0  # share of one core wrk used
    loadgen_others_cpu: float = 0.0  # share of wrk's core used by other processes


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_wrk(output: str) -> WrkResult:
    """wrk's figures; raises BenchError when its output is not what wrk 4 prints."""

    def need(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise BenchError(f"cannot read wrk's output (no {pattern!r}):\n{output}")
        return match

    latency = {
        pct: _ms(m.group(2), m.group(3))
        for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
        for pct in [m.group(1)]
    }
    if set(latency) != {"50", "99"}:
        raise BenchError(f"cannot read the latency distribution in wrk's output:\n{output}")
    total = need(r"^\s+(\d+) requests in ([\d.]+)(us|ms|s|m|h),")
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, errors.groups()), strict=True))
        if errors
        else {}
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    used = re.search(r"^BENCH_USED (\d+)", output, re.MULTILINE)
    exhausted = re.search(r"^BENCH_EXHAUSTED (\d+)", output, re.MULTILINE)
    return WrkResult(
        rps=float(need(r"^Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=latency["50"],
        p99_ms=latency["99"],
        requests=int(total.group(1)),
        seconds=_ms(total.group(2), total.group(3)) / 1000,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
        used=int(used.group(1)) if used else None,
        exhausted=int(exhausted.group(1)) if exhausted else 0,
        output=output,
    )


class LoadGenerator:
    """wrk, pinned to its core, with the scenario's Lua script and inputs."""

    def __init__(self, wrk: str, pin: Pinning, options: Options) -> None:
        self.wrk = wrk
        self.pin = pin
        self.options = options

    def command(self, server: Server, script: str, seconds: float) -> list[str]:
        return [
            *_nice(self.options.nice),
            *self.pin.prefix(self.pin.loadgen),
            self.wrk,
            f"-t{WRK_THREADS}",
            f"-c{self.options.connections}",
            f"-d{_seconds(seconds)}",
            "--timeout", "10s",
            "--latency",
            "-s", str(BENCH_DIR / script),
            server.url + PATH,
        ]  # fmt: skip

    def start(
        self, server: Server, script: str, seconds: float, env: dict[str, str]
    ) -> subprocess.Popen[str]:
        """wrk, started in the background."""
        return subprocess.Popen(
            self.command(server, script, seconds),
            env={**os.environ, **env, "BENCH_THREADS": str(WRK_THREADS)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def finish(self, process: subprocess.Popen[str], seconds: float) -> WrkResult:
        """wrk's figures once it has finished; raises BenchError if it failed."""
        try:
            output, _ = process.communicate(timeout=seconds + 120)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            raise BenchError(f"wrk did not finish: {shlex.join(process.args)}\n{output}") from None
        if process.returncode != 0:
            raise BenchError(
                f"wrk failed ({process.returncode}): {shlex.join(process.args)}\n{output}"
            )
        return parse_wrk(output)

    def run(self, server: Server, script: str, seconds: float, env: dict[str, str]) -> WrkResult:
        """One wrk run, with the CPU use of the server, of wrk and of others on their cores."""
        core = self.pin.server
        busy0, steal0, total0 = _cpu_ticks(core)
        lg_busy0, _, lg_total0 = _cpu_ticks(self.pin.loadgen)
        children0 = _children_seconds()
        proc0 = _process_ticks(server.pid)
        result = self.finish(self.start(server, script, seconds, env), seconds)
        busy1, steal1, total1 = _cpu_ticks(core)
        lg_busy1, _, lg_total1 = _cpu_ticks(self.pin.loadgen)
        wrk_seconds = _children_seconds() - children0
        proc1 = _process_ticks(server.pid)
        cores = 1 if core is not None else (os.cpu_count() or 1)
        window = max(1, total1 - total0) / cores
        result.server_cpu = (proc1 - proc0) / window
        result.others_cpu = max(0.0, (busy1 - busy0) - (proc1 - proc0)) / window
        result.stolen_cpu = (steal1 - steal0) / window
        if self.pin.loadgen is not None:
            lg_window = max(1, lg_total1 - lg_total0)
            wrk_ticks = wrk_seconds * _HZ
            result.wrk_cpu = wrk_ticks / lg_window
            result.loadgen_others_cpu = max(0.0, (lg_busy1 - lg_busy0) - wrk_ticks) / lg_window
        return result


def _seconds(value: float) -> str:
    return f"{max(1, round(value))}s"


# ---------------------------------------------------------------------------- inputs


class Inputs:
    """What the Lua scripts read: the API key, the POST bodies, the PATCH owners."""

    def __init__(self, owners: list[BenchOwner], options: Options) -> None:
        self.owners = owners
        self.options = options
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        self.patch_file = RUN_DIR / "patch-owners.txt"
        self.patch_file.write_text(
            "".join(f"{o.secret}\t{','.join(o.key_ids)}\n" for o in owners[:WRK_THREADS])
        )
        self.cursor = 0  # the next unused line of the POST pool, per server lifetime

    def reset(self) -> None:
        """A fresh database: the POST pool may be used again from its first line."""
        self.cursor = 0

    def env(self, scenario: Scenario, server: str, seconds: float) -> dict[str, str]:
        if scenario.key == "get":
            return {"BENCH_API_KEY": self.owners[0].secret}
        if scenario.key == "patch":
            return {"BENCH_OWNERS": str(self.patch_file)}
        lines = max(WRK_THREADS * 64, int(self.options.post_rate_cap * seconds))
        if server == "ceiling":
            # The ceiling stores nothing: it may see the same bodies in every round.
            return {"BENCH_BODIES": str(self._bodies(0, lines)), "BENCH_WRAP": "1"}
        return {"BENCH_BODIES": str(self._bodies(self.cursor, lines)), "BENCH_WRAP": "0"}

    def consumed(self, scenario: Scenario, server: str, result: WrkResult) -> None:
        """Move past the POST lines a gpucloud run used (thread t used lines t, t+n, …)."""
        if scenario.key == "post" and server == "gpucloud":
            if result.used is None:
                raise BenchError("post.lua did not report how many bodies it used")
            self.cursor += WRK_THREADS * result.used

    def _bodies(self, start: int, count: int) -> Path:
        keys = load_data.ensure_post_keys(start + count)
        path = RUN_DIR / "post-bodies.txt"
        owners = self.owners
        with path.open("w") as out:
            for index in range(start, start + count):
                body = json.dumps({"name": f"bench key {index}", "publicKey": keys[index]})
                out.write(f"{owners[index % len(owners)].secret}\t{body}\n")
        return path


# ---------------------------------------------------------------------------- rounds


@dataclass
class Round:
    scenario: Scenario
    server: str
    index: int
    result: WrkResult
    rss_kb: int
    hwm_kb: int
    problems: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    rounds: list[Round] = field(default_factory=list)
    peak_kb: dict[tuple[str, str], int] = field(default_factory=dict)  # (slug, server)
    start_kb: dict[tuple[str, str], int] = field(default_factory=dict)  # idle, after start
    response_bytes: dict[str, int] = field(default_factory=dict)
    db_build_seconds: dict[str, float | None] = field(default_factory=dict)
    code: dict[str, str] = field(default_factory=dict)  # scenario title: src/ fingerprint
    uvicorn_options: dict[str, dict[str, object] | None] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        return [p for r in self.rounds for p in r.problems]

    def of(self, scenario: Scenario, server: str) -> list[Round]:
        return [r for r in self.rounds if r.scenario == scenario and r.server == server]


def find_problems(result: WrkResult, what: str, server: Server, log_from: int) -> list[str]:
    """What makes a wrk run invalid: any non-2xx response, socket error, or reused POST
    body. Each problem comes with what the server logged since `log_from`."""
    problems = []
    if result.non_2xx:
        problems.append(f"{result.non_2xx} non-2xx responses")
    if any(result.socket_errors.values()):
        problems.append(f"socket errors {result.socket_errors}")
    if result.exhausted:
        problems.append(
            f"{result.exhausted} requests found no unused POST body (raise --post-rate-cap)"
        )
    if result.requests == 0:
        problems.append("no request completed")
    if not problems:
        return []
    return [
        f"INVALID: {what}: {'; '.join(problems)}\n{server.errors_since(log_from)}"
        f"--- wrk\n{result.output}"
    ]


def preflight(gpucloud: Server, ceiling: Server, owner: BenchOwner, outcome: Outcome) -> None:
    """One GET on each server: gpucloud must list the owner's 10 keys."""
    request = urllib.request.Request(  # noqa: S310 (an http URL built here)
        gpucloud.url + PATH, headers={"x-api-key": owner.secret}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            body = answer.read()
    except urllib.error.HTTPError as exc:
        raise BenchError(
            f"gpucloud answered GET {PATH} with {exc.code}: {exc.read()[:500]!r}\n{gpucloud.tail()}"
        ) from None
    listed = json.loads(body)
    if [k["_id"] for k in listed] != owner.key_ids:
        raise BenchError(f"gpucloud did not list the bench owner's 10 keys: {body[:300]!r}")
    outcome.response_bytes["gpucloud"] = len(body)
    try:
        with urllib.request.urlopen(ceiling.url + PATH, timeout=10) as answer:  # noqa: S310
            outcome.response_bytes["ceiling"] = len(answer.read())
    except urllib.error.HTTPError as exc:
        raise BenchError(
            f"the ceiling answered GET {PATH} with {exc.code}: is it serving another app?\n"
            f"{ceiling.tail()}"
        ) from None


def run_benchmark(options: Options, wrk: str, pin: Pinning) -> Outcome:
    outcome = Outcome()
    small = load_data.ensure_small()
    outcome.db_build_seconds["small"] = small.build_seconds
    plan: list[tuple[Scenario, Dataset]] = [(s, small) for s in SCENARIOS]
    if options.scale:
        large = load_data.ensure_large()
        outcome.db_build_seconds["large"] = large.build_seconds
        plan += [(s, large) for s in SCALE_SCENARIOS]
    inputs = Inputs(small.owners, options)
    loadgen = LoadGenerator(wrk, pin, options)
    ceiling = Server(
        "ceiling", ceiling_env(), pin, LOG_DIR / "ceiling.log", "ceiling", options.nice
    )
    try:
        for scenario, dataset in plan:
            database = load_data.fresh_copy(dataset, RUN_DIR / f"{scenario.slug}.db")
            inputs.reset()
            outcome.code[scenario.title] = source_fingerprint()
            print(f"bench: {scenario.title}: gpucloud on a copy of {dataset.path.name}")
            gpucloud = Server(
                "gpucloud",
                server_env(database, options.server_env),
                pin,
                LOG_DIR / f"gpucloud-{scenario.slug}.log",
                scenario.title,
                options.nice,
            )
            outcome.uvicorn_options["ceiling"] = ceiling.uvicorn_options
            outcome.uvicorn_options[scenario.title] = gpucloud.uvicorn_options
            try:
                if scenario.key == "get" and "gpucloud" not in outcome.response_bytes:
                    preflight(gpucloud, ceiling, small.owners[0], outcome)
                script = f"{scenario.key}.lua"
                for index in range(1, options.rounds + 1):
                    for server in (ceiling, gpucloud):
                        problems = []
                        for phase, seconds in (("warm-up", options.warmup), ("", options.duration)):
                            env = inputs.env(scenario, server.name, seconds)
                            log_from = server.log_size()
                            result = loadgen.run(server, script, seconds, env)
                            inputs.consumed(scenario, server.name, result)
                            what = f"{scenario.title}, {server.name}, round {index} {phase}"
                            problems += find_problems(result, what.strip(), server, log_from)
                            server.check_alive()
                        for problem in problems:
                            print(f"bench: {problem}", file=sys.stderr, flush=True)
                        rss, hwm = server.memory_kb()
                        outcome.rounds.append(
                            Round(scenario, server.name, index, result, rss, hwm, problems)
                        )
                        print(
                            f"  round {index} {server.name:8s} {result.rps:9,.0f} req/s  "
                            f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
                            f"RSS {rss / 1024:5.1f} MiB  server CPU {result.server_cpu:4.0%}  "
                            f"others on its core {result.others_cpu:4.0%}  "
                            f"stolen {result.stolen_cpu:4.0%}  wrk CPU {result.wrk_cpu:4.0%}  "
                            f"others on wrk's core {result.loadgen_others_cpu:4.0%}",
                            flush=True,
                        )
            finally:
                # A scenario with a problem keeps its whole log for a post-mortem.
                troubled = any(r.problems for r in outcome.rounds if r.scenario == scenario)
                gpucloud.stop(keep_log=options.keep_logs or troubled)
                outcome.peak_kb[(scenario.slug, "gpucloud")] = gpucloud.peak_kb
                outcome.start_kb[(scenario.slug, "gpucloud")] = gpucloud.start_kb
                load_data.remove_copy(database)
    finally:
        ceiling.stop(keep_log=True)
        outcome.peak_kb[("all", "ceiling")] = ceiling.peak_kb
        outcome.start_kb[("all", "ceiling")] = ceiling.start_kb
    return outcome


# ---------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Summary:
    scenario: Scenario
    server: str
    rps: float
    p50_ms: float
    p99_ms: float
    rss_growth: float | None
    peak_mib: float
    start_mib: float


def summarise(outcome: Outcome, scenario: Scenario, server: str) -> Summary | None:
    rounds = outcome.of(scenario, server)
    if not rounds:
        return None
    growth = None
    if len(rounds) > 1:
        growth = rounds[-1].rss_kb / rounds[0].rss_kb - 1
    peak = outcome.peak_kb.get((scenario.slug, server)) or max(r.hwm_kb for r in rounds)
    start = outcome.start_kb.get((scenario.slug, server), 0)
    if server == "ceiling":
        peak = max(r.hwm_kb for r in rounds)
        start = outcome.start_kb.get(("all", "ceiling"), 0)
    return Summary(
        scenario,
        server,
        statistics.median(r.result.rps for r in rounds),
        statistics.median(r.result.p50_ms for r in rounds),
        statistics.median(r.result.p99_ms for r in rounds),
        growth,
        peak / 1024,
        start / 1024,
    )


def _pct(value: float) -> str:
    return f"{value:.0%}"


def _num(value: float) -> str:
    return f"{value:,.0f}"


def _lat(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def results_table(outcome: Outcome, scenarios: Sequence[Scenario]) -> tuple[str, list[str]]:
    """The one table (markdown), and the verdicts on the issue's targets."""
    header = (
        "| scenario | server | req/s | p50 ms | p99 ms | req/s vs ceiling | p99 vs ceiling "
        "| 1M keys / small: req/s, p99 | RSS MiB: idle → peak | RSS first→last round |\n"
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n"
    )
    rows = []
    verdicts = []
    targets = {"get": (0.40, 3.0), "post": (0.20, None), "patch": (0.25, None)}
    for scenario in scenarios:
        ceiling = summarise(outcome, scenario, "ceiling")
        ours = summarise(outcome, scenario, "gpucloud")
        if ceiling is None or ours is None:
            continue
        rows.append(
            f"| {scenario.title} | ceiling | {_num(ceiling.rps)} | {_lat(ceiling.p50_ms)} "
            f"| {_lat(ceiling.p99_ms)} | | | | {ceiling.start_mib:.0f} → {ceiling.peak_mib:.0f} | |"
        )
        rps_ratio = ours.rps / ceiling.rps
        p99_ratio = ours.p99_ms / ceiling.p99_ms
        scale = ""
        if scenario.data == "large":
            base = summarise(outcome, Scenario(scenario.key, scenario.label, "small"), "gpucloud")
            if base is not None:
                rps_scale = ours.rps / base.rps
                p99_scale = ours.p99_ms / base.p99_ms
                scale = f"{rps_scale:.2f}, {p99_scale:.2f}"
                verdicts.append(
                    _verdict(f"{scenario.title}: req/s ≥ 90% of the small database's",
                             rps_scale >= 0.90, _pct(rps_scale))
                )  # fmt: skip
        growth = f"{ours.rss_growth:+.1%}" if ours.rss_growth is not None else "n/a"
        bad = sum(bool(r.problems) for r in outcome.of(scenario, "gpucloud"))
        flag = f" (**{bad} invalid round{'s' if bad > 1 else ''}**)" if bad else ""
        rows.append(
            f"| {scenario.title} | **gpucloud**{flag} | **{_num(ours.rps)}** | {_lat(ours.p50_ms)} "
            f"| {_lat(ours.p99_ms)} | **{_pct(rps_ratio)}** | {p99_ratio:.1f}x | {scale} "
            f"| {ours.start_mib:.0f} → {ours.peak_mib:.0f} | {growth} |"
        )
        if scenario.data == "small":
            floor, p99_max = targets[scenario.key]
            verdicts.append(
                _verdict(f"{scenario.title}: req/s ≥ {floor:.0%} of the ceiling's",
                         rps_ratio >= floor, _pct(rps_ratio))
            )  # fmt: skip
            if p99_max is not None:
                verdicts.append(
                    _verdict(f"{scenario.title}: p99 ≤ {p99_max:g}x the ceiling's",
                             p99_ratio <= p99_max, f"{p99_ratio:.1f}x")
                )  # fmt: skip
    summaries = [s for sc in scenarios if (s := summarise(outcome, sc, "gpucloud")) is not None]
    if summaries:
        peak = max(s.peak_mib for s in summaries)
        verdicts.append(_verdict("peak RSS of a gpucloud server ≤ 80 MB (76.3 MiB)", peak * 2**20 <= 80e6,
                                 f"{peak:.1f} MiB"))  # fmt: skip
        growths = [s.rss_growth for s in summaries if s.rss_growth is not None]
        if growths:
            worst = max(growths)
            verdicts.append(_verdict("RSS growth first → last round ≤ 5%", worst <= 0.05,
                                     f"{worst:+.1%} (worst scenario)"))  # fmt: skip
    return header + "\n".join(rows) + "\n", verdicts


def noisy_rounds(outcome: Outcome) -> list[Round]:
    """Rounds in which other processes took > 10 % of a core the measurement needed: the
    server's always, and wrk's too for the ceiling (which needs all of wrk's core)."""
    return [
        r
        for r in outcome.rounds
        if r.result.others_cpu + r.result.stolen_cpu > 0.10
        or (r.server == "ceiling" and r.result.loadgen_others_cpu > 0.10)
    ]


def _verdict(target: str, met: bool, measured: str) -> str:
    return f"| {target} | {measured} | {'met' if met else '**not met**'} |"


def rounds_table(outcome: Outcome) -> str:
    lines = [
        "| scenario | round | server | req/s | p50 ms | p99 ms | requests | RSS MiB after "
        "| server CPU | others on its core | stolen by the hypervisor | wrk CPU "
        "| others on wrk's core | valid |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in outcome.rounds:
        res = r.result
        lines.append(
            f"| {r.scenario.title} | {r.index} | {r.server} | {_num(res.rps)} "
            f"| {_lat(res.p50_ms)} | {_lat(res.p99_ms)} | {res.requests:,} "
            f"| {r.rss_kb / 1024:.1f} | {res.server_cpu:.0%} | {res.others_cpu:.0%} "
            f"| {res.stolen_cpu:.0%} | {res.wrk_cpu:.0%} | {res.loadgen_others_cpu:.0%} "
            f"| {'**no**' if r.problems else 'yes'} |"
        )
    return "\n".join(lines) + "\n"


def _shown_python() -> str:
    """The interpreter as the report shows it: relative to the checkout when inside it."""
    path = Path(sys.executable)
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def effective_settings(extra: dict[str, str]) -> str:
    """gpucloud's Settings as a server of this benchmark reads them (the database aside)."""
    env = server_env(Path("/db"), extra)
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        from gpucloud.config import Settings

        values = Settings.from_env().model_dump()
    except Exception as exc:  # the report must not fail on a settings change
        return f"(could not be read: {exc})"
    finally:
        os.environ.clear()
        os.environ.update(saved)
    values.pop("database_url", None)
    if values.get("redis_url"):
        values["redis_url"] = "(set)"
    return ", ".join(f"`{k}={v}`" for k, v in values.items())


def source_fingerprint() -> str:
    """A digest of src/'s Python files (names and contents): tells whether the code changed."""
    digest = hashlib.sha1(usedforsecurity=False)
    for path in sorted((ROOT / "src").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def source_revision() -> str:
    """The git commit of the working tree, and whether src/ has uncommitted changes."""
    commit = _run_text(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"])
    if not commit or "fatal" in commit:
        return "unknown (not a git checkout)"
    dirty = _run_text(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"])
    return f"`{commit}`" + (", **with uncommitted changes in src/**" if dirty else "")


def write_report(
    options: Options,
    outcome: Outcome,
    machine: dict[str, str],
    pin: Pinning,
    started: dt.datetime,
    loads: tuple[str, str],
    scenarios: Sequence[Scenario],
    command: str,
    revision: str,
) -> str:
    table, verdicts = results_table(outcome, scenarios)
    server_cmd = (
        shlex.join([*_nice(options.nice), *pin.prefix(pin.server), *launcher_command("TARGET", 0)])
        .replace("--port 0", "--port PORT")
        .replace(sys.executable, _shown_python())
    )
    launched = outcome.uvicorn_options
    ceiling_options = launched.get("ceiling")
    differing = sorted(
        title for title, opts in launched.items() if title != "ceiling" and opts != ceiling_options
    )
    if ceiling_options is None:
        options_text = "uvicorn's command-line options above (no gpucloud.server to run)"
    else:
        options_text = ", ".join(f"`{k}={v}`" for k, v in sorted(ceiling_options.items()))
    if differing:
        options_text += (
            f". **The gpucloud server got different options** in: {', '.join(differing)} "
            f"({launched[differing[0]]})"
        )
    wrk_cmd = (
        f"{shlex.join([*_nice(options.nice), *pin.prefix(pin.loadgen)])} wrk -t{WRK_THREADS} -c{options.connections} "
        f"-d{_seconds(options.duration)} --timeout 10s --latency -s bench/SCENARIO.lua URL"
    ).strip()
    extra_env = " ".join(f"{k}={v}" for k, v in sorted(options.server_env.items())) or "none"
    settings_text = effective_settings(options.server_env)
    build = ", ".join(
        f"{kind}: {'cached' if s is None else f'built in {s:.0f} s'}"
        for kind, s in outcome.db_build_seconds.items()
    )
    noisy = max((r.result.others_cpu + r.result.stolen_cpu for r in outcome.rounds), default=0.0)
    invalid = ""
    if outcome.problems:
        firsts = "\n".join(
            f"> - {p.splitlines()[0]} ({p.splitlines()[1].removeprefix('--- ')})"
            for p in outcome.problems
        )
        invalid = (
            f"\n> **INVALID RUN**: some requests failed, so these figures do not count:\n{firsts}\n"
        )
    if len(set(outcome.code.values())) > 1:
        invalid += (
            "\n> **The code under src/ changed during the run**: its scenarios measured "
            "different versions of gpucloud, so they cannot be compared.\n"
        )
    disturbed = noisy_rounds(outcome)
    noise_warning = (
        f"\n> **Noisy run**: in {len(disturbed)} of {len(outcome.rounds)} measured rounds other "
        "processes took more than 10 % of a core this benchmark needed (see *Every round*). "
        "Its ratios are indicative only; run again on a quiet machine to judge the targets.\n"
        if disturbed
        else ""
    )
    quick_note = (
        "\n**Quick mode** (`--quick`): one short round per scenario, no scale step. It proves "
        "the harness works; its figures say nothing about speed.\n"
        if options.quick
        else ""
    )
    machine_lines = "\n".join(f"- **{k}**: {v}" for k, v in machine.items())
    return f"""# Benchmarks

Written by `make bench` (`bench/run.py`); do not edit by hand. Run it again to refresh.
What the figures mean, where the time goes and what would close the gaps:
[docs/performance.md](performance.md).
{quick_note}{invalid}{noise_warning}
- **Date**: {started:%Y-%m-%d %H:%M} UTC
- **Code**: {revision}
- **Command**: `{command}`
- **Rounds**: {options.rounds} per scenario and server, alternating ceiling and gpucloud;
  each a {_seconds(options.warmup)} warm-up, then {_seconds(options.duration)} measured,
  {options.connections} connections, {WRK_THREADS} wrk threads. Figures are medians over rounds.
- **Load average** (1, 5, 15 min) at start: {loads[0]}; at end: {loads[1]}.
  Highest share of the server's core taken by other processes (or stolen by the
  hypervisor) during a measured round: {noisy:.0%}.

## Results

{table}
"req/s vs ceiling" is gpucloud's median requests/s as a share of the ceiling's, measured in
the same run; "p99 vs ceiling" the ratio of the p99 latencies. "1M keys / small" compares
gpucloud with 1,000,000 keys stored to gpucloud on the small database (requests/s, p99).
RSS: the server process's VmRSS once started and idle, and its peak (VmHWM); the last
column compares its VmRSS after the first and after the last round. (The ceiling's server
lives through the whole run.)

### The issue's targets (SQLite, medians)

| target | measured | |
|---|---|---|
{chr(10).join(verdicts)}

## Machine

{machine_lines}

## Method

- **Servers.** Both started by one command line, `{server_cmd}`, TARGET being
  `bench.ceiling:create_app` or `gpucloud.app:serving_app`. `bench/serve.py` runs
  gpucloud's own server entry point (`gpucloud.server`, which `gpucloud serve` execs after
  migrating) and swaps only the app it hands to `uvicorn.run`, so both servers get exactly
  the options gpucloud ships; the database is migrated beforehand by `gpucloud db upgrade`.
  uvicorn options, as logged by each server: {options_text}.
  Pinning: {pin.describe()}; every thread of a server (any database threads included)
  runs on its core.
  Scheduling priority (nice) of both servers and wrk: {options.nice}.
- **gpucloud's settings**: its defaults, except `GPUCLOUD_RATE_LIMIT_BURST` and
  `GPUCLOUD_RATE_LIMIT_PER_SECOND` = {NO_THROTTLE}: the limiter still counts every
  request, so its cost is measured, but it never refuses one. Other settings given with
  `--server-env`: {extra_env}. Every GPUCLOUD_* variable of the caller's environment is
  removed. The server's output (its access log) goes to a file in `.bench/logs/`.
  The settings the server read: {settings_text}.
- **The ceiling** (`bench/ceiling.py`): a bare Starlette app answering the same routes
  with constant, pre-serialised responses of gpucloud's shape ({outcome.response_bytes.get("ceiling", "?")}
  bytes for the list of 10 keys; gpucloud's: {outcome.response_bytes.get("gpucloud", "?")}
  bytes, plus its request-id and security headers). No auth, no database, no middleware.
- **Load**: `{wrk_cmd}`, after a warm-up with the same script.
  - `get.lua`: `GET /gpu-cloud/ssh-keys` as one owner with 10 keys (a static request).
  - `post.lua`: `POST /gpu-cloud/ssh-keys`, each request a unique name and a unique real
    Ed25519 key (made by `cryptography`, cached in `.bench/post-keys.txt`), spread over
    {load_data.BENCH_OWNERS:,} owners' API keys so that the 1000-keys-per-owner limit is never reached;
    each wrk thread takes its own share of the bodies, so no body is sent twice to one
    database. The ceiling gets the same kind of bodies.
  - `patch.lua`: `PATCH …/{{id}}/makedefault`, each wrk thread acting as its own owner and
    cycling over that owner's 10 key ids, so nearly every request moves the default.
- **Data**: a fresh copy of a cached database per scenario (each server starts from the same
  state; the server then keeps its data across its rounds). Small: {load_data.BENCH_OWNERS:,}
  owners x {load_data.KEYS_PER_OWNER} keys. Large: {load_data.LARGE_OWNERS:,} owners x
  {load_data.KEYS_PER_OWNER} keys = {load_data.LARGE_OWNERS * load_data.KEYS_PER_OWNER:,} keys
  (the small database plus filler owners), loaded by `bench/load_data.py` directly with
  sqlite3 in bulk, into a database migrated by `gpucloud db upgrade`, with the rows the
  service would write (and their audit events); checked by reading back through gpucloud's
  services. {build}.
- **Validity**: any non-2xx response, socket error or reused POST body fails the run.
- **Noise**: the "server CPU", "others on its core" and "stolen" columns below come from
  /proc/stat and /proc/<pid>/stat during each measured run. When other processes take a
  share of the server's core, gpucloud and the ceiling lose throughput alike, but not
  necessarily equally: compare ratios, not absolute figures, between machines and runs.
- wrk measures latency from the moment it sends a request on a connection that is free,
  so under saturation the p99 is the server's queueing as seen by 64 closed-loop clients
  (no coordinated-omission correction).

## Every round

{rounds_table(outcome)}"""


# ---------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description="gpucloud against a bare-ASGI ceiling, under wrk."
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run in under a minute: 1 round, 2 s, no scale"
    )
    parser.add_argument("--rounds", type=int, help="rounds per scenario and server (default 3)")
    parser.add_argument("--duration", type=float, help="seconds per measured run (default 10)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up before each (default 3)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--output", type=Path, help="markdown report (default docs/benchmarks.md)")
    parser.add_argument("--no-scale", action="store_true", help="skip the 1,000,000-key rounds")
    parser.add_argument(
        "--post-rate-cap",
        type=int,
        default=6000,
        help="POST bodies prepared per second of a run (a run faster than this fails; 6000)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra GPUCLOUD_* setting for the gpucloud server (repeatable)",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the servers' whole logs in .bench/logs"
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the servers and wrk at this nice level, e.g. -10 (root) to hold off "
        "other work on a busy machine; the same for both servers",
    )
    args = parser.parse_args(argv)
    extra = {}
    for item in args.server_env:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("GPUCLOUD_"):
            parser.error(f"--server-env takes GPUCLOUD_NAME=VALUE, not {item!r}")
        extra[name] = value
    quick = args.quick
    options = Options(
        quick=quick,
        rounds=args.rounds or (1 if quick else 3),
        duration=args.duration or (2.0 if quick else 10.0),
        warmup=args.warmup or (1.0 if quick else 3.0),
        connections=args.connections,
        output=args.output or (QUICK_OUTPUT if quick else DEFAULT_OUTPUT),
        scale=not (quick or args.no_scale),
        post_rate_cap=args.post_rate_cap,
        server_env=extra,
        keep_logs=args.keep_logs,
        nice=args.nice,
    )
    if options.rounds < 1 or options.duration < 1 or options.connections < WRK_THREADS:
        parser.error("--rounds ≥ 1, --duration ≥ 1 and --connections ≥ 2, please")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    try:
        wrk = ensure_wrk()
        pin = pinning()
        machine = machine_description(wrk)
        load_start = load_average()
        revision = source_revision()
        outcome = run_benchmark(options, wrk, pin)
    except BenchError as exc:
        print(f"\nbench: FAILED: {exc}", file=sys.stderr)
        return 1
    scenarios = [*SCENARIOS, *(SCALE_SCENARIOS if options.scale else ())]
    args = " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    command = f"python -m bench.run {args}".strip()
    report = write_report(
        options,
        outcome,
        machine,
        pin,
        started,
        (load_start, load_average()),
        scenarios,
        command,
        revision,
    )
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(report)
    table, verdicts = results_table(outcome, scenarios)
    print()
    print(table)
    print("| target | measured | |\n|---|---|---|\n" + "\n".join(verdicts))
    if len(set(outcome.code.values())) > 1:
        print("\nbench: WARNING: the code under src/ changed during the run; scenarios differ")
    disturbed = noisy_rounds(outcome)
    if disturbed:
        print(
            f"\nbench: WARNING: noisy machine: other processes took > 10 % of a needed core in "
            f"{len(disturbed)} of {len(outcome.rounds)} measured rounds; ratios are indicative only"
        )
    print(f"\nbench: {time.monotonic() - clock:.0f} s; report written to {options.output}")
    if outcome.problems:
        print(
            f"\nbench: FAILED: the run is INVALID: {len(outcome.problems)} wrk runs had errors "
            "(listed above and in the report); the servers' logs are in .bench/logs/",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
