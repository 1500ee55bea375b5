"""The pytest plugin: the `gpucloud_server` fixture (SPEC 12).

- `gpucloud_server` (function scope): a `GpuCloudServer` wiped before the test.
- `gpucloud_server_env` (session scope, meant to be overridden in a `conftest.py`):
  `GPUCLOUD_*` settings of the test server, e.g. `{"GPUCLOUD_MAX_KEYS_PER_OWNER": "5"}`.

The server starts when the first test asks for it, once per session (so once per
pytest-xdist worker), and stops when the session ends. When a test that used it fails,
what the server logged during that test is added to its report as the section
"gpucloud server log".

Only pytest is imported here at start-up: the plugin is loaded in every pytest run where
gpucloud is installed, and the server's modules are loaded when a test first asks.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from gpucloud.testing._server import EphemeralServer, GpuCloudServer

# (server, log size when the test began) of a test that uses the server.
_LOG_START = pytest.StashKey[tuple["EphemeralServer", int]]()
LOG_SECTION = "gpucloud server log"


@pytest.fixture(scope="session")
def gpucloud_server_env() -> dict[str, str]:
    """`GPUCLOUD_*` settings of the test server; none by default. Override this fixture
    in a conftest.py to change them (the test process's own GPUCLOUD_* are not passed)."""
    return {}


@pytest.fixture(scope="session")
def gpucloud_ephemeral_server(
    gpucloud_server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EphemeralServer]:
    """The session's `gpucloud serve --ephemeral` process; tests use `gpucloud_server`."""
    from gpucloud.testing._server import EphemeralServer

    server = EphemeralServer(tmp_path_factory.mktemp("gpucloud-server"), env=gpucloud_server_env)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def gpucloud_server(
    gpucloud_ephemeral_server: EphemeralServer, request: pytest.FixtureRequest
) -> GpuCloudServer:
    """A real gpucloud server, wiped for this test: `url`, `api_key`, `create_api_key`,
    `inject_fault`, `client()` (see gpucloud.testing.GpuCloudServer)."""
    from gpucloud.testing._server import GpuCloudServer

    server = gpucloud_ephemeral_server
    request.node.stash[_LOG_START] = (server, server.log_size())
    view = GpuCloudServer(server)
    view.reset()
    return view


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    started = item.stash.get(_LOG_START, None)
    if report.failed and started is not None:
        server, offset = started
        report.sections.append((LOG_SECTION, server.log_since(offset) or "(nothing logged)"))
    return report
