"""The test controls of a server started for tests, driven in process on both databases."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select, text

from gpucloud.app import GpuCloudApp, create_app
from gpucloud.config import Settings
from gpucloud.harness import TOKEN_HEADER
from gpucloud.harness.control import Harness
from gpucloud.models import metadata
from gpucloud.testing import GpuCloudServer
from tests.testing.conftest import TOKEN

pytestmark = pytest.mark.usefixtures("backend")

LIST = "GPUCloudSSHKeysController_getUserSSHKeys"
CREATE = "GPUCloudSSHKeysController_create"


async def _new_key(controls: httpx.AsyncClient, **body: object) -> dict[str, str]:
    answer = await controls.post("/_gpucloud/api-keys", json=body)
    assert answer.status_code == 201, answer.text
    issued: dict[str, str] = answer.json()
    return issued


async def _fault(controls: httpx.AsyncClient, **body: object) -> httpx.Response:
    return await controls.post("/_gpucloud/faults", json=body)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_gpucloud/reset", None),
        ("/_gpucloud/api-keys", {}),
        ("/_gpucloud/faults", {"operationId": LIST}),
    ],
)
@pytest.mark.parametrize("token", [None, "", TOKEN[:-1], TOKEN + "x", TOKEN.upper()])
async def test_a_control_request_without_the_token_is_refused(
    controls: httpx.AsyncClient, path: str, body: object, token: str | None
) -> None:
    """If a control request lacks the control token or carries another, then it gets a
    403 in the error shape that names the header, and does nothing."""
    headers = {TOKEN_HEADER: token} if token is not None else {}
    anonymous = httpx.AsyncClient(transport=controls._transport, base_url="http://testserver")
    async with anonymous:
        answer = await anonymous.post(path, json=body, headers=headers)
    assert answer.status_code == 403
    assert answer.json()["path"] == path
    assert TOKEN_HEADER in answer.json()["message"]
    assert (await controls.get("/gpu-cloud/ssh-keys")).status_code == 403  # no key: no fault


def test_a_short_control_token_is_refused() -> None:
    """If a harness is given a token shorter than 32 characters, then it is refused."""
    with pytest.raises(ValueError, match="at least 32"):
        Harness("short")


async def test_a_reset_deletes_every_row_of_every_table(
    testing_app: GpuCloudApp, controls: httpx.AsyncClient, public_key: str
) -> None:
    """If owners, API keys, SSH keys, audit events and idempotency records exist, then a
    reset leaves every table empty, the schema's version in place, and the old keys unknown."""
    api_key = (await _new_key(controls, owner="alice"))["apiKey"]
    created = await controls.post(
        "/gpu-cloud/ssh-keys",
        headers={"x-api-key": api_key, "Idempotency-Key": "one"},
        json={"name": "laptop", "publicKey": public_key},
    )
    assert created.status_code == 201
    database = testing_app.services.database
    tables = metadata.sorted_tables
    async with database.read() as unit:
        counts = [
            (await unit.fetch_one(select(func.count().label("n")).select_from(t))).n for t in tables
        ]
    assert all(counts), dict(zip([t.name for t in tables], counts, strict=True))

    assert (await controls.post("/_gpucloud/reset")).status_code == 204

    async with database.read() as unit:
        for table in tables:
            assert (await unit.fetch_one(select(func.count().label("n")).select_from(table))).n == 0
        version = await unit.fetch_one(text("SELECT version_num FROM alembic_version"))
    assert version is not None
    listed = await controls.get("/gpu-cloud/ssh-keys", headers={"x-api-key": api_key})
    assert listed.status_code == 404


async def test_a_reset_forgets_waiting_faults_and_rate_limit_counts(
    database_url: str, controls: httpx.AsyncClient
) -> None:
    """If a fault is waiting and an address is throttled for bad keys, then after a reset
    neither is."""
    settings = Settings(database_url=database_url, auth_failures_per_minute=1)
    app = create_app(settings, testing=Harness(TOKEN))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={TOKEN_HEADER: TOKEN}
        ) as client:
            api_key = (await _new_key(client))["apiKey"]
            bad = {"x-api-key": "gck_" + "A" * 43}
            for _ in range(2):
                await client.get("/gpu-cloud/ssh-keys", headers=bad)
            throttled = await client.get("/gpu-cloud/ssh-keys", headers={"x-api-key": api_key})
            assert throttled.status_code == 429
            assert (await _fault(client, operationId="readyz")).status_code == 204
            assert (await client.post("/_gpucloud/reset")).status_code == 204
            api_key = (await _new_key(client))["apiKey"]
            listed = await client.get("/gpu-cloud/ssh-keys", headers={"x-api-key": api_key})
            assert listed.status_code == 200
            assert (await client.get("/readyz")).status_code == 200
    finally:
        await app.services.database.dispose()


async def test_a_new_api_key_belongs_to_a_new_owner_unless_one_is_named(
    controls: httpx.AsyncClient, public_key: str
) -> None:
    """If API keys are made without an owner, then each has an owner of its own; two
    made for "alice" share alice's SSH keys."""
    first, second = await _new_key(controls), await _new_key(controls)
    assert first["owner"] != second["owner"]
    assert first["scopes"] == ["ssh-keys"]
    alice_one = (await _new_key(controls, owner="alice"))["apiKey"]
    alice_two = (await _new_key(controls, owner="alice"))["apiKey"]
    created = await controls.post(
        "/gpu-cloud/ssh-keys",
        headers={"x-api-key": alice_one},
        json={"name": "laptop", "publicKey": public_key},
    )
    assert created.status_code == 201
    for api_key, expected in ((alice_two, 1), (first["apiKey"], 0)):
        listed = await controls.get("/gpu-cloud/ssh-keys", headers={"x-api-key": api_key})
        assert len(listed.json()) == expected


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"scopes": ["admin"]}, "'admin' is not a list of API-key scopes; give one or more of"),
        ({"scopes": []}, "an empty list"),
        ({"owner": ""}, "owner name must be 1 to 128"),
        ({"owners": "alice"}, "owners: Extra inputs are not permitted"),
    ],
)
async def test_an_api_key_that_cannot_be_made_is_a_400(
    controls: httpx.AsyncClient, body: dict[str, object], complaint: str
) -> None:
    """If the scopes or the owner of a new API key are unusable, then a 400 says why."""
    answer = await controls.post("/_gpucloud/api-keys", json=body)
    assert answer.status_code == 400
    assert complaint in answer.json()["message"]


async def test_the_scopes_asked_for_are_echoed_once_each(controls: httpx.AsyncClient) -> None:
    """If a key is asked with a scope twice, then its answer names each scope once, as the
    key stores them (in the order `gpucloud api-keys list` shows: ssh-keys first)."""
    issued = await _new_key(controls, scopes=["authorized-keys", "ssh-keys", "authorized-keys"])
    assert issued["scopes"] == ["ssh-keys", "authorized-keys"]


async def test_a_fault_answers_in_the_error_shape_before_the_api_key_is_checked(
    controls: httpx.AsyncClient,
) -> None:
    """If a 503 is injected into list, then a call with no API key gets that 503 with
    Retry-After, and the next call the usual 403."""
    assert (await _fault(controls, operationId=LIST, retryAfter=4)).status_code == 204
    faulted = await controls.get("/gpu-cloud/ssh-keys")
    assert faulted.status_code == 503
    assert faulted.headers["retry-after"] == "4"
    assert faulted.headers["content-type"] == "application/json"
    assert faulted.json()["error"] == "Service Unavailable"
    assert (await controls.get("/gpu-cloud/ssh-keys")).status_code == 403


async def test_a_fault_cannot_be_put_on_a_control_operation(controls: httpx.AsyncClient) -> None:
    """If a fault names one of the control operations, then it is refused as an unknown
    operation, and the controls keep working."""
    answer = await _fault(controls, operationId="gpucloudTestControls_reset")
    assert answer.status_code == 400
    assert "No operation 'gpucloudTestControls_reset'" in answer.json()["message"]
    assert "gpucloudTestControls" not in answer.json()["message"].split(":", 1)[1]
    assert (await controls.post("/_gpucloud/reset")).status_code == 204


async def test_every_operation_of_the_document_can_be_given_a_fault(
    controls: httpx.AsyncClient,
) -> None:
    """If each operationId of /openapi.json is given a fault, then each is accepted."""
    document = (await controls.get("/openapi.json")).json()
    ids = [op["operationId"] for path in document["paths"].values() for op in path.values()]
    assert CREATE in ids
    for operation_id in ids:
        assert (await _fault(controls, operationId=operation_id)).status_code == 204


async def test_the_openapi_document_of_a_test_server_is_the_usual_one(
    settings: Settings, testing_app: GpuCloudApp
) -> None:
    """If a server is started for tests, then its OpenAPI document is byte for byte that
    of any other server: the controls are not in it."""
    usual = create_app(settings)
    try:
        assert testing_app.state.openapi == usual.state.openapi
        assert b"_gpucloud" not in usual.state.openapi
    finally:
        await usual.services.database.dispose()


def test_the_fixture_object_has_the_surface_of_spec_12() -> None:
    """If a test uses gpucloud_server, then it finds url, api_key, create_api_key,
    inject_fault and client, with SPEC 12's defaults."""
    import inspect

    for name in ("url", "api_key", "create_api_key", "inject_fault", "client", "reset"):
        assert hasattr(GpuCloudServer, name)
    fault = inspect.signature(GpuCloudServer.inject_fault).parameters
    assert (fault["status"].default, fault["times"].default, fault["delay_s"].default) == (
        503,
        1,
        0.0,
    )
    scopes = inspect.signature(GpuCloudServer.create_api_key).parameters
    assert (scopes["owner"].default, scopes["scopes"].default) == (None, ("ssh-keys",))
