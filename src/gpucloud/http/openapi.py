"""The OpenAPI document, built once from the same `Operation`s the router serves.

Schemas come from the pydantic models the operations name (request bodies, answers,
the error shape); every error an operation can answer is documented with the one error
shape (SPEC 3), and every authenticated operation with the `x-api-key` header as the
source document describes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gpucloud.api_keys import service as api_keys
from gpucloud.http.auth import API_KEY_PARAMETER
from gpucloud.http.routing import ERROR_DESCRIPTIONS, Operation
from gpucloud.http.schemas import ErrorDto

_REF = "#/components/schemas/{model}"


def document(
    operations: Iterable[Operation], *, title: str, version: str, description: str
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these operations."""
    operations = [op for op in operations if op.in_schema]
    models: dict[type[BaseModel], str] = {ErrorDto: "serialization"}
    for op in operations:
        if op.body is not None:
            models[op.body] = "validation"
        answer = op.success.body
        if isinstance(answer, tuple):
            answer = answer[0]
        if isinstance(answer, type):
            models[answer] = "serialization"
    _, definitions = models_json_schema(
        [(model, mode) for model, mode in models.items()],  # type: ignore[misc]
        ref_template=_REF,
        by_alias=True,
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "description": description, "version": version},
        "paths": paths,
        "components": {"schemas": definitions.get("$defs", {})},
    }


def _operation(op: Operation) -> dict[str, Any]:
    parameters: list[Mapping[str, Any]] = []
    if op.scope is not None:
        parameters.append(API_KEY_PARAMETER)
    parameters.extend(op.parameters)
    described: dict[str, Any] = {
        "tags": list(op.tags),
        "summary": op.summary,
        "operationId": op.operation_id,
    }
    if op.scope is not None:
        scopes = " or ".join(f"`{scope}`" for scope in api_keys.granting(op.scope))
        described["description"] = f"Needs an API key with the scope {scopes}."
    if parameters:
        described["parameters"] = parameters
    if op.body is not None:
        described["requestBody"] = {
            "required": op.body_required,
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(model=op.body.__name__)}}
            },
        }
    responses: dict[str, Any] = {str(op.success.status): _success(op)}
    for status, text in op.success.also.items():
        responses[str(status)] = {"description": text}
    for status in op.error_statuses():
        responses[str(status)] = {
            "description": op.error_descriptions.get(status) or ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorDto")}}},
        }
    described["responses"] = dict(sorted(responses.items()))
    return described


def _success(op: Operation) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": op.success.description}
    body = op.success.body
    if isinstance(body, tuple):
        schema: dict[str, Any] = {
            "type": "array",
            "items": {"$ref": _REF.format(model=body[0].__name__)},
        }
        answer["content"] = {"application/json": {"schema": schema}}
    elif isinstance(body, type):
        answer["content"] = {
            "application/json": {"schema": {"$ref": _REF.format(model=body.__name__)}}
        }
    elif isinstance(body, str):
        answer["content"] = {body: {"schema": {"type": "string"}}}
    return answer
