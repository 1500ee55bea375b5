"""Where gpucloud's time goes under the benchmark's load: py-spy samples, summarised.

Starts gpucloud exactly as `bench.run` does (the same uvicorn command line, settings,
pinning, and a fresh copy of the small or large database), drives it with the benchmark's
wrk scripts, and meanwhile records py-spy samples of the thread that holds the GIL
(`--gil`: Python work only; the commit thread waiting for work is not counted, and
neither is time in the kernel or in SQLite with the GIL released).

Writes `.bench/profile-<scenario>.txt` (py-spy's raw collapsed stacks),
`.bench/profile-<scenario>.svg` with `--svg` (a second, separate recording), and
`.bench/profile-summary.md`; prints the summary: per request, the server's CPU time and
context switches; the time by component; the top functions by own and by total time.

    python -m bench.profile [--scenario list authorized_keys not_modified post patch]
                            [--duration 15] [--large] [--svg]

The scenarios are bench.run's kinds (`bench.run.KINDS`), on SQLite.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import load_data
from bench.load_data import CACHE
from bench.run import (
    COUNT_STATUSES,
    KINDS,
    LOG_DIR,
    RUN_DIR,
    BenchError,
    Inputs,
    LoadGenerator,
    Options,
    Outcome,
    Pinning,
    Scenario,
    Server,
    _process_ticks,
    ensure_wrk,
    find_problems,
    measure,
    pinning,
    preflight,
    server_env,
    source_revision,
    sqlite_url,
)

SUMMARY = CACHE / "profile-summary.md"
WARNINGS: list[str] = []  # wrk runs with failed requests, reported with the summary

# A sample is charged to the first of these components met walking its stack from the
# innermost frame outwards (frames of no component, such as contextlib's or a dataclass's
# __init__, are charged to their caller's).
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("access log (logging + JSON formatter)", ("logging/", "gpucloud/ops/logs.py", "json/")),
    ("metrics (prometheus_client)", ("prometheus_client/", "gpucloud/ops/metrics.py")),
    ("rate limiter", ("gpucloud/ratelimit.py",)),
    ("SQLAlchemy (build, compile, execute, rows)", ("sqlalchemy/", "greenlet")),
    ("SQLite driver (sqlite3 module)", ("sqlite3/",)),
    ("key parsing (pubkey, cryptography)", ("gpucloud/pubkey/", "cryptography/")),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("serialisation (to_wire, timestamps)", ("gpucloud/ssh_keys/schemas.py", "gpucloud/wire.py")),
    ("gpucloud middleware (request id, headers)", ("gpucloud/http/middleware.py", "uuid.py")),
    ("Starlette (routing, middleware, responses)", ("starlette/",)),
    ("uvicorn + httptools (HTTP)", ("uvicorn/", "httptools/")),
    ("event loop (uvloop, asyncio)", ("asyncio/", "uvloop/")),
    ("gpucloud routes, services, auth", ("gpucloud/",)),
)
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass
class Profile:
    samples: int
    by_component: collections.Counter[str]
    own: collections.Counter[str]
    total: collections.Counter[str]
    gpucloud_total: collections.Counter[str]


def _parse_frame(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame)
    if match is None:
        return frame, ""
    return match.group("func"), match.group("file")


def _component(frames: list[tuple[str, str]]) -> str:
    for _func, file in reversed(frames):
        for name, patterns in COMPONENTS:
            if any(p in file for p in patterns):
                return name
    return "other"


def analyse(raw: Path) -> Profile:
    """Counts of a py-spy raw (collapsed) file: by component, own and total per function."""
    profile = Profile(
        0,
        collections.Counter(),
        collections.Counter(),
        collections.Counter(),
        collections.Counter(),
    )
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_parse_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        profile.samples += count
        profile.by_component[_component(frames)] += count
        names = [f"{func} ({file})" for func, file in frames]
        profile.own[names[-1]] += count
        for name in set(names):  # once per sample, however deep the recursion
            profile.total[name] += count
    profile.gpucloud_total = collections.Counter(
        {k: v for k, v in profile.total.items() if "(gpucloud/" in k}
    )
    return profile


def _table(
    counter: collections.Counter[str], samples: int, limit: int, title: str, us_per_sample: float
) -> str:
    """Markdown rows: share of the GIL samples, and microseconds per request."""
    lines = [f"| {title} | share | µs per request |", "|---|--:|--:|"]
    for name, count in counter.most_common(limit):
        lines.append(f"| `{name}` | {count / samples:.1%} | {count * us_per_sample:,.0f} |")
    return "\n".join(lines)


def _context_switches(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue
        for key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
            match = re.search(rf"^{key}:\s+(\d+)", status, re.MULTILINE)
            total += int(match.group(1)) if match else 0
    return total


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if Path(found).exists():
        return found
    print("bench: installing py-spy into this environment", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"], check=True)
    return str(Path(sys.executable).parent / "py-spy")


def record(
    scenario: Scenario,
    server: Server,
    inputs: Inputs,
    loadgen: LoadGenerator,
    pin: Pinning,
    *,
    duration: float,
    rate: int,
    fmt: str,
    output: Path,
) -> tuple[float, float, float]:
    """Sample the server under load; returns (requests/s, CPU ms and context switches per request)."""
    kind = scenario.kind
    seconds = duration + 3
    env = {**inputs.env(kind, "gpucloud", seconds), **COUNT_STATUSES}
    log_from = server.log_size()
    wrk = loadgen.start(server, kind, seconds, env)
    time.sleep(1)
    ticks0, switches0, started = (
        _process_ticks(server.pid),
        _context_switches(server.pid),
        time.monotonic(),
    )
    spy = subprocess.run(
        [
            *pin.prefix(pin.loadgen),
            _py_spy(),
            "record",
            "--pid",
            str(server.pid),
            "--duration",
            str(round(duration)),
            "--rate",
            str(rate),
            "--gil",
            "--format",
            fmt,
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    ticks1, switches1, ended = (
        _process_ticks(server.pid),
        _context_switches(server.pid),
        time.monotonic(),
    )
    result = loadgen.finish(wrk, seconds)
    inputs.consumed(kind, "gpucloud", result)
    # A profile is still worth having when some requests failed: say so, and go on.
    what = f"profile of {scenario.title}"
    for problem in find_problems(result, what, server, log_from, kind.status):
        print(f"bench.profile: {problem}", file=sys.stderr)
        WARNINGS.append(problem.splitlines()[0])
    if spy.returncode != 0 or not output.exists():
        raise BenchError(f"py-spy failed ({spy.returncode}):\n{spy.stdout}{spy.stderr}")
    requests = result.rps * (ended - started)
    cpu_ms = (ticks1 - ticks0) / os.sysconf("SC_CLK_TCK") * 1000 / requests
    return result.rps, cpu_ms, (switches1 - switches0) / requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--scenario", nargs="+", choices=list(KINDS), default=["list", "post"])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds sampled (15)")
    parser.add_argument("--rate", type=int, default=200, help="samples per second (200)")
    parser.add_argument("--large", action="store_true", help="the 1,000,000-key database")
    parser.add_argument("--svg", action="store_true", help="also record a flame graph (SVG)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--nice", type=int, default=0, help="nice level of server and wrk")
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="NAME=VALUE",
        help="an extra GPUCLOUD_* setting for the server (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.server_env)
    options = Options(
        quick=False, rounds=1, duration=args.duration, warmup=3.0, connections=args.connections,
        output=SUMMARY, scale=args.large, post_rate_cap=6000, server_env=extra, keep_logs=False,
        nice=args.nice,
    )  # fmt: skip
    try:
        wrk = ensure_wrk()
        pin = pinning()
        dataset = load_data.ensure_large() if args.large else load_data.ensure_small()
        loadgen = LoadGenerator(wrk, pin, options)
        inputs = Inputs(dataset.owners, options)
        sections = [
            "# gpucloud under load: where the time goes\n",
            f"py-spy `--gil` at {args.rate} Hz for {args.duration:g} s per scenario, "
            f"{args.connections} connections, {dataset.kind} database; "
            f"pinning: {pin.describe()}; nice {args.nice}; code {source_revision()}.\n",
        ]
        for key in args.scenario:
            scenario = Scenario(KINDS[key], dataset.kind)
            database = load_data.fresh_copy(dataset, RUN_DIR / f"profile-{key}.db")
            inputs.reset()
            server = Server(
                "gpucloud", server_env(sqlite_url(database), extra), pin,
                LOG_DIR / f"gpucloud-profile-{key}.log", scenario.title, args.nice,
            )  # fmt: skip
            try:
                inputs.etag = preflight(server, dataset.owners[0], Outcome())
                env = inputs.env(scenario.kind, "gpucloud", 3)
                what = f"warm-up of {scenario.title}"
                warm, problems = measure(loadgen, server, scenario.kind, 3, env, what)
                inputs.consumed(scenario.kind, "gpucloud", warm)
                for problem in problems:
                    print(f"bench.profile: {problem}", file=sys.stderr)
                    WARNINGS.append(problem.splitlines()[0])
                raw = CACHE / f"profile-{key}.txt"
                rps, cpu_ms, switches = record(
                    scenario, server, inputs, loadgen, pin,
                    duration=args.duration, rate=args.rate, fmt="raw", output=raw,
                )  # fmt: skip
                if args.svg:
                    record(
                        scenario, server, inputs, loadgen, pin, duration=args.duration,
                        rate=args.rate, fmt="flamegraph", output=CACHE / f"profile-{key}.svg",
                    )  # fmt: skip
            finally:
                server.stop(keep_log=False)
                load_data.remove_copy(database)
            profile = analyse(raw)
            gil = profile.samples / (args.rate * args.duration)
            # One sample stands for 1/rate s of GIL time, spread over the run's requests.
            us = 1e6 / args.rate / (rps * args.duration)
            sections += [
                f"\n## {scenario.title}\n",
                f"- {rps:,.0f} requests/s; per request {cpu_ms:.2f} ms of server CPU (all "
                f"threads, user + kernel) and {switches:.0f} context switches",
                f"- a thread held the GIL in {gil:.0%} of the samples ({profile.samples:,} "
                f"samples): the rest is the kernel, SQLite with the GIL released, or idle",
                f"- raw stacks: `{raw.relative_to(load_data.ROOT)}`\n",
                _table(profile.by_component, profile.samples, 20, "component", us),
                "",
                _table(profile.own, profile.samples, 25, "function, own time", us),
                "",
                _table(profile.total, profile.samples, 45, "function, total time", us),
                "",
                _table(profile.gpucloud_total, profile.samples, 25, "gpucloud, total time", us),
            ]
    except BenchError as exc:
        print(f"\nbench.profile: FAILED: {exc}", file=sys.stderr)
        return 1
    if WARNINGS:
        sections.insert(2, "\n**Some requests failed during profiling:**\n")
        sections[3:3] = [f"- {w}" for w in WARNINGS]
    text = "\n".join(sections) + "\n"
    SUMMARY.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
