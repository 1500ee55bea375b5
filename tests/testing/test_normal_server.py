"""A server not started for tests has no test controls and no faults, whatever is tried."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gpucloud.harness import TOKEN_HEADER
from tests.support.modules import modules_loaded_by
from tests.support.server import ServerProcess
from tests.testing.conftest import TOKEN

PATHS = (
    "/_gpucloud/reset",
    "/_gpucloud/faults",
    "/_gpucloud/api-keys",
    "/_gpucloud",
    "/_gpucloud/",
    "/_gpucloud/faults/",
    "/_gpucloud/%72eset",
    "//_gpucloud/reset",
    "/gpu-cloud/_gpucloud/reset",
    "/gpu-cloud/ssh-keys/../../_gpucloud/reset",
)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# What a user might guess would turn the controls on.
GUESSES: tuple[dict[str, str], ...] = (
    {},
    {TOKEN_HEADER: TOKEN},
    {TOKEN_HEADER: "", "x-gpucloud-testing": "1", "x-gpucloud-ephemeral": "true"},
    {"x-forwarded-for": "127.0.0.1", "x-gpucloud-control-token": "x" * 43},
)
FAULT = {"operationId": "GPUCloudSSHKeysController_getUserSSHKeys", "status": 503}
# Environment variables a user might guess would do it: none of them does anything.
GUESSED_ENV = {
    "GPUCLOUD_TESTING": "1",
    "GPUCLOUD_EPHEMERAL": "1",
    "GPUCLOUD_TEST_CONTROLS": "1",
    "GPUCLOUD_FAULT_INJECTION": "1",
    "GPUCLOUD_CONTROL_TOKEN": TOKEN,
    "GPUCLOUD_CONTROL_TOKEN_FILE": "/dev/null",
}


def _assert_not_there(answer: httpx.Response, method: str, path: str) -> None:
    assert answer.status_code == 404, (method, path, answer.status_code, answer.text)
    body = answer.json()
    assert set(body) == {"statusCode", "timestamp", "path", "message", "error"}
    assert body["statusCode"] == 404
    assert body["message"].startswith("No endpoint at ")


@pytest.mark.usefixtures("backend")
@pytest.mark.parametrize("headers", GUESSES)
async def test_the_control_paths_do_not_exist_on_a_normal_app(
    client: httpx.AsyncClient, alice: str, headers: dict[str, str]
) -> None:
    """If any method is sent to a control path of a normal app, with or without a token,
    then the answer is 404 in the error shape, and a fault asked for is not served."""
    for path in PATHS:
        for method in METHODS:
            answer = await client.request(
                method, path, headers=headers, params={"testing": "1"}, json=FAULT
            )
            _assert_not_there(answer, method, path)
    listed = await client.get("/gpu-cloud/ssh-keys", headers={"x-api-key": alice})
    assert listed.status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_normal_gpucloud_serve_has_no_controls_whatever_its_environment(
    database_url: str, tmp_path: Path, backend: str
) -> None:
    """If `gpucloud serve` runs with every environment variable a user might guess, then
    every control path answers 404 to every method and header, and no fault is served."""
    server = ServerProcess(database_url, tmp_path / "server.log", env=GUESSED_ENV).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for path in PATHS:
                for method in METHODS:
                    for headers in GUESSES:
                        answer = http.request(method, path, headers=headers, json=FAULT)
                        _assert_not_there(answer, method, path)
            assert http.get("/readyz").status_code == 200
            document = http.get("/openapi.json").json()
            assert not [p for p in document["paths"] if "_gpucloud" in p]
    finally:
        server.stop()


def test_a_normal_app_never_loads_the_test_controls(database_url: str) -> None:
    """If the app of a normal server is built, then no module of gpucloud.harness or
    gpucloud.testing is loaded: no fault code is on its request path."""
    loaded = modules_loaded_by(
        "from gpucloud.app import serving_app\n"
        "from gpucloud.config import Settings\n"
        f"serving_app(Settings(database_url={database_url!r}))\n"
    )
    assert "gpucloud.app" in loaded
    assert [m for m in loaded if m.startswith(("gpucloud.harness", "gpucloud.testing"))] == []


def test_the_pytest_plugin_loads_neither_the_server_nor_httpx() -> None:
    """If pytest loads the plugin (in every project where gpucloud is installed), then it
    imports pytest and the plugin only: the server and httpx wait for a test to ask."""
    loaded = modules_loaded_by("import gpucloud.testing.plugin")
    assert "gpucloud.testing.plugin" in loaded
    heavy = ("httpx", "gpucloud.app", "gpucloud.harness.control", "gpucloud.client", "starlette")
    assert [m for m in loaded if m.startswith(heavy)] == []


def test_the_server_module_refuses_test_controls_with_several_workers(tmp_path: Path) -> None:
    """If `python -m gpucloud.server` is asked for test controls with 2 workers, then it
    refuses at once and says why."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    result = subprocess.run(
        [
            *(sys.executable, "-m", "gpucloud.server", "--workers", "2"),
            *("--control-token-file", str(token_file)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "runs in one process" in result.stderr
