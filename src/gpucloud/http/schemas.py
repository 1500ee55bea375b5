"""The wire model of the one error shape (SPEC 3), for the OpenAPI document."""

from __future__ import annotations

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorDto(BaseModel):
    """The shape of every error response."""

    statusCode: int
    timestamp: str
    path: str
    message: str
    error: str | None = None
    details: list[ErrorDetail] | None = None
