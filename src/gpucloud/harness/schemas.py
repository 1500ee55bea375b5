"""The wire models of the test controls. Unknown properties are refused: a misspelt
`delaySeconds` must not pass unnoticed as a fault without a delay."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError


def _known(status: int) -> int:
    if status not in HTTPStatus._value2member_map_:
        raise PydanticCustomError(
            "http_status", "is not a registered HTTP status; use e.g. 500, 502, 503 or 429"
        )
    return status


ErrorStatus = Annotated[int, Field(ge=400, le=599), AfterValidator(_known)]


class FaultDto(BaseModel):
    """Body of `POST /_gpucloud/faults`."""

    model_config = ConfigDict(extra="forbid")

    operationId: str = Field(description="An operationId of /openapi.json")
    status: ErrorStatus | None = Field(
        default=503, description="The error status to answer; null only delays"
    )
    times: int = Field(default=1, ge=1, le=1_000_000, description="How many calls it serves")
    delaySeconds: float = Field(default=0.0, ge=0, le=600, description="Wait before answering")
    retryAfter: int = Field(
        default=1, ge=0, le=86_400, description="Retry-After of a 429 or 503, in seconds"
    )


class NewAPIKeyDto(BaseModel):
    """Body of `POST /_gpucloud/api-keys`."""

    model_config = ConfigDict(extra="forbid")

    owner: str | None = Field(default=None, description="The owner; a new one when null")
    scopes: list[str] = Field(default_factory=lambda: ["ssh-keys"])


class IssuedAPIKeyDto(BaseModel):
    """What `POST /_gpucloud/api-keys` answers: the secret, shown only now."""

    apiKey: str
    owner: str
    scopes: list[str]
