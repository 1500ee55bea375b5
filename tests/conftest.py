"""Fixtures: a real database per test (SQLite and PostgreSQL), the app, API keys, servers."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gpucloud.api_keys import service as api_keys
from gpucloud.app import GpuCloudApp, create_app
from gpucloud.config import Settings
from tests.support import databases
from tests.support.server import ServerProcess

pytest_plugins = ["tests.support.keyfixtures", "tests.support.secret_audit"]

# A project of its own, run by pytest in a subprocess (tests/testing/test_plugin_project.py)
# as a user's project would be: never part of this session.
collect_ignore = ["plugin_project"]

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> databases.SQLiteTemplate:
    return databases.SQLiteTemplate(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[databases.PostgresTemplate]:
    reason = databases.postgres_reachable()
    if reason is not None:
        if databases.REQUIRE_POSTGRES:
            pytest.fail(f"GPUCLOUD_TEST_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(f"{reason}; set GPUCLOUD_TEST_POSTGRES_URL or start PostgreSQL")
    template = databases.PostgresTemplate()
    yield template
    template.drop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Which database the test runs on; every test that uses the database runs on both."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database of its own for this test."""
    if backend == "sqlite":
        template: databases.SQLiteTemplate = request.getfixturevalue("sqlite_template")
        yield template.copy_to(tmp_path)
        return
    pg: databases.PostgresTemplate = request.getfixturevalue("postgres_template")
    name = pg.clone()
    yield databases.postgres_url(name)
    databases.drop_postgres_database(name)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The app's settings; rate limits are high so that only the rate-limit tests meet them."""
    return Settings(
        database_url=database_url,
        log_format="text",
        rate_limit_burst=100_000,
        rate_limit_per_second=100_000,
        auth_failures_per_minute=100_000,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[GpuCloudApp]:
    application = create_app(settings)
    yield application
    await application.services.database.dispose()


@pytest.fixture
async def client(app: GpuCloudApp) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client driving the app in process, with no API key set."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


MakeAPIKey = Callable[..., Awaitable[str]]


@pytest.fixture
def make_api_key(app: GpuCloudApp) -> MakeAPIKey:
    """Factory: `await make_api_key(owner="alice", expires_in=None, scopes=("ssh-keys",))`
    returns a new secret."""

    async def make(
        owner: str = "alice",
        expires_in: dt.timedelta | None = None,
        scopes: tuple[str, ...] = ("ssh-keys",),
    ) -> str:
        async with app.services.database.write() as conn:
            secret, _ = await api_keys.create(
                conn, owner=owner, expires_in=expires_in, scopes=scopes
            )
        return secret

    return make


@pytest.fixture
async def alice(make_api_key: MakeAPIKey) -> str:
    """An API key of the owner alice."""
    return await make_api_key("alice")


@pytest.fixture
async def bob(make_api_key: MakeAPIKey) -> str:
    """An API key of the owner bob."""
    return await make_api_key("bob")


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A real `gpucloud serve` process on a free port, on this test's database."""
    process = ServerProcess(database_url, tmp_path / "server.log").start()
    yield process
    process.stop()
