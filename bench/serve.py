"""Serve an ASGI app through gpucloud's own server entry point.

    python -m bench.serve TARGET --host 127.0.0.1 --port 8000 --workers 1

`gpucloud serve` migrates the database, then execs `python -m gpucloud.server`, whose
`main` calls `uvicorn.run("gpucloud.app:create_app_from_env", **options)`. Here that one
call is given TARGET as its app instead, every option untouched, so that the ceiling
(`bench.ceiling:create_app`) and gpucloud (`gpucloud.app:create_app_from_env`) run on
exactly the server gpucloud ships: the same uvicorn options, HTTP protocol class, loop,
keep-alive and proxy-header settings, whatever they become.

The options are printed to stderr on one line (`BENCH_UVICORN_OPTIONS {...}`) for
bench.run to compare between the two servers and to report.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import uvicorn

EXPECTED_APP = "gpucloud.app:create_app_from_env"


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m bench.serve TARGET [gpucloud.server arguments]")
    target, *arguments = sys.argv[1:]
    from gpucloud import server

    real_run = uvicorn.run

    def run_target(app: Any, **options: Any) -> None:
        if app != EXPECTED_APP:
            sys.exit(f"bench.serve: gpucloud.server serves {app!r}, not {EXPECTED_APP!r}")
        shown = {k: v if isinstance(v, int | float | bool | str | None) else repr(v)
                 for k, v in options.items()}  # fmt: skip
        print(f"BENCH_UVICORN_OPTIONS {json.dumps(shown, sort_keys=True)}", file=sys.stderr)
        sys.stderr.flush()
        real_run(target, **options)

    uvicorn.run = run_target  # type: ignore[assignment]
    server.main(arguments)


if __name__ == "__main__":
    main()
