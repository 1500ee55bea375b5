"""Fixtures: the app of a server started for tests, in process, with its control token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gpucloud.app import GpuCloudApp, create_app
from gpucloud.config import Settings
from gpucloud.harness import TOKEN_HEADER
from gpucloud.harness.control import Harness
from tests.support import keygen

TOKEN = "a-control-token-of-the-tests-" + "x" * 16


@pytest.fixture
async def testing_app(settings: Settings) -> AsyncIterator[GpuCloudApp]:
    """The app as `gpucloud serve --ephemeral` builds it, on this test's database."""
    application = create_app(settings, testing=Harness(TOKEN))
    yield application
    await application.services.database.dispose()


@pytest.fixture
async def controls(testing_app: GpuCloudApp) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the testing app that sends the control token."""
    transport = httpx.ASGITransport(app=testing_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={TOKEN_HEADER: TOKEN}
    ) as client:
        yield client


@pytest.fixture(scope="session")
def public_key(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An Ed25519 public key line made by ssh-keygen, shared by the tests here."""
    return keygen.generate(tmp_path_factory.mktemp("testing-keys"), "ed25519").public_line
