"""Idempotency rules: a repeat of a create with the same key and body within 24 hours
gets the first answer; the same key with another body is a 409.

Only successful answers are stored: a refused request changed nothing, and repeating
it is refused again for the same reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import NamedTuple

import orjson
from sqlalchemy import bindparam, delete, insert, select

from gpucloud.db import Statement, Unit, utcnow
from gpucloud.errors import ConflictError, FieldProblem, InvalidInputError
from gpucloud.idempotency.models import idempotency_keys
from gpucloud.owners import service as owners

HEADER = "Idempotency-Key"
RETENTION = dt.timedelta(hours=24)
_KEY = re.compile(r"[\x21-\x7e]{1,255}")


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """A create request that carried an Idempotency-Key."""

    key: str
    digest: bytes


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The first answer to an idempotent request, to send again as it was."""

    status: int
    body: bytes
    location: str | None


def from_header(value: str | None, body: dict[str, object]) -> IdempotentRequest | None:
    """The request's idempotency key and body digest; None when no key was sent.

    Raises InvalidInputError for a key that is empty, too long or not printable ASCII.
    """
    if value is None:
        return None
    if _KEY.fullmatch(value) is None:
        problem = f"{HEADER} must be 1 to 255 printable ASCII characters, e.g. a UUID"
        raise InvalidInputError(problem, details=[FieldProblem(HEADER, problem)])
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).digest()
    return IdempotentRequest(key=value, digest=digest)


class _Stored(NamedTuple):
    request_digest: bytes
    status: int
    response_body: bytes
    location: str | None
    created_at: dt.datetime


_THIS_KEY = (
    idempotency_keys.c.owner_id == bindparam("b_owner_id"),
    idempotency_keys.c.key == bindparam("b_key"),
)
_FIND = Statement(
    select(
        idempotency_keys.c.request_digest,
        idempotency_keys.c.status,
        idempotency_keys.c.response_body,
        idempotency_keys.c.location,
        idempotency_keys.c.created_at,
    ).where(*_THIS_KEY),
    _Stored,
)
_FORGET = Statement(delete(idempotency_keys).where(*_THIS_KEY))
_FORGET_EXPIRED = Statement(
    delete(idempotency_keys).where(
        idempotency_keys.c.owner_id == bindparam("b_owner_id"),
        idempotency_keys.c.created_at <= bindparam("before"),
    )
)
_INSERT = Statement(insert(idempotency_keys))


async def replay(unit: Unit, owner_id: str, request: IdempotentRequest) -> StoredAnswer | None:
    """The stored answer for this key, or None if it is new (or older than 24 hours).

    Locks the owner first, so that two concurrent repeats cannot both miss the stored
    answer. Raises ConflictError when the key was used with a different body.
    """
    await owners.lock(unit, owner_id)
    now = utcnow()
    this = {"b_owner_id": owner_id, "b_key": request.key}
    row = await unit.fetch_one(_FIND, this)
    if row is None:
        return None
    if row.created_at <= now - RETENTION:
        await unit.run(_FORGET, this)
        return None
    if row.request_digest != request.digest:
        raise ConflictError(
            f"This {HEADER} was already used with a different request body; "
            "use a new key for a new request"
        )
    return StoredAnswer(status=row.status, body=row.response_body, location=row.location)


async def remember(
    unit: Unit,
    owner_id: str,
    request: IdempotentRequest,
    answer: StoredAnswer,
) -> None:
    """Store the first answer, in the transaction that made it.

    Also forgets this owner's answers older than 24 hours, so the table stays bounded
    without a background job (the owner is locked already; the primary key's prefix finds
    them).
    """
    now = utcnow()
    await unit.run(_FORGET_EXPIRED, {"b_owner_id": owner_id, "before": now - RETENTION})
    await unit.run(
        _INSERT,
        {
            "owner_id": owner_id,
            "key": request.key,
            "request_digest": request.digest,
            "status": answer.status,
            "response_body": answer.body,
            "location": answer.location,
            "created_at": now,
        },
    )
