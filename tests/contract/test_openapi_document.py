"""The served OpenAPI document keeps the source document's names and schemas.

The source document's facts are kept as OpenAPI JSON in docs/source/ (its README says
where they come from).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

# The operations and schemas of the published reference, as OpenAPI JSON.
SOURCE = Path(__file__).resolve().parents[2] / "docs" / "source" / "ssh-keys-api.openapi.json"
# The published reference names its fourth operation without describing it in OpenAPI.
SOURCE_OPERATIONS = {
    ("/gpu-cloud/ssh-keys", "post"),
    ("/gpu-cloud/ssh-keys", "get"),
    ("/gpu-cloud/ssh-keys/{id}/makedefault", "patch"),
}
SPEC_STATUSES = {
    ("/gpu-cloud/ssh-keys", "post"): {"201", "400", "403", "404", "409", "413", "415", "429"},
    ("/gpu-cloud/ssh-keys", "get"): {"200", "403", "404", "429"},
    ("/gpu-cloud/ssh-keys/{id}/makedefault", "patch"): {"204", "403", "404", "429"},
    ("/gpu-cloud/ssh-keys/{id}", "delete"): {"204", "403", "404", "429"},
    ("/gpu-cloud/ssh-keys/{id}", "get"): {"200", "403", "404", "429"},
    ("/gpu-cloud/ssh-keys/{id}", "patch"): {"200", "400", "403", "404", "409", "413", "415", "429"},
    ("/gpu-cloud/ssh-keys/authorized_keys", "get"): {"200", "403", "404", "429"},
}


def _source_document() -> dict[str, Any]:
    """The source document's OpenAPI description."""
    document: dict[str, Any] = json.loads(SOURCE.read_text(encoding="utf-8"))
    return document


@pytest.fixture
async def served(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def test_every_source_operation_is_served_with_its_id_tag_and_header(
    served: dict[str, Any],
) -> None:
    """If the source document names an operation, then ours has the same operationId,
    tag and x-api-key header parameter."""
    source = _source_document()
    operations = {(path, method) for path, item in source["paths"].items() for method in item}
    assert operations == SOURCE_OPERATIONS
    for path, item in source["paths"].items():
        for method, operation in item.items():
            ours = served["paths"][path][method]
            assert ours["operationId"] == operation["operationId"]
            assert ours["tags"] == operation["tags"]
            header = next(p for p in operation["parameters"] if p["name"] == "x-api-key")
            our_header = next(p for p in ours["parameters"] if p["name"] == "x-api-key")
            assert our_header == header
            for status in operation["responses"]:
                assert status in ours["responses"], (path, method, status)
    delete = served["paths"]["/gpu-cloud/ssh-keys/{id}"]["delete"]
    assert delete["operationId"] == "GPUCloudSSHKeysController_delete"
    assert delete["tags"] == ["GPUCloudSSHKeys"]


async def test_source_schemas_are_served_with_their_fields_and_types(
    served: dict[str, Any],
) -> None:
    """If the source document defines a schema, then ours has every property with the
    same type and the same required list (extra properties allowed)."""
    schemas = _source_document()["components"]["schemas"]
    assert set(schemas) == {"CreateSSHKeyDto", "SSHKeyDto"}
    for name, schema in schemas.items():
        ours = served["components"]["schemas"][name]
        assert set(schema["required"]) <= set(ours["required"]), name
        for prop, definition in schema["properties"].items():
            assert ours["properties"][prop]["type"] == definition["type"], (name, prop)
    assert served["paths"]["/gpu-cloud/ssh-keys"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"] == {"$ref": "#/components/schemas/CreateSSHKeyDto"}


async def test_each_operation_documents_exactly_the_statuses_of_the_spec(
    served: dict[str, Any],
) -> None:
    """If an operation is served, then it lists the SPEC's status codes (plus 503, and 408
    where there is a body), each error with the error schema, and never FastAPI's 422."""
    for (path, method), statuses in SPEC_STATUSES.items():
        responses = served["paths"][path][method]["responses"]
        # Beyond the SPEC's lists: the list's filters can be invalid (400), any operation
        # can meet an unavailable database (503), a body can arrive too slowly (408), and
        # the owner's list and authorized_keys answer 304 to a current If-None-Match.
        extra = {"503"}
        if (path, method) == ("/gpu-cloud/ssh-keys", "get"):
            extra |= {"400", "304"}
        if (path, method) == ("/gpu-cloud/ssh-keys/authorized_keys", "get"):
            extra |= {"400", "304"}  # 400: a fingerprint that is not SHA256:…
        if "413" in statuses:
            extra.add("408")
        assert set(responses) == statuses | extra, (path, method)
        for status, response in responses.items():
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorDto"}
    assert "HTTPValidationError" not in served["components"]["schemas"]
    error = served["components"]["schemas"]["ErrorDto"]
    assert {"statusCode", "timestamp", "path", "message"} <= set(error["required"])


async def test_docs_page_loads_swagger_ui_from_the_package(client: httpx.AsyncClient) -> None:
    """If /docs is opened, then it is HTML that loads its scripts from this server only."""
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    scripts = re.findall(r'<script src="([^"]+)"', page.text)
    assert scripts and all(src.startswith("/docs/static/") for src in scripts)
    for src in scripts:
        assert (await client.get(src)).status_code == 200


async def test_expiry_and_last_use_are_documented_on_every_key_and_settable(
    served: dict[str, Any],
) -> None:
    """If a client reads the document, then SSHKeyDto always has expiresAt and lastUsedAt
    (a string or null), the create body takes an optional expiresAt, the rename body takes
    name and/or expiresAt (at least one), and the fingerprint lookup is documented."""
    schemas = served["components"]["schemas"]
    dto = schemas["SSHKeyDto"]
    nullable_string = [{"type": "string"}, {"type": "null"}]
    for field in ("expiresAt", "lastUsedAt"):
        assert field in dto["required"], field
        assert dto["properties"][field]["anyOf"] == nullable_string, field
    assert "expiresAt" in schemas["CreateSSHKeyDto"]["properties"]
    assert "expiresAt" not in schemas["CreateSSHKeyDto"].get("required", [])
    rename = schemas["RenameSSHKeyDto"]
    assert set(rename["properties"]) == {"name", "expiresAt"}
    assert rename.get("required", []) == [] and rename["minProperties"] == 1
    lookup = served["paths"]["/gpu-cloud/ssh-keys/authorized_keys"]["get"]
    assert "fingerprint" in [p["name"] for p in lookup["parameters"]]
    assert "authorized-keys" in lookup["description"]
