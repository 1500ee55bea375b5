"""The client's public surface: locked, matched to the server's routes, free of the server."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

import gpucloud.client
from gpucloud.app import create_app
from gpucloud.client import AsyncClient, Client
from gpucloud.client._client import ENDPOINTS
from gpucloud.config import Settings

LIFECYCLE = {"close", "aclose", "base_url"}
# Methods made of other methods' calls, with no route of their own.
COMPOSED = {"find_ssh_key"}
SERVER_SIDE = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "uvicorn",
    "asyncpg",
    "aiosqlite",
    "pydantic_settings",
    "gpucloud.db",
    "gpucloud.app",
    "gpucloud.config",
    "gpucloud.errors",
    "gpucloud.http",
    "gpucloud.ssh_keys",
    "gpucloud.api_keys",
)


def _api_methods(cls: type[Any]) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_") and name not in LIFECYCLE}


def test_the_public_surface_is_locked() -> None:
    """If a name is added to or removed from gpucloud.client.__all__, then this test fails."""
    assert sorted(gpucloud.client.__all__) == sorted(
        [
            "DEFAULT_API_URL",
            "DEFAULT_TIMEOUT",
            "AsyncClient",
            "AuthenticationError",
            "Client",
            "ConfigOrigin",
            "ConflictError",
            "CredentialsFileError",
            "GpuCloudError",
            "InvalidRequestError",
            "NotFoundError",
            "RateLimitedError",
            "ResolvedConfig",
            "SSHCertificate",
            "SSHKey",
            "ServerError",
            "TransportError",
            "UnexpectedResponseError",
            "resolve_config",
            "save_api_key",
        ]
    )
    for name in gpucloud.client.__all__:
        assert hasattr(gpucloud.client, name), name


def test_sync_and_async_clients_have_the_same_methods_and_signatures() -> None:
    """If Client and AsyncClient are compared, then they offer the same calls, same arguments."""
    assert _api_methods(Client) == _api_methods(AsyncClient)
    for name in _api_methods(Client):
        assert inspect.signature(getattr(Client, name)) == inspect.signature(
            getattr(AsyncClient, name)
        ), name
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)), name


async def test_every_client_method_is_a_route_of_the_served_openapi_document(
    tmp_path: Path,
) -> None:
    """If the client has a method, then the server's OpenAPI document has its route."""
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        document = (await http.get("/openapi.json")).json()
    await app.services.database.dispose()

    assert _api_methods(Client) - COMPOSED == set(ENDPOINTS)
    served = {
        operation["operationId"]: (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    for name, endpoint in ENDPOINTS.items():
        assert endpoint.operation_id in served, f"{name}: no {endpoint.operation_id} on the server"
        assert served[endpoint.operation_id] == (endpoint.method, endpoint.path), name


def test_importing_the_client_loads_nothing_of_the_server() -> None:
    """If gpucloud.client is imported alone, then no server module or framework is loaded."""
    code = "import sys, gpucloud.client; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    leaked = [m for m in loaded if any(m == s or m.startswith(s + ".") for s in SERVER_SIDE)]
    assert leaked == []
