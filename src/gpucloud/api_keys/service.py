"""API-key rules: create, authenticate, check scopes, list, revoke.

Services take a connection inside a transaction the caller owns, and never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import LargeBinary, String, bindparam, insert, or_, select, update

from gpucloud import durations
from gpucloud.api_keys import secrets
from gpucloud.api_keys.models import api_keys
from gpucloud.audit import service as audit
from gpucloud.audit.service import Actor
from gpucloud.db import Database, Statement, Unit, new_id, utcnow
from gpucloud.errors import (
    AuthenticationError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    UnknownAPIKeyError,
)
from gpucloud.owners import service as owner_service
from gpucloud.owners.models import owners

INVALID = "API key invalid"
NOT_FOUND = "API key not found"

# The scopes of SPEC 8. `ssh-keys` is everything, the authorized_keys file included;
# `authorized-keys` is only that file, the credential an instance holds.
SSH_KEYS = "ssh-keys"
AUTHORIZED_KEYS = "authorized-keys"
SCOPES = (SSH_KEYS, AUTHORIZED_KEYS)
# What holding a scope allows: the scopes an operation may ask for.
_GRANTS = {SSH_KEYS: frozenset(SCOPES), AUTHORIZED_KEYS: frozenset({AUTHORIZED_KEYS})}


def checked_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """The scopes, each once, in the order of SCOPES; raises InvalidInputError for an
    empty list or a scope that does not exist."""
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown or not scopes:
        raise InvalidInputError(
            f"scopes: {', '.join(map(repr, unknown)) or 'an empty list'} is not a list of "
            f"API-key scopes; give one or more of {', '.join(SCOPES)}"
        )
    return tuple(scope for scope in SCOPES if scope in scopes)


def granting(scope: str) -> tuple[str, ...]:
    """The scopes that allow an operation needing `scope` (for its documentation)."""
    return tuple(held for held in SCOPES if scope in _GRANTS[held])


@lru_cache(maxsize=64)
def _allowed(stored: str) -> frozenset[str]:
    # A handful of distinct stored values exist: worked out once each.
    return frozenset().union(*(_GRANTS.get(scope, ()) for scope in stored.split()))


def check_scope(principal: Principal, scope: str) -> None:
    """Raises ForbiddenError (403) naming `scope` unless the principal's key allows it."""
    if scope not in _allowed(principal.scopes):
        raise ForbiddenError(
            f"This API key lacks the scope {scope}; it has {', '.join(principal.scopes.split())}. "
            f"Use a key created with `gpucloud api-keys create --scope {scope}`"
        )


class Principal(NamedTuple):  # built on every request: a tuple is cheapest
    """Who a request acts for: the owner (and its version), the API key that proved it,
    and that key's scopes (space-separated, as stored)."""

    owner_id: str
    owner_version: int
    api_key_id: str
    scopes: str


class APIKeyInfo(NamedTuple):
    """What an operator may see of an API key: everything but the secret."""

    id: str
    owner: str
    owner_id: str
    prefix: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None
    scopes: str  # space-separated, in the order of SCOPES

    def state(self, now: dt.datetime) -> str:
        """`active`, `revoked` or `expired`."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def parse_duration(text: str) -> dt.timedelta:
    """`90d`, `12h`, `30m`, `30s`, `2w` as a timedelta (gpucloud.durations); raises
    InvalidInputError otherwise."""
    try:
        return durations.parse_duration(text)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


async def create(
    unit: Unit,
    *,
    owner: str,
    expires_in: dt.timedelta | None = None,
    scopes: Sequence[str] = (SSH_KEYS,),
    client: str = "cli",
) -> tuple[str, APIKeyInfo]:
    """Create a key for `owner` (created if new) with these scopes; returns the secret,
    shown only now. Raises InvalidInputError for an unknown scope.

    `client` is what the audit log records as the origin.
    """
    stored_scopes = " ".join(checked_scopes(scopes))
    owner_id = await owner_service.get_or_create(unit, owner)
    secret = secrets.generate()
    now = utcnow()
    info = APIKeyInfo(
        id=new_id(),
        owner=owner.strip(),
        owner_id=owner_id,
        prefix=secrets.display_prefix(secret),
        created_at=now,
        expires_at=now + expires_in if expires_in else None,
        last_used_at=None,
        revoked_at=None,
        scopes=stored_scopes,
    )
    await unit.run(
        _INSERT,
        {
            "id": info.id,
            "owner_id": owner_id,
            "secret_digest": secrets.digest(secret),
            "prefix": info.prefix,
            "created_at": info.created_at,
            "expires_at": info.expires_at,
            "scopes": info.scopes,
        },
    )
    await _audit(unit, info, "api_key.create", client=client)
    return secret, info


_INSERT = Statement(insert(api_keys))
_MINUTE = dt.timedelta(minutes=1)


class _Credential(NamedTuple):
    api_key_id: str
    owner_id: str
    owner_version: int
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    scopes: str


# Authentication runs on every request: one indexed statement finds the key, its scopes,
# and its owner's version, which validates the owner's cached answers (gpucloud.http.cache).
_AUTHENTICATE = Statement(
    select(
        api_keys.c.id.label("api_key_id"),
        api_keys.c.owner_id,
        owners.c.version.label("owner_version"),
        api_keys.c.expires_at,
        api_keys.c.revoked_at,
        api_keys.c.last_used_at,
        api_keys.c.scopes,
    )
    .join(owners, owners.c.id == api_keys.c.owner_id)
    .where(api_keys.c.secret_digest == bindparam("digest", type_=LargeBinary)),
    _Credential,
)
_RECORD_USE = Statement(
    update(api_keys)
    .where(api_keys.c.id == bindparam("b_api_key_id", type_=String))
    .where(or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < bindparam("minute")))
    .values(last_used_at=bindparam("minute"))
)


async def authenticate(
    database: Database, presented: str | None, *, now: dt.datetime | None = None
) -> tuple[Principal, bool]:
    """The principal of an `x-api-key` value, and whether its last-used minute is stale.

    Raises AuthenticationError (403) for a missing, malformed, revoked or expired key, and
    UnknownAPIKeyError (404) for a well-formed key that matches none.
    """
    if not presented or not secrets.is_well_formed(presented):
        raise AuthenticationError(INVALID)
    # The same key asks again and again: reused while the database has not changed.
    rows: list[_Credential] = await database.fetch(
        _AUTHENTICATE, {"digest": secrets.digest(presented)}, reuse=True
    )
    if not rows:
        raise UnknownAPIKeyError(NOT_FOUND)
    found = rows[0]
    now = now or utcnow()
    if found.revoked_at is not None or (found.expires_at is not None and found.expires_at <= now):
        raise AuthenticationError(INVALID)
    last = found.last_used_at
    # Not yet recorded in this minute (compared without building the minute's datetime).
    stale = last is None or last.minute != now.minute or now - last >= _MINUTE
    principal = Principal(found.owner_id, found.owner_version, found.api_key_id, found.scopes)
    return principal, stale


async def record_use(unit: Unit, api_key_id: str, *, now: dt.datetime) -> None:
    """Set last-used to the current minute, at most one write per key and minute."""
    minute = now.replace(second=0, microsecond=0)
    await unit.run(_RECORD_USE, {"b_api_key_id": api_key_id, "minute": minute})


_INFO_QUERY = select(
    api_keys.c.id,
    owners.c.name.label("owner"),
    api_keys.c.owner_id,
    api_keys.c.prefix,
    api_keys.c.created_at,
    api_keys.c.expires_at,
    api_keys.c.last_used_at,
    api_keys.c.revoked_at,
    api_keys.c.scopes,
).join(owners, owners.c.id == api_keys.c.owner_id)


async def list_keys(unit: Unit, *, owner: str | None = None) -> list[APIKeyInfo]:
    """Every API key (or only `owner`'s), oldest first."""
    query = _INFO_QUERY.order_by(api_keys.c.created_at, api_keys.c.id)
    if owner is not None:
        query = query.where(owners.c.name == owner.strip())
    return await unit.fetch(Statement(query, APIKeyInfo))


async def find(unit: Unit, key: str) -> APIKeyInfo:
    """The key whose id (from `list`) or secret is `key`; raises NotFoundError."""
    key = key.strip()
    if secrets.is_well_formed(key):
        condition = api_keys.c.secret_digest == secrets.digest(key)
    else:
        condition = api_keys.c.id == key
    found = await unit.fetch_one(Statement(_INFO_QUERY.where(condition), APIKeyInfo))
    if found is None:
        raise NotFoundError("No API key has that id or secret; see `gpucloud api-keys list`")
    return found


async def revoke(unit: Unit, key: str, *, client: str = "cli") -> APIKeyInfo:
    """Revoke the key whose id or secret is `key`, at once; revoking twice is a no-op.

    Raises NotFoundError when no key matches.
    """
    info = await find(unit, key)
    if info.revoked_at is not None:
        return info
    now = utcnow()
    await unit.run(_REVOKE, {"b_id": info.id, "at": now})
    await _audit(unit, info, "api_key.revoke", client=client)
    return info._replace(revoked_at=now)


_REVOKE = Statement(
    update(api_keys).where(api_keys.c.id == bindparam("b_id")).values(revoked_at=bindparam("at"))
)
_EXPIRE = Statement(
    update(api_keys).where(api_keys.c.id == bindparam("b_id")).values(expires_at=bindparam("at"))
)


async def rotate(
    unit: Unit,
    key: str,
    *,
    grace: dt.timedelta | None = None,
    expires_in: dt.timedelta | None = None,
    client: str = "cli",
) -> tuple[str, APIKeyInfo, APIKeyInfo]:
    """Replace a key with a new one for the same owner; returns (secret, new, old).

    The old key is revoked at once, or, with `grace`, expires after it (so that clients
    can switch over). Raises NotFoundError, or InvalidInputError for a revoked key.
    """
    old = await find(unit, key)
    now = utcnow()
    if old.state(now) != "active":
        raise InvalidInputError(
            f"API key {old.id} is {old.state(now)}; create a new one with "
            "`gpucloud api-keys create` instead"
        )
    secret, new = await create(
        unit, owner=old.owner, expires_in=expires_in, scopes=old.scopes.split(), client=client
    )
    if grace:
        ends = now + grace
        if old.expires_at is None or old.expires_at > ends:
            await unit.run(_EXPIRE, {"b_id": old.id, "at": ends})
            old = old._replace(expires_at=ends)
        await _audit(unit, old, "api_key.rotate", client=client)
    else:
        await unit.run(_REVOKE, {"b_id": old.id, "at": now})
        old = old._replace(revoked_at=now)
        await _audit(unit, old, "api_key.revoke", client=client)
    return secret, new, old


async def _audit(unit: Unit, info: APIKeyInfo, action: str, *, client: str) -> None:
    actor = Actor(owner_id=info.owner_id, api_key_id=None, client=client)
    await audit.record(unit, actor, action, api_key_id=info.id, scopes=info.scopes)
