"""Serve an ASGI app through gpucloud's own server entry point.

    python -m bench.serve TARGET --host 127.0.0.1 --port 8000 --workers 1

`gpucloud serve` migrates the database, then execs `python -m gpucloud.server`, whose
`main` reads the settings once and runs uvicorn on the app with gpucloud's options. Here
the same `main` runs with its app factory swapped for TARGET (`module:factory`), so that
the ceiling (`bench.ceiling:create_app`) and gpucloud (`gpucloud.app:serving_app`) run on
exactly the server gpucloud ships: the same uvicorn options, HTTP protocol class, loop,
keep-alive and proxy-header settings, whatever they become.

The options are printed to stderr on one line (`BENCH_UVICORN_OPTIONS {...}`) for
bench.run to compare between the two servers and to report.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import uvicorn


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m bench.serve MODULE:FACTORY [gpucloud.server arguments]")
    target, *arguments = sys.argv[1:]
    module, _, name = target.partition(":")
    factory = getattr(importlib.import_module(module), name)
    from gpucloud import server

    real_run = uvicorn.run

    def run_reporting(app: Any, **options: Any) -> None:
        shown = {k: v if isinstance(v, int | float | bool | str | None) else repr(v)
                 for k, v in options.items()}  # fmt: skip
        shown["http"] = str(shown["http"]).split(" at 0x")[0]  # the partial's address varies
        print(f"BENCH_UVICORN_OPTIONS {json.dumps(shown, sort_keys=True)}", file=sys.stderr)
        sys.stderr.flush()
        real_run(app, **options)

    uvicorn.run = run_reporting  # type: ignore[assignment]
    # gpucloud's factory takes the settings; the ceiling's takes nothing.
    takes_settings = target.startswith("gpucloud.")
    server.main(arguments, app_factory=factory if takes_settings else lambda _settings: factory())


if __name__ == "__main__":
    main()
