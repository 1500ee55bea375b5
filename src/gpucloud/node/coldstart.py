"""How long a login waits for `gpucloud-authorized-keys`: a real lookup, many times over.

For `make bench`, and for an operator who wants the figure on an instance:

    python -m gpucloud.node.coldstart --url http://127.0.0.1:8000 --api-key-file KEY [--runs 50]

prints one JSON object (milliseconds: median, p90, min, max; runs; lines). From Python,
`measure(url=..., api_key=...)` returns the same as a `ColdStart`.

Each run is a new process of the command, started as sshd starts it (a bare environment,
stdin on /dev/null, cwd /), doing a whole lookup against the server: configuration, the
credential, the cache (in a temporary directory, so that runs after the first find an
entry, as logins do), the HTTP exchange and the lines. A run that prints no line, or
exits non-zero, stops the measurement: a fast failure is not a figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ColdStart:
    """Wall-clock times of whole runs of the command, in milliseconds."""

    runs: int
    median_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float
    lines: int


def default_command() -> Path:
    """The console script installed next to this Python."""
    return Path(sys.executable).with_name("gpucloud-authorized-keys")


def measure(
    *,
    url: str,
    api_key: str,
    runs: int = 50,
    fingerprint: str | None = None,
    command: Path | None = None,
    warmup: int = 3,
) -> ColdStart:
    """Run the command `warmup` + `runs` times against `url`; the times of the last `runs`.

    Raises RuntimeError if a run fails or prints no line (register a key first).
    """
    command = command or default_command()
    with tempfile.TemporaryDirectory(prefix="gpucloud-coldstart-") as directory:
        root = Path(directory)
        credential = root / "credential"
        credential.write_text(api_key + "\n")
        credential.chmod(0o600)
        config = root / "authorized-keys.conf"
        config.write_text(
            f"[server]\nurl = {url}\ntimeout = 5\n[cache]\ndirectory = {root / 'cache'}\n"
            f"[users]\nbench = {credential}\n"
        )
        args = [str(command), "--config", str(config), "bench"]
        if fingerprint is not None:
            args.append(fingerprint)
        times, lines = [], 0
        for number in range(warmup + runs):
            started = time.perf_counter()
            result = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env={"PATH": "/usr/bin:/bin"},
                cwd="/",
                check=False,
            )
            elapsed = (time.perf_counter() - started) * 1000
            if result.returncode != 0 or not result.stdout:
                raise RuntimeError(
                    f"run {number + 1} exited {result.returncode} with no lines: "
                    + result.stderr.decode(errors="replace").strip()
                )
            if number >= warmup:
                times.append(elapsed)
                lines = result.stdout.count(b"\n")
    ordered = sorted(times)
    return ColdStart(
        runs=runs,
        median_ms=round(statistics.median(ordered), 2),
        p90_ms=round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 2),
        min_ms=round(ordered[0], 2),
        max_ms=round(ordered[-1], 2),
        lines=lines,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the gpucloud API, e.g. http://127.0.0.1:8000")
    parser.add_argument(
        "--api-key-file", required=True, type=Path, help="a file holding the API key"
    )
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--fingerprint", help="look up one key, as sshd's %%f does")
    parser.add_argument("--command", type=Path, help="the command (default: next to python)")
    options = parser.parse_args(argv)
    result = measure(
        url=options.url,
        api_key=options.api_key_file.read_text().strip(),
        runs=options.runs,
        fingerprint=options.fingerprint,
        command=options.command,
    )
    sys.stdout.write(json.dumps(asdict(result)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
