"""The server process: uvicorn running the app, and nothing else.

`gpucloud serve` migrates, then replaces itself with `python -m gpucloud.server` (same
process id, so supervisors and signals see no difference): the serving process never
loads the CLI libraries or Alembic (docs/decisions.md D23).

The settings are read once, here, and handed down: to the app, and to the HTTP protocol
(its header timeout). With `--workers N`, uvicorn starts N fresh processes that each
build the app from the environment once (`create_app_from_env`).
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
from collections.abc import Callable
from typing import Any

import uvicorn

from gpucloud.app import serving_app
from gpucloud.config import Settings
from gpucloud.http.protocol import HeaderTimeoutProtocol
from gpucloud.ops import logs

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
    argv: list[str] | None = None, *, app_factory: Callable[[Settings], Any] = serving_app
) -> None:
    """Serve until stopped; arguments as `gpucloud serve` passes them.

    `app_factory` builds the app from the settings (bench/serve.py swaps it to serve its
    ceiling on exactly these options).
    """
    parser = argparse.ArgumentParser(prog="python -m gpucloud.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    logs.configure(settings.log_level, settings.log_format)
    options = uvicorn_options(settings, args.host, args.port, args.workers)
    if args.workers > 1:
        # Worker processes import the app by name and read the settings themselves; they
        # share their request counts for /metrics through a directory of this server's.
        with tempfile.TemporaryDirectory(prefix="gpucloud-metrics-") as shared:
            os.environ["GPUCLOUD_METRICS_DIR"] = shared
            uvicorn.run(APP_FACTORY, factory=True, **options)
    else:
        uvicorn.run(app_factory(settings), **options)


if __name__ == "__main__":
    main()
