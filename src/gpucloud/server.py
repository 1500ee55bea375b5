"""The server process: uvicorn running the app, and nothing else.

`gpucloud serve` migrates, then replaces itself with `python -m gpucloud.server` (same
process id, so supervisors and signals see no difference): the serving process never
loads the CLI libraries or Alembic, about 20 MB it would otherwise keep
(docs/decisions.md D23).
"""

from __future__ import annotations

import argparse

import uvicorn

from gpucloud.config import Settings
from gpucloud.ops import logs


def main(argv: list[str] | None = None) -> None:
    """Serve until stopped; arguments as `gpucloud serve` passes them."""
    parser = argparse.ArgumentParser(prog="python -m gpucloud.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    uvicorn.run(
        "gpucloud.app:create_app_from_env",
        factory=True,
        http="gpucloud.http.protocol:HeaderTimeoutProtocol",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # Slow or idle clients are cut off instead of holding a connection forever.
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
