"""`make bench`: gpucloud against its ceilings, under wrk, on one machine.

Two servers, started by the same command line (`bench/serve.py`: gpucloud's own server
entry point with the app swapped, so both get the uvicorn options gpucloud ships; one
worker, pinned to one core; wrk pinned to the other where there are two):

1. the **ceiling**, `bench.ceiling:create_app`: a bare Starlette app that answers each
   benchmarked route with a constant, pre-serialised response of gpucloud's shape (the
   list, the authorized_keys file, a create that parses its JSON body, a makedefault);
2. **gpucloud**, `gpucloud.app:serving_app` (what `gpucloud serve` runs), on a fresh
   copy of a cached database per scenario.

The scenarios (`KINDS`): GET list, GET authorized_keys, the same with a matching
If-None-Match (gpucloud answers 304; its ceiling is the authorized_keys one), POST
create, PATCH makedefault, on a small SQLite database; GET list, GET authorized_keys and
POST create again with 1,000,000 keys stored; then the five small ones on PostgreSQL (a
clone of a template copied from the small database, bench/postgres.py; no targets).
Rounds alternate ceiling and gpucloud; each is a warm-up followed by a measured wrk run.
Results: medians over rounds of requests/s and p50/p99 latency, the ratio to the
ceiling, the ratio large/small database, the server's RSS (VmHWM and VmRSS from /proc),
and the verdict on each target of issue 10 (`Kind.target`, `LARGE_FLOOR`, `RSS_LIMIT`).
`bench.extras.EXTRAS` adds further figures (a section of the report of their own).

A run is invalid (exit 1) when any wrk run had a socket error or an answer other than
its scenario's one status: wrk's error count covers statuses >= 400, and gpucloud's
access log, counted after every run, every other status (the 304 scenario must get
304s only, the others 2xx only).

    python -m bench.run                 # full run, writes docs/benchmarks.md
    python -m bench.run --quick         # ~2 minute smoke run, writes .bench/quick.md
    python -m bench.run --no-postgres   # without the PostgreSQL scenarios
"""

from __future__ import annotations

import argparse
import collections
import contextlib
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
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import FrameType

from bench import extras, load_data, postgres
from bench.load_data import CACHE, ROOT, BenchOwner, Dataset

BENCH_DIR = Path(__file__).resolve().parent
RUN_DIR = CACHE / "run"
LOG_DIR = CACHE / "logs"
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
QUICK_OUTPUT = CACHE / "quick.md"
PATH = "/gpu-cloud/ssh-keys"
WRK_THREADS = 2
# What makes statuses.lua count the answers by status (gpucloud's runs only).
COUNT_STATUSES = {"BENCH_COUNT_STATUSES": "1"}
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
    "gpucloud", "uvicorn", "uvloop", "httptools", "starlette", "pydantic", "sqlalchemy",
    "asyncpg", "orjson", "cryptography", "redis", "prometheus-client",
)  # fmt: skip
# Issue 10's targets besides each kind's own: the large database against the small one
# (requests/s), and the peak RSS of a serving process.
LARGE_FLOOR = 0.90
RSS_LIMIT = 80_000_000  # bytes (80 MB = 76.3 MiB)


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
    with_postgres: bool = True
    postgres_url: str = postgres.ADMIN_URL


@dataclass(frozen=True)
class Kind:
    """What one scenario sends, what gpucloud must answer, and the ceiling it is held to."""

    key: str
    label: str
    path: str  # the URL path wrk is given (patch.lua appends /{id}/makedefault)
    script: str
    status: int  # the one status gpucloud may answer
    ceiling: str  # the ceiling route it is judged against: the key of a kind
    target: float | None  # issue 10's floor, a share of that ceiling (small SQLite database)


KINDS = {
    kind.key: kind
    for kind in (
        Kind("list", "GET list", PATH, "get.lua", 200, "list", 0.40),
        Kind("authorized_keys", "GET authorized_keys", PATH + "/authorized_keys", "get.lua",
             200, "authorized_keys", 0.40),
        Kind("not_modified", "GET authorized_keys, If-None-Match", PATH + "/authorized_keys",
             "get.lua", 304, "authorized_keys", 0.50),
        Kind("post", "POST create", PATH, "post.lua", 201, "post", 0.15),
        Kind("patch", "PATCH makedefault", PATH, "patch.lua", 204, "patch", 0.25),
    )
}  # fmt: skip


@dataclass(frozen=True)
class Scenario:
    kind: Kind
    data: str  # "small" or "large"
    backend: str = "sqlite"  # or "postgres"

    @property
    def label(self) -> str:
        """The kind, and the large database when it is that one."""
        return self.kind.label if self.data == "small" else f"{self.kind.label}, 1M keys"

    @property
    def title(self) -> str:
        return self.label if self.backend == "sqlite" else f"{self.label}, PostgreSQL"

    @property
    def slug(self) -> str:
        return f"{self.kind.key}-{self.data}-{self.backend}"

    @property
    def ceiling_label(self) -> str:
        """The ceiling's row: which of its routes, when not the scenario's own."""
        if self.kind.ceiling == self.kind.key:
            return "ceiling"
        return f"ceiling ({KINDS[self.kind.ceiling].label}, {KINDS[self.kind.ceiling].status})"


SCENARIOS = tuple(Scenario(kind, "small") for kind in KINDS.values())
SCALE_SCENARIOS = tuple(Scenario(KINDS[k], "large") for k in ("list", "authorized_keys", "post"))
POSTGRES_SCENARIOS = tuple(Scenario(kind, "small", "postgres") for kind in KINDS.values())


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


# The status of an access-log line, JSON (`"status":304`) or text (`status=304`).
_ACCESS_STATUS = re.compile(rb'"status": ?(\d{3})\b|\bstatus=(\d{3})\b')


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
        try:
            self._wait_ready()
        except BaseException:  # a server that never became ready must not outlive the run
            self.stop(keep_log=True)
            raise
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

    def _log_since(self, offset: int) -> bytes:
        if not self._log_file.closed:
            self._log_file.flush()
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read()

    def statuses_since(self, offset: int) -> collections.Counter[int]:
        """How many answers of each status the access log holds after `offset` (empty
        when the server writes no access log: the ceiling, or gpucloud below level INFO).
        For a post-mortem only: it also holds the answers to requests wrk left in flight."""
        counts: collections.Counter[int] = collections.Counter()
        for json_status, text_status in _ACCESS_STATUS.findall(self._log_since(offset)):
            counts[int(json_status or text_status)] += 1
        return counts

    def errors_since(self, offset: int, limit: int = 5) -> str:
        """The statuses and the warnings the server logged after `offset`, summarised."""
        statuses = dict(sorted(self.statuses_since(offset).items()))
        warnings = []
        for line in self._log_since(offset).decode(errors="replace").splitlines():
            if re.search(r'"level": ?"(warning|error|critical)"', line) or "Traceback" in line:
                warnings.append(line[:600])
        summary = f"--- the {self.name} server logged statuses {statuses or 'none'}"
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


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def server_env(database_url: str, extra: dict[str, str]) -> dict[str, str]:
    """The environment of a gpucloud server: the caller's, minus any GPUCLOUD_* setting,
    plus the database and the rate limits that never refuse."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")}
    env.update(
        {
            "GPUCLOUD_DATABASE_URL": database_url,
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
    # The answers wrk received, by status (statuses.lua; counted in gpucloud's runs only)
    statuses: dict[int, int] = field(default_factory=dict)


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
    statuses = {
        int(m.group(1)): int(m.group(2))
        for m in re.finditer(r"^BENCH_STATUS (\d+) (\d+)$", output, re.MULTILINE)
    }
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
        statuses=statuses,
    )


class LoadGenerator:
    """wrk, pinned to its core, with a kind's Lua script, URL path and inputs."""

    def __init__(self, wrk: str, pin: Pinning, options: Options) -> None:
        self.wrk = wrk
        self.pin = pin
        self.options = options

    def command(self, server: Server, kind: Kind, seconds: float) -> list[str]:
        return [
            *_nice(self.options.nice),
            *self.pin.prefix(self.pin.loadgen),
            self.wrk,
            f"-t{WRK_THREADS}",
            f"-c{self.options.connections}",
            f"-d{_seconds(seconds)}",
            "--timeout", "10s",
            "--latency",
            "-s", str(BENCH_DIR / kind.script),
            server.url + kind.path,
        ]  # fmt: skip

    def start(
        self, server: Server, kind: Kind, seconds: float, env: dict[str, str]
    ) -> subprocess.Popen[str]:
        """wrk, started in the background."""
        return subprocess.Popen(
            self.command(server, kind, seconds),
            env={
                **os.environ,
                **env,
                "BENCH_THREADS": str(WRK_THREADS),
                "BENCH_LUA_DIR": str(BENCH_DIR),
            },
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
        except BaseException:  # interrupted: wrk must not outlive the benchmark
            process.kill()
            process.wait()
            raise
        if process.returncode != 0:
            raise BenchError(
                f"wrk failed ({process.returncode}): {shlex.join(process.args)}\n{output}"
            )
        return parse_wrk(output)

    def run(self, server: Server, kind: Kind, seconds: float, env: dict[str, str]) -> WrkResult:
        """One wrk run, with the CPU use of the server, of wrk and of others on their cores."""
        core = self.pin.server
        busy0, steal0, total0 = _cpu_ticks(core)
        lg_busy0, _, lg_total0 = _cpu_ticks(self.pin.loadgen)
        children0 = _children_seconds()
        proc0 = _process_ticks(server.pid)
        result = self.finish(self.start(server, kind, seconds, env), seconds)
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
    """What the Lua scripts read: the API key (and entity tag), the POST bodies, the PATCH
    owners."""

    def __init__(self, owners: list[BenchOwner], options: Options) -> None:
        self.owners = owners
        self.options = options
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        self.patch_file = RUN_DIR / "patch-owners.txt"
        self.patch_file.write_text(
            "".join(f"{o.secret}\t{','.join(o.key_ids)}\n" for o in owners[:WRK_THREADS])
        )
        self.cursor = 0  # the next unused line of the POST pool, per server lifetime
        self.etag: str | None = None  # authorized_keys' ETag, from gpucloud's preflight

    def reset(self) -> None:
        """A fresh database: the POST pool may be used again from its first line."""
        self.cursor = 0

    def env(self, kind: Kind, server: str, seconds: float) -> dict[str, str]:
        if kind.script == "get.lua":
            env = {"BENCH_API_KEY": self.owners[0].secret}
            if kind.status == 304:
                # The ceiling gets the same request (and ignores the header).
                if self.etag is None:
                    raise BenchError(f"{kind.label}: no ETag was fetched from gpucloud")
                env["BENCH_IF_NONE_MATCH"] = self.etag
            return env
        if kind.script == "patch.lua":
            return {"BENCH_OWNERS": str(self.patch_file)}
        lines = max(WRK_THREADS * 64, int(self.options.post_rate_cap * seconds))
        if server == "ceiling":
            # The ceiling stores nothing: it may see the same bodies in every round.
            return {"BENCH_BODIES": str(self._bodies(0, lines)), "BENCH_WRAP": "1"}
        return {"BENCH_BODIES": str(self._bodies(self.cursor, lines)), "BENCH_WRAP": "0"}

    def consumed(self, kind: Kind, server: str, result: WrkResult) -> None:
        """Move past the POST lines a gpucloud run used (thread t used lines t, t+n, …)."""
        if kind.script == "post.lua" and server == "gpucloud":
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
    response_bytes: dict[tuple[str, str], int] = field(default_factory=dict)  # (server, kind)
    db_build_seconds: dict[str, float | None] = field(default_factory=dict)
    code: dict[str, str] = field(default_factory=dict)  # scenario title: src/ fingerprint
    uvicorn_options: dict[str, dict[str, object] | None] = field(default_factory=dict)
    postgres_skipped: str | None = None  # why the PostgreSQL scenarios did not run
    postgres_rows: dict[str, int] = field(default_factory=dict)  # copied into the template
    extras: list[extras.Figure] = field(default_factory=list)
    extra_problems: list[str] = field(default_factory=list)
    cleanup_errors: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [p for r in self.rounds for p in r.problems] + self.extra_problems

    def of(self, scenario: Scenario, server: str) -> list[Round]:
        return [r for r in self.rounds if r.scenario == scenario and r.server == server]


def find_problems(
    result: WrkResult, what: str, server: Server, log_from: int, expected: int | None = None
) -> list[str]:
    """What makes a wrk run invalid: a status >= 400 or a socket error (wrk's counts), a
    reused POST body, and, when `expected` is given (gpucloud's runs, whose answers
    statuses.lua counts), any answer of another status. Each problem comes with what the
    server logged since `log_from`."""
    problems = []
    if result.non_2xx:
        problems.append(f"{result.non_2xx} answers with a status >= 400")
    if any(result.socket_errors.values()):
        problems.append(f"socket errors {result.socket_errors}")
    if result.exhausted:
        problems.append(
            f"{result.exhausted} requests found no unused POST body (raise --post-rate-cap)"
        )
    if result.requests == 0:
        problems.append("no request completed")
    if expected is not None:
        others = {s: n for s, n in sorted(result.statuses.items()) if s != expected}
        counted = sum(result.statuses.values())
        if others:
            problems.append(f"answers other than {expected}: {others}")
        if counted != result.requests:
            problems.append(
                f"statuses.lua counted {counted:,} answers for wrk's {result.requests:,}, "
                "so their statuses cannot be checked"
            )
    if not problems:
        return []
    return [
        f"INVALID: {what}: {'; '.join(problems)}\n{server.errors_since(log_from)}"
        f"--- wrk\n{result.output}"
    ]


def measure(
    loadgen: LoadGenerator, server: Server, kind: Kind, seconds: float, env: dict[str, str],
    what: str,
) -> tuple[WrkResult, list[str]]:  # fmt: skip
    """One wrk run (gpucloud's with its answers counted by status); its problems (none:
    valid)."""
    log_from = server.log_size()
    ours = server.name == "gpucloud"
    result = loadgen.run(server, kind, seconds, {**env, **COUNT_STATUSES} if ours else env)
    problems = find_problems(result, what, server, log_from, kind.status if ours else None)
    server.check_alive()
    return result, problems


def _fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one GET; a status >= 300 is an answer too."""
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (our http URL)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return answer.status, dict(answer.headers.items()), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def preflight_ceiling(ceiling: Server, outcome: Outcome) -> None:
    """The ceiling answers the list and the authorized_keys file; their sizes are kept."""
    for key in ("list", "authorized_keys"):
        status, _, body = _fetch(ceiling.url + KINDS[key].path)
        if status != 200:
            raise BenchError(
                f"the ceiling answered GET {KINDS[key].path} with {status}: is it serving "
                f"another app?\n{ceiling.tail()}"
            )
        outcome.response_bytes[("ceiling", key)] = len(body)


def preflight(gpucloud: Server, owner: BenchOwner, outcome: Outcome) -> str:
    """gpucloud must list the owner's 10 keys, serve them as an authorized_keys file
    (default first) with a strong ETag, and answer 304 to that tag; returns the tag."""
    auth = {"x-api-key": owner.secret}

    def get(key: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        status, answer_headers, body = _fetch(gpucloud.url + KINDS[key].path, headers)
        if status != KINDS[key].status or (status == 200 and not body):
            raise BenchError(
                f"gpucloud answered GET {KINDS[key].path} ({KINDS[key].label}) with {status}, "
                f"not {KINDS[key].status}: {body[:500]!r}\n{gpucloud.tail()}"
            )
        return status, {k.lower(): v for k, v in answer_headers.items()}, body

    _, _, listed_body = get("list", auth)
    listed = json.loads(listed_body)
    if [k["_id"] for k in listed] != owner.key_ids:
        raise BenchError(f"gpucloud did not list the bench owner's 10 keys: {listed_body[:300]!r}")
    _, headers, file_body = get("authorized_keys", auth)
    expected = [k["publicKey"] for k in listed if k["isDefault"]]
    expected += [k["publicKey"] for k in listed if not k["isDefault"]]
    if file_body.decode().splitlines() != expected:
        raise BenchError(
            f"gpucloud's authorized_keys is not the owner's keys, default first: {file_body[:300]!r}"
        )
    if not headers.get("content-type", "").startswith("text/plain"):
        raise BenchError(f"gpucloud's authorized_keys is {headers.get('content-type')!r}")
    etag = headers.get("etag")
    if not etag or etag.startswith("W/"):
        raise BenchError(
            f"gpucloud sent no strong ETag with authorized_keys ({etag!r}): the "
            f"{KINDS['not_modified'].label} scenario cannot run"
        )
    get("not_modified", {**auth, "If-None-Match": etag})
    outcome.response_bytes.setdefault(("gpucloud", "list"), len(listed_body))
    outcome.response_bytes.setdefault(("gpucloud", "authorized_keys"), len(file_body))
    return etag


@contextlib.contextmanager
def scenario_database(
    scenario: Scenario, datasets: dict[str, Dataset], pg: postgres.PostgresDatabases | None
) -> Iterator[str]:
    """The URL of a fresh database for one scenario (a copy, or a clone), removed after."""
    if scenario.backend == "postgres":
        if pg is None:
            raise BenchError(f"{scenario.title}: no PostgreSQL server")
        url = pg.fresh(scenario.slug)
        try:
            yield url
        finally:
            pg.drop(url)
        return
    path = load_data.fresh_copy(datasets[scenario.data], RUN_DIR / f"{scenario.slug}.db")
    try:
        yield sqlite_url(path)
    finally:
        load_data.remove_copy(path)


def run_scenario(
    scenario: Scenario,
    database_url: str,
    options: Options,
    pin: Pinning,
    loadgen: LoadGenerator,
    inputs: Inputs,
    ceiling: Server,
    outcome: Outcome,
) -> None:
    """The rounds of one scenario: gpucloud started on `database_url`, alternating with the
    ceiling (its route for this kind), each round a warm-up and a measured run."""
    inputs.reset()
    outcome.code[scenario.title] = source_fingerprint()
    where = "a clone of the template" if scenario.backend == "postgres" else "a copy"
    print(f"bench: {scenario.title}: gpucloud on {where} of the {scenario.data} database")
    gpucloud = Server(
        "gpucloud",
        server_env(database_url, options.server_env),
        pin,
        LOG_DIR / f"gpucloud-{scenario.slug}.log",
        scenario.title,
        options.nice,
    )
    outcome.uvicorn_options["ceiling"] = ceiling.uvicorn_options
    outcome.uvicorn_options[scenario.title] = gpucloud.uvicorn_options
    try:
        inputs.etag = preflight(gpucloud, inputs.owners[0], outcome)
        for index in range(1, options.rounds + 1):
            for server in (ceiling, gpucloud):
                # The ceiling answers with the route this kind is judged against.
                kind = scenario.kind if server is gpucloud else KINDS[scenario.kind.ceiling]
                problems = []
                for phase, seconds in (("warm-up", options.warmup), ("", options.duration)):
                    # Same request for both (the 304 kind's If-None-Match included).
                    env = inputs.env(scenario.kind, server.name, seconds)
                    what = f"{scenario.title}, {server.name}, round {index} {phase}".strip()
                    result, found = measure(loadgen, server, kind, seconds, env, what)
                    inputs.consumed(kind, server.name, result)
                    problems += found
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
                    f"others on wrk's core {result.loadgen_others_cpu:4.0%}"
                    + (f"  statuses {_statuses(result)}" if server is gpucloud else ""),
                    flush=True,
                )
    finally:
        # A scenario with a problem keeps its whole log for a post-mortem.
        troubled = any(r.problems for r in outcome.rounds if r.scenario == scenario)
        gpucloud.stop(keep_log=options.keep_logs or troubled)
        outcome.peak_kb[(scenario.slug, "gpucloud")] = gpucloud.peak_kb
        outcome.start_kb[(scenario.slug, "gpucloud")] = gpucloud.start_kb


@dataclass
class Bench:
    """The running benchmark, as an extra measurement (bench.extras) sees it: the options,
    the machine's pinning, wrk, the small database, the ceiling (still serving)."""

    options: Options
    pin: Pinning
    loadgen: LoadGenerator
    inputs: Inputs
    small: Dataset
    ceiling: Server

    @contextlib.contextmanager
    def gpucloud(self, label: str) -> Iterator[Server]:
        """A gpucloud server, started as in the scenarios, on a fresh copy of the small
        SQLite database; stopped (and the copy removed) afterwards."""
        slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
        database = load_data.fresh_copy(self.small, RUN_DIR / f"extra-{slug}.db")
        try:
            server = Server(
                "gpucloud",
                server_env(sqlite_url(database), self.options.server_env),
                self.pin,
                LOG_DIR / f"gpucloud-extra-{slug}.log",
                label,
                self.options.nice,
            )
            try:
                yield server
            finally:
                server.stop(keep_log=self.options.keep_logs)
        finally:
            load_data.remove_copy(database)

    def measure(self, server: Server, kind: Kind, env: dict[str, str], *, what: str) -> WrkResult:
        """A warm-up, then a measured wrk run of `kind` (the options' durations); raises
        BenchError when either was invalid (for gpucloud: any status but `kind.status`)."""
        result = None
        for phase, seconds in (("warm-up", self.options.warmup), ("", self.options.duration)):
            result, problems = measure(
                self.loadgen, server, kind, seconds, env, f"{what} {phase}".strip()
            )
            if problems:
                raise BenchError("\n".join(problems))
        assert result is not None
        return result


def run_extras(bench: Bench, outcome: Outcome) -> None:
    """Each of bench.extras.EXTRAS in turn; one that raises BenchError voids the run."""
    for extra in extras.EXTRAS:
        name = getattr(extra, "__name__", repr(extra))
        print(f"bench: extra measurement: {name}")
        try:
            figures = list(extra(bench))
        except BenchError as exc:
            problem = f"INVALID: extra measurement {name}: {exc}"
            print(f"bench: {problem}", file=sys.stderr, flush=True)
            outcome.extra_problems.append(problem)
            continue
        for figure in figures:
            print(f"  {figure.name}: {figure.value}")
        outcome.extras += figures


def run_benchmark(options: Options, wrk: str, pin: Pinning) -> Outcome:
    outcome = Outcome()
    small = load_data.ensure_small()
    outcome.db_build_seconds["small"] = small.build_seconds
    datasets = {"small": small}
    plan: list[Scenario] = list(SCENARIOS)
    if options.scale:
        large = load_data.ensure_large()
        outcome.db_build_seconds["large"] = large.build_seconds
        datasets["large"] = large
        plan += SCALE_SCENARIOS
    pg = None
    if not options.with_postgres:
        outcome.postgres_skipped = "not run (`--no-postgres`)"
    elif (reason := postgres.unreachable(options.postgres_url)) is not None:
        outcome.postgres_skipped = f"skipped: {reason}"
    else:
        pg = postgres.PostgresDatabases(options.postgres_url)
    if outcome.postgres_skipped:
        print(f"bench: PostgreSQL scenarios {outcome.postgres_skipped}")
    try:
        if pg is not None:
            print(f"bench: PostgreSQL: copying the small database into a template ({pg.stem}…)")
            try:
                pg.prepare(small)
            except postgres.PostgresError as exc:
                raise BenchError(f"PostgreSQL: {exc}") from exc
            outcome.db_build_seconds["postgres"] = pg.build_seconds
            outcome.postgres_rows = pg.copied
            plan += POSTGRES_SCENARIOS
        inputs = Inputs(small.owners, options)
        loadgen = LoadGenerator(wrk, pin, options)
        ceiling = Server(
            "ceiling", ceiling_env(), pin, LOG_DIR / "ceiling.log", "ceiling", options.nice
        )
        try:
            preflight_ceiling(ceiling, outcome)
            for scenario in plan:
                with scenario_database(scenario, datasets, pg) as url:
                    run_scenario(scenario, url, options, pin, loadgen, inputs, ceiling, outcome)
            run_extras(Bench(options, pin, loadgen, inputs, small, ceiling), outcome)
        finally:
            ceiling.stop(keep_log=True)
            outcome.peak_kb[("all", "ceiling")] = ceiling.peak_kb
            outcome.start_kb[("all", "ceiling")] = ceiling.start_kb
    finally:
        if pg is not None:
            outcome.cleanup_errors = pg.close()
            for error in outcome.cleanup_errors:
                print(f"bench: WARNING: PostgreSQL: {error}", file=sys.stderr)
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


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _statuses(result: WrkResult) -> str:
    """gpucloud's answers of a run by status, as statuses.lua counted them."""
    if not result.statuses:
        return "not counted"
    return ", ".join(f"{status}: {count:,}" for status, count in sorted(result.statuses.items()))


def results_table(
    outcome: Outcome, scenarios: Sequence[Scenario], *, judged: bool = True
) -> tuple[str, list[str]]:
    """One table (markdown) of these scenarios, and, when `judged`, the verdicts on issue
    10's targets that they measure (each kind's floor on the small database, the large
    database against the small one, the peak RSS)."""
    scale = any(s.data == "large" for s in scenarios)
    columns = ["scenario", "server", "req/s", "p50 ms", "p99 ms", "req/s vs ceiling",
               "p99 vs ceiling", *(["1M keys / small: share, p99"] if scale else []),
               "RSS MiB: idle → peak", "RSS first→last round"]  # fmt: skip
    lines = [_row(columns), "|---|---|" + "--:|" * (len(columns) - 2)]
    verdicts = []
    for scenario in scenarios:
        ceiling = summarise(outcome, scenario, "ceiling")
        ours = summarise(outcome, scenario, "gpucloud")
        if ceiling is None or ours is None:
            continue
        lines.append(
            _row([scenario.label, scenario.ceiling_label, _num(ceiling.rps),
                  _lat(ceiling.p50_ms), _lat(ceiling.p99_ms), "", "", *([""] if scale else []),
                  f"{ceiling.start_mib:.0f} → {ceiling.peak_mib:.0f}", ""])
        )  # fmt: skip
        rps_ratio = ours.rps / ceiling.rps
        p99_ratio = ours.p99_ms / ceiling.p99_ms
        scale_cell = ""
        if scenario.data == "large":
            small = Scenario(scenario.kind, "small", scenario.backend)
            base = summarise(outcome, small, "gpucloud")
            base_ceiling = summarise(outcome, small, "ceiling")
            if base is not None and base_ceiling is not None:
                # Judged on the shares of the ceiling, each measured beside its own rounds:
                # the two parts of a run are minutes apart, and the host's own speed can
                # drift between them (docs/decisions.md D61). The raw ratio is shown too.
                rps_scale = rps_ratio / (base.rps / base_ceiling.rps)
                scale_cell = (f"{rps_scale:.2f} ({ours.rps / base.rps:.2f} raw), "
                              f"{ours.p99_ms / base.p99_ms:.2f}")  # fmt: skip
                if judged:
                    verdicts.append(
                        _verdict(f"{scenario.label}: share of the ceiling ≥ {LARGE_FLOOR:.0%} "
                                 "of the small database's", rps_scale >= LARGE_FLOOR,
                                 f"{_pct(rps_scale)} (raw req/s {_pct(ours.rps / base.rps)})")
                    )  # fmt: skip
        growth = f"{ours.rss_growth:+.1%}" if ours.rss_growth is not None else "n/a"
        bad = sum(bool(r.problems) for r in outcome.of(scenario, "gpucloud"))
        flag = f" (**{bad} invalid round{'s' if bad > 1 else ''}**)" if bad else ""
        lines.append(
            _row([scenario.label, f"**gpucloud**{flag}", f"**{_num(ours.rps)}**",
                  _lat(ours.p50_ms), _lat(ours.p99_ms), f"**{_pct(rps_ratio)}**",
                  f"{p99_ratio:.1f}x", *([scale_cell] if scale else []),
                  f"{ours.start_mib:.0f} → {ours.peak_mib:.0f}", growth])
        )  # fmt: skip
        if judged and scenario.data == "small" and scenario.kind.target is not None:
            bound = KINDS[scenario.kind.ceiling]
            of = "the ceiling's" if bound is scenario.kind else f"the {bound.label} ceiling's"
            verdicts.append(
                _verdict(f"{scenario.label}: req/s ≥ {scenario.kind.target:.0%} of {of}",
                         rps_ratio >= scenario.kind.target, _pct(rps_ratio))
            )  # fmt: skip
    summaries = [s for sc in scenarios if (s := summarise(outcome, sc, "gpucloud")) is not None]
    if judged and summaries:
        peak = max(s.peak_mib for s in summaries)
        verdicts.append(
            _verdict(f"peak RSS of a serving process ≤ {RSS_LIMIT / 1e6:.0f} MB "
                     f"({RSS_LIMIT / 2**20:.1f} MiB)", peak * 2**20 <= RSS_LIMIT,
                     f"{peak:.1f} MiB")
        )  # fmt: skip
    return "\n".join(lines) + "\n", verdicts


def extras_section(outcome: Outcome) -> tuple[str, list[str]]:
    """The extra measurements' table (markdown), and the verdicts of those with a target."""
    if not outcome.extras and not outcome.extra_problems:
        names = ", ".join(getattr(e, "__name__", repr(e)) for e in extras.EXTRAS)
        return (f"None measured ({names or 'bench.extras.EXTRAS is empty'}).\n", [])
    lines = [_row(["measurement", "figure", "target", ""]), "|---|--:|---|---|"]
    verdicts = []
    for figure in outcome.extras:
        met = "" if figure.met is None else ("met" if figure.met else "**not met**")
        lines.append(_row([figure.name, figure.value, figure.target or "", met]))
        if figure.target is not None and figure.met is not None:
            verdicts.append(_verdict(f"{figure.name}: {figure.target}", figure.met, figure.value))
    notes = [f"- {f.name}: {f.note}" for f in outcome.extras if f.note]
    failed = [f"- **failed**: {p.splitlines()[0]}" for p in outcome.extra_problems]
    return "\n".join([*lines, "", *notes, *failed]).rstrip() + "\n", verdicts


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
        "| scenario | round | server | req/s | p50 ms | p99 ms | requests | statuses "
        "| RSS MiB after | server CPU | others on its core | stolen by the hypervisor | wrk CPU "
        "| others on wrk's core | valid |",
        "|---|--:|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in outcome.rounds:
        res = r.result
        lines.append(
            f"| {r.scenario.title} | {r.index} | {r.server} | {_num(res.rps)} "
            f"| {_lat(res.p50_ms)} | {_lat(res.p99_ms)} | {res.requests:,} "
            f"| {_statuses(res) if r.server == 'gpucloud' else ''} "
            f"| {r.rss_kb / 1024:.1f} | {res.server_cpu:.0%} | {res.others_cpu:.0%} "
            f"| {res.stolen_cpu:.0%} | {res.wrk_cpu:.0%} | {res.loadgen_others_cpu:.0%} "
            f"| {'**no**' if r.problems else 'yes'} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- facts


def _shown_python() -> str:
    """The interpreter as the report shows it: relative to the checkout when inside it."""
    path = Path(sys.executable)
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def effective_settings(extra: dict[str, str]) -> str:
    """gpucloud's Settings as a server of this benchmark reads them (the database aside)."""
    env = server_env(sqlite_url(Path("/db")), extra)
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


def _targets_text() -> str:
    """Issue 10's targets, as the method section states them."""
    floors = "; ".join(
        f"{k.label} ≥ {k.target:.2f} of the {KINDS[k.ceiling].label} ceiling"
        for k in KINDS.values()
        if k.target is not None
    )
    large = ", ".join(s.kind.label for s in SCALE_SCENARIOS)
    return (
        f"{floors}; with 1,000,000 keys, {large} each ≥ {LARGE_FLOOR:.0%} of its "
        f"small-database figure; peak RSS of a serving process ≤ {RSS_LIMIT / 1e6:.0f} MB. "
        "Medians of the rounds, SQLite, all in the same run"
    )


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
    sqlite = [s for s in scenarios if s.backend == "sqlite"]
    on_postgres = [s for s in scenarios if s.backend == "postgres"]
    table, verdicts = results_table(outcome, sqlite)
    extras_text, extra_verdicts = extras_section(outcome)
    verdicts += extra_verdicts
    if outcome.postgres_skipped:
        postgres_text = f"PostgreSQL {outcome.postgres_skipped}.\n"
    else:
        postgres_text = results_table(outcome, on_postgres, judged=False)[0] + (
            "\nThe same small-database scenarios, each on a fresh clone of a PostgreSQL "
            "database\nthat holds the small SQLite database's rows; the ceiling is measured "
            "again beside each.\n"
        )
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
        f"-d{_seconds(options.duration)} --timeout 10s --latency -s bench/SCRIPT.lua URL"
    ).strip()
    extra_env = " ".join(f"{k}={v}" for k, v in sorted(options.server_env.items())) or "none"
    settings_text = effective_settings(options.server_env)
    built = {
        "small": "small database",
        "large": "large database",
        "postgres": "PostgreSQL template",
    }
    build = "This run: " + "; ".join(
        f"{built.get(kind, kind)} {'from the cache' if s is None else f'built in {s:.0f} s'}"
        for kind, s in outcome.db_build_seconds.items()
    )
    copied = ", ".join(f"{n:,} {t}" for t, n in outcome.postgres_rows.items()) or "nothing"
    size = outcome.response_bytes
    noisy = max((r.result.others_cpu + r.result.stolen_cpu for r in outcome.rounds), default=0.0)
    invalid = ""
    if outcome.problems:
        firsts = "\n".join(
            f"> - {lines[0]}" + (f" ({lines[1].removeprefix('--- ')})" if len(lines) > 1 else "")
            for p in outcome.problems
            for lines in [p.splitlines()]
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
        "\n**Quick mode** (`--quick`): one short round per scenario, no 1,000,000-key step. It "
        "proves the harness works; its figures say nothing about speed.\n"
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

## Results (SQLite)

{table}
"req/s vs ceiling" is gpucloud's median requests/s as a share of its ceiling's, measured in
the same run, alternating with it; "p99 vs ceiling" the ratio of the p99 latencies. The
If-None-Match scenario is held to the authorized_keys ceiling (a 200 with the body), as
issue 10 asks. "1M keys / small" compares gpucloud with 1,000,000 keys stored to gpucloud
on the small database: its share of the ceiling in the 1M rounds against its share in the
small rounds (the target's measure; the host's speed can drift between the two parts of a
run), the raw requests/s ratio in brackets, and the p99 ratio. RSS: the server process's
VmRSS once started and idle, and its peak (VmHWM); the last column compares its VmRSS
after the first and after the last round. (The ceiling's server lives through the whole
run. It runs gpucloud's server entry point, so it also holds whatever `gpucloud.server`
imports.)

### The issue's targets (SQLite, medians)

| target | measured | |
|---|---|---|
{chr(10).join(verdicts)}

## PostgreSQL (no targets)

{postgres_text}
## Extra measurements

{extras_text}
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
- **gpucloud's settings**: its defaults, except `GPUCLOUD_DATABASE_URL` and
  `GPUCLOUD_RATE_LIMIT_BURST` and `GPUCLOUD_RATE_LIMIT_PER_SECOND` = {NO_THROTTLE}: the
  limiter still counts every request, so its cost is measured, but it never refuses one.
  Other settings given with `--server-env`: {extra_env}. Every GPUCLOUD_* variable of the
  caller's environment is removed. The server's output (its access log) goes to a file
  in `.bench/logs/`. The settings the server read: {settings_text}.
- **The ceilings** (`bench/ceiling.py`): a bare Starlette app answering the same routes
  with constant, pre-serialised responses of gpucloud's shape: the list of 10 keys
  ({size.get(("ceiling", "list"), "?")} bytes; gpucloud's: {size.get(("gpucloud", "list"), "?")}
  bytes), a 10-line `authorized_keys` file, `text/plain; charset=utf-8`
  ({size.get(("ceiling", "authorized_keys"), "?")} bytes; gpucloud's:
  {size.get(("gpucloud", "authorized_keys"), "?")} bytes), a create that reads its body
  and parses it with orjson before answering 201 with one key, a makedefault answering
  204. No auth, no database, no middleware, no ETag; gpucloud adds its request-id,
  security and ETag headers.
- **Load**: `{wrk_cmd}`, after a warm-up with the same script; the ceiling gets the same
  requests as gpucloud.
  - `get.lua`: `GET /gpu-cloud/ssh-keys` or `GET /gpu-cloud/ssh-keys/authorized_keys` as
    one owner with 10 keys (a static request). For the If-None-Match scenario, the
    request carries the `ETag` gpucloud sent with the authorized_keys file, fetched once
    before its rounds, and every answer must be a 304.
  - `post.lua`: `POST /gpu-cloud/ssh-keys`, each request a unique name and a unique real
    Ed25519 key (made by `cryptography`, cached in `.bench/post-keys.txt`), spread over
    {load_data.BENCH_OWNERS:,} owners' API keys so that each owner stays under the
    1000-keys-per-owner limit; each wrk thread takes its own share of the bodies, so no
    body is sent twice to one database. The ceiling gets the same kind of bodies.
  - `patch.lua`: `PATCH …/{{id}}/makedefault`, each wrk thread acting as its own owner and
    cycling over that owner's 10 key ids, so nearly every request moves the default.
- **Data**: a fresh database per scenario (each server starts from the same state; the
  server then keeps its data across its rounds). Small: {load_data.BENCH_OWNERS:,}
  owners x {load_data.KEYS_PER_OWNER} keys. Large: {load_data.LARGE_OWNERS:,} owners x
  {load_data.KEYS_PER_OWNER} keys = {load_data.LARGE_OWNERS * load_data.KEYS_PER_OWNER:,} keys
  (the small database plus filler owners), loaded by `bench/load_data.py` directly with
  sqlite3 in bulk, into a database migrated by `gpucloud db upgrade`, with the rows the
  service would write (and their audit events); checked by reading back through gpucloud's
  services. SQLite scenarios run on a copy of the file. PostgreSQL (`bench/postgres.py`):
  one template database per run, migrated by `gpucloud db upgrade` and filled from the
  small SQLite database by binary COPY ({copied}; the tables' triggers off while copying,
  each owner's key count and version copied and checked), then VACUUM ANALYZE; each
  scenario gets a `CREATE DATABASE … TEMPLATE` clone, and every database is dropped at the
  end. {build}.
- **Validity**: before its rounds, each gpucloud server must list the bench owner's 10
  keys, serve them as an authorized_keys file (default first) with a strong ETag, and
  answer 304 to it. A run is void when wrk saw a socket error or a status >= 400, a POST
  body ran out, or, for gpucloud, any answer had another status than the scenario's own
  (200 for the GETs, 304 for If-None-Match, 201 for POST, 204 for PATCH): wrk does not
  count 3xx as errors, so `bench/statuses.lua` counts gpucloud's answers by status in
  wrk's `response()` (the *statuses* column below; the count must equal wrk's requests).
  That costs wrk, on its own core, some CPU per answer; the ceiling's runs, whose answers
  are constant, do without it.
- **Targets** (issue 10): {_targets_text()}.
- **Noise**: the "server CPU", "others on its core" and "stolen" columns below come from
  /proc/stat and /proc/<pid>/stat during each measured run. When other processes take a
  share of the server's core, gpucloud and the ceiling lose throughput alike, but not
  necessarily equally: compare ratios, not absolute figures, between machines and runs.
- wrk measures latency from the moment it sends a request on a connection that is free,
  so under saturation the p99 is the server's queueing as seen by {options.connections}
  closed-loop clients (no coordinated-omission correction).

## Every round

{rounds_table(outcome)}"""


# ---------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description="gpucloud against a bare-ASGI ceiling, under wrk."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run in about 2 minutes: 1 round, 2 s, no 1,000,000-key step",
    )
    parser.add_argument("--rounds", type=int, help="rounds per scenario and server (default 3)")
    parser.add_argument("--duration", type=float, help="seconds per measured run (default 10)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up before each (default 3)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--output", type=Path, help="markdown report (default docs/benchmarks.md)")
    parser.add_argument("--no-scale", action="store_true", help="skip the 1,000,000-key rounds")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL scenarios")
    parser.add_argument(
        "--postgres-url",
        default=postgres.ADMIN_URL,
        help=f"a PostgreSQL server's maintenance database, as a superuser ({postgres.ADMIN_URL})",
    )
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
        if name == "GPUCLOUD_DATABASE_URL":
            parser.error("--server-env cannot set the database: each scenario gets its own")
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
        with_postgres=not args.no_postgres,
        postgres_url=args.postgres_url,
    )
    if options.rounds < 1 or options.duration < 1 or options.connections < WRK_THREADS:
        parser.error("--rounds ≥ 1, --duration ≥ 1 and --connections ≥ 2, please")
    return options


def _stop_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # Unwind like Ctrl-C, so that every server is stopped and every database dropped.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    try:
        wrk = ensure_wrk()
        pin = pinning()
        machine = machine_description(wrk)
        load_start = load_average()
        revision = source_revision()
        outcome = run_benchmark(options, wrk, pin)
    except (BenchError, postgres.PostgresError) as exc:
        print(f"\nbench: FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench: interrupted; the servers are stopped and the databases dropped")
        return 130
    scenarios = [
        *SCENARIOS,
        *(SCALE_SCENARIOS if options.scale else ()),
        *(POSTGRES_SCENARIOS if outcome.postgres_skipped is None else ()),
    ]
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
    sqlite = [s for s in scenarios if s.backend == "sqlite"]
    table, verdicts = results_table(outcome, sqlite)
    verdicts += extras_section(outcome)[1]
    print()
    print(table)
    print("| target | measured | |\n|---|---|---|\n" + "\n".join(verdicts))
    if outcome.postgres_skipped is None:
        print("\nPostgreSQL (no targets):\n")
        print(results_table(outcome, [s for s in scenarios if s.backend == "postgres"],
                            judged=False)[0])  # fmt: skip
    else:
        print(f"\nbench: PostgreSQL {outcome.postgres_skipped}")
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
            f"\nbench: FAILED: the run is INVALID: {len(outcome.problems)} runs had problems "
            "(listed above and in the report); the servers' logs are in .bench/logs/",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
