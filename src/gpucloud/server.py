"""The server process: uvicorn running the app, and nothing else.

`gpucloud serve` migrates, then replaces itself with `python -m gpucloud.server` (same
process id, so supervisors and signals see no difference): the serving process never
loads the CLI libraries or Alembic (docs/decisions.md D23).

The settings are read once, here, and handed down: to the app, and to the HTTP protocol
(its header timeout). With `--workers N`, uvicorn starts N fresh processes that each
build the app from the environment once (`create_app_from_env`).

A server started for tests (`gpucloud serve --ephemeral`) is given two more arguments:
`--control-token-file`, which turns on the test controls (gpucloud.harness) with the
token in that file — an argument, so that nothing in the environment or in a request can
turn them on — and `--ephemeral-dir`, the temporary directory of its database. The
process removes both when it stops: on SIGINT, SIGTERM or SIGHUP it shuts down as usual,
then removes them, then ends by that signal (only SIGKILL leaves them behind).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

from gpucloud.config import Settings
from gpucloud.http.protocol import HeaderTimeoutProtocol
from gpucloud.ops import logs

if TYPE_CHECKING:
    from gpucloud.harness.control import Harness

APP_FACTORY = "gpucloud.app:create_app_from_env"


def uvicorn_options(settings: Settings, host: str, port: int, workers: int) -> dict[str, Any]:
    """The options gpucloud runs uvicorn with (bench/serve.py reuses them)."""
    return {
        "http": functools.partial(
            HeaderTimeoutProtocol, header_timeout_s=settings.header_timeout_s
        ),
        "host": host,
        "port": port,
        "workers": workers,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        # Slow or idle clients are cut off instead of holding a connection forever.
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 10,
        # With --workers, the supervisor kills a worker that does not answer its health
        # check in time; a worker still importing on a busy host must not count as hung.
        "timeout_worker_healthcheck": 30,
    }


def main(
    argv: list[str] | None = None, *, app_factory: Callable[[Settings], Any] | None = None
) -> None:
    """Serve until stopped; arguments as `gpucloud serve` passes them.

    `app_factory` builds the app from the settings: gpucloud's by default; bench/serve.py
    swaps it to serve its ceiling on exactly these options (and then gpucloud's app is
    never imported, so the ceiling's memory is its own).
    """
    parser = argparse.ArgumentParser(prog="python -m gpucloud.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--control-token-file",
        type=Path,
        help="turn on the test controls, with the control token in this file",
    )
    parser.add_argument(
        "--ephemeral-dir", type=Path, help="this server's temporary directory, removed at exit"
    )
    args = parser.parse_args(argv)
    if args.workers > 1 and (args.control_token_file or args.ephemeral_dir):
        parser.error("a server started for tests runs in one process (its faults live there)")
    removed = [path for path in (args.control_token_file, args.ephemeral_dir) if path]
    with _removed_at_exit(removed):
        settings = Settings.from_env()
        logs.configure(settings.log_level, settings.log_format)
        options = uvicorn_options(settings, args.host, args.port, args.workers)
        if args.workers > 1:
            # Worker processes import the app by name and read the settings themselves;
            # they share their request counts for /metrics through a directory of ours.
            with tempfile.TemporaryDirectory(prefix="gpucloud-metrics-") as shared:
                os.environ["GPUCLOUD_METRICS_DIR"] = shared
                uvicorn.run(APP_FACTORY, factory=True, **options)
        elif app_factory is not None:
            uvicorn.run(app_factory(settings), **options)
        else:
            from gpucloud.app import serving_app

            testing = _harness(args.control_token_file) if args.control_token_file else None
            uvicorn.run(serving_app(settings, testing=testing), **options)


def _harness(token_file: Path) -> Harness:
    from gpucloud.harness.control import Harness

    return Harness(token_file.read_text().strip())


class _Stopped(BaseException):
    """Raised by a stop signal once uvicorn has shut down (it re-raises the signals it
    caught, with the handlers that were there before it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _removed_at_exit(paths: list[Path]) -> Iterator[None]:
    """Remove `paths` when the block ends, however it ends but SIGKILL; then die by the
    signal that stopped the process, if one did."""
    if not paths:
        yield
        return
    hung_up = False

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stopped(signal.SIGHUP if hung_up else signum)

    def hang_up(signum: int, frame: FrameType | None) -> None:
        # A closed terminal stops the server as SIGTERM does (uvicorn's handler shuts it
        # down); the process still ends by SIGHUP.
        nonlocal hung_up
        hung_up = True
        signal.raise_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:  # left alone under nohup
        signal.signal(signal.SIGHUP, hang_up)
    stopped_by = None
    try:
        yield
    except _Stopped as stopped:
        stopped_by = stopped.signum
    finally:
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    if stopped_by is not None:
        signal.signal(stopped_by, signal.SIG_DFL)
        signal.raise_signal(stopped_by)


if __name__ == "__main__":
    main()
