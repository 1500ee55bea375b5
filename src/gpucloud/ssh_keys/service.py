"""SSH-key rules: validation, the owner's limit, uniqueness, and the default key.

The one-default invariant (SPEC 5) lives here and in the partial unique index of
`models.py`: every write first locks the owner (`owners.service.lock`), so that the
read-then-write steps below never interleave with another writer to the same owner.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Row,
    String,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from gpucloud import pubkey
from gpucloud.audit import service as audit
from gpucloud.audit.service import Actor
from gpucloud.db import INTEGRITY_ERRORS, Connection, Prepared, new_id, utcnow
from gpucloud.errors import ConflictError, FieldProblem, InvalidInputError, NotFoundError
from gpucloud.owners import service as owners
from gpucloud.ssh_keys.models import SSHKey

NAME_MAX_CHARS = 128
NOT_FOUND = "SSH key not found"
_ID = re.compile(r"[0-9a-f]{24}")
# Bidirectional overrides and isolates can make a name display as something else.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class SSHKeyRecord(NamedTuple):
    """An SSH key as stored.

    A named tuple rather than a frozen dataclass: a list builds ten of them per request,
    and a frozen dataclass's __init__ costs five times a tuple's.
    """

    id: str
    name: str
    public_key: str
    is_default: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    fingerprint_sha256: str
    fingerprint_md5: str
    key_type: str
    key_bits: int


@dataclass(frozen=True, slots=True)
class NewSSHKey:
    """A validated create request: a clean name and a parsed public key."""

    name: str
    key: pubkey.ParsedKey


_COLUMNS = (
    SSHKey.id,
    SSHKey.name,
    SSHKey.public_key,
    SSHKey.is_default,
    SSHKey.created_at,
    SSHKey.updated_at,
    SSHKey.fingerprint_sha256,
    SSHKey.fingerprint_md5,
    SSHKey.key_type,
    SSHKey.key_bits,
)
_SELECT = select(*_COLUMNS)

# Statements are built once, with bound parameters: building and caching a new statement
# object per request costs more than running it (SQLAlchemy re-derives its cache key and
# result map each time).
_OWNER_ID = bindparam("owner_id", type_=String)
_KEY_ID = bindparam("key_id", type_=String)
_OWNED = _SELECT.where(SSHKey.owner_id == _OWNER_ID)
_LIST = Prepared(_OWNED.order_by(SSHKey.created_at, SSHKey.id))
_GET = Prepared(_OWNED.where(SSHKey.id == _KEY_ID))
_NEWEST = Prepared(_OWNED.order_by(SSHKey.created_at.desc(), SSHKey.id.desc()).limit(1))
_COUNT = Prepared(select(func.count()).where(SSHKey.owner_id == _OWNER_ID))
_NAME_OF_FINGERPRINT = Prepared(
    select(SSHKey.name).where(
        SSHKey.owner_id == _OWNER_ID, SSHKey.fingerprint_sha256 == bindparam("fingerprint")
    )
)
_ID_OF_NAME = Prepared(
    select(SSHKey.id).where(SSHKey.owner_id == _OWNER_ID, SSHKey.name == bindparam("name"))
)
_AUTHORIZED_KEYS = Prepared(
    select(SSHKey.public_key)
    .where(SSHKey.owner_id == _OWNER_ID)
    .order_by(SSHKey.is_default.desc(), SSHKey.created_at, SSHKey.id)
)
_INSERT = Prepared(insert(SSHKey))
# UPDATE and DELETE may not name a parameter like a column they set: hence "b_".
_THIS_KEY = and_(
    SSHKey.owner_id == bindparam("b_owner_id", type_=String),
    SSHKey.id == bindparam("b_key_id", type_=String),
)
_RENAME = Prepared(
    update(SSHKey).where(_THIS_KEY).values(name=bindparam("b_name"), updated_at=bindparam("at"))
)
_CLEAR_DEFAULT = Prepared(
    update(SSHKey)
    # Written as the partial index uq_ssh_keys_one_default_per_owner writes its own
    # condition: SQLite uses that index only for a matching term, and SQLAlchemy would
    # render the column as "is_default = 1" (a scan of the owner's keys: 0.8 ms at 1,500).
    .where(SSHKey.owner_id == bindparam("b_owner_id", type_=String), text("is_default"))
    .values(is_default=False, updated_at=bindparam("at"))
)
_SET_DEFAULT = Prepared(
    update(SSHKey).where(_THIS_KEY).values(is_default=True, updated_at=bindparam("at"))
)
_DELETE = Prepared(delete(SSHKey).where(_THIS_KEY))


def validate_name(raw: str) -> str:
    """The name trimmed; raises InvalidInputError unless 1 to 128 characters, none control."""
    name = raw.strip()
    problem = None
    if not name:
        problem = "name must not be empty; give the key a name such as your machine's"
    elif len(name) > NAME_MAX_CHARS:
        problem = f"name is {len(name)} characters long; use at most {NAME_MAX_CHARS}"
    elif any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI_CONTROLS for ch in name):
        problem = "name must not contain control characters; use letters, digits and punctuation"
    if problem is not None:
        raise InvalidInputError(problem, details=[FieldProblem("name", problem)])
    return name


def validate_public_key(raw: str) -> pubkey.ParsedKey:
    """The parsed key; raises InvalidInputError with the parser's advice."""
    try:
        return pubkey.parse_public_key(raw)
    except pubkey.PublicKeyError as exc:
        message = f"publicKey: {exc.message}"
        raise InvalidInputError(message, details=[FieldProblem("publicKey", exc.message)]) from None


def prepare(name: str, public_key: str) -> NewSSHKey:
    """Validate a create request, name first; no database needed."""
    return NewSSHKey(name=validate_name(name), key=validate_public_key(public_key))


async def create(conn: Connection, actor: Actor, new: NewSSHKey, *, max_keys: int) -> SSHKeyRecord:
    """Register a key for the actor's owner; the owner's first key becomes its default.

    Raises InvalidInputError when the owner's limit is reached, and ConflictError when the
    same public key or the same name is already registered by this owner.
    """
    owner_id = actor.owner_id
    await owners.lock(conn, owner_id)
    count: int = (await conn.fetch(_COUNT, {"owner_id": owner_id}))[0][0]
    if count >= max_keys:
        raise InvalidInputError(
            f"You have reached the limit of {max_keys} SSH keys; "
            "delete keys you no longer use before adding another"
        )
    same_key = await conn.fetch(
        _NAME_OF_FINGERPRINT,
        {"owner_id": owner_id, "fingerprint": new.key.fingerprint_sha256},
    )
    if same_key:
        raise ConflictError(f'This SSH key is already registered as "{same_key[0][0]}"')
    await _ensure_name_free(conn, owner_id, new.name)
    now = utcnow()
    record = SSHKeyRecord(
        id=new_id(),
        name=new.name,
        public_key=new.key.openssh,
        is_default=count == 0,
        created_at=now,
        updated_at=now,
        fingerprint_sha256=new.key.fingerprint_sha256,
        fingerprint_md5=new.key.fingerprint_md5,
        key_type=new.key.key_type,
        key_bits=new.key.bits,
    )
    try:
        await conn.run(_INSERT, {"owner_id": owner_id, **record._asdict()})
    except INTEGRITY_ERRORS as exc:  # only reachable if a writer skipped the owner lock
        raise ConflictError("This SSH key or its name was registered at the same time") from exc
    await _audit(conn, actor, "ssh_key.create", record, at=now)
    return record


async def get(conn: Connection, owner_id: str, key_id: str) -> SSHKeyRecord:
    """One of the owner's keys; raises NotFoundError for any id the owner does not have."""
    if _ID.fullmatch(key_id) is None:
        raise NotFoundError(NOT_FOUND)
    rows = await conn.fetch(_GET, {"owner_id": owner_id, "key_id": key_id})
    if not rows:
        raise NotFoundError(NOT_FOUND)
    return SSHKeyRecord(*rows[0])


async def list_keys(
    conn: Connection,
    owner_id: str,
    *,
    fingerprint: str | None = None,
    name: str | None = None,
) -> list[SSHKeyRecord]:
    """The owner's keys, oldest first (ties by id), optionally filtered.

    `fingerprint` is a full `SHA256:…` or `MD5:…` string; `name` an exact name.
    """
    if any(value is not None and "\x00" in value for value in (fingerprint, name)):
        # No stored name or fingerprint holds NUL, and PostgreSQL refuses it in text.
        return []
    if fingerprint is None and name is None:  # the common case, on the fast path
        return [SSHKeyRecord(*row) for row in await conn.fetch(_LIST, {"owner_id": owner_id})]
    query = _OWNED
    if fingerprint is not None:
        query = query.where(_fingerprint_condition(fingerprint))
    if name is not None:
        query = query.where(SSHKey.name == name)
    rows = await conn.execute(query.order_by(SSHKey.created_at, SSHKey.id), {"owner_id": owner_id})
    return [_record(row) for row in rows]


async def authorized_keys(conn: Connection, owner_id: str) -> list[str]:
    """The owner's public keys as `authorized_keys` lines: default first, then oldest first."""
    return [row[0] for row in await conn.fetch(_AUTHORIZED_KEYS, {"owner_id": owner_id})]


async def rename(conn: Connection, actor: Actor, key_id: str, name: str) -> SSHKeyRecord:
    """Give a key a new (already validated) name; the same name changes nothing.

    Raises NotFoundError, or ConflictError when another key has that name.
    """
    owner_id = actor.owner_id
    await owners.lock(conn, owner_id)
    record = await get(conn, owner_id, key_id)
    if record.name == name:
        return record
    await _ensure_name_free(conn, owner_id, name)
    now = utcnow()
    await conn.run(_RENAME, {"b_owner_id": owner_id, "b_key_id": key_id, "b_name": name, "at": now})
    renamed = record._replace(name=name, updated_at=now)
    await _audit(conn, actor, "ssh_key.rename", renamed, at=now)
    return renamed


async def make_default(conn: Connection, actor: Actor, key_id: str) -> None:
    """Make the key the owner's only default; already default changes nothing."""
    owner_id = actor.owner_id
    await owners.lock(conn, owner_id)
    record = await get(conn, owner_id, key_id)
    if record.is_default:
        return
    now = utcnow()
    # Two statements, clear then set: a unique index is checked row by row, so one
    # statement flipping both rows could see two defaults half-way.
    await conn.run(_CLEAR_DEFAULT, {"b_owner_id": owner_id, "at": now})
    await conn.run(_SET_DEFAULT, {"b_owner_id": owner_id, "b_key_id": key_id, "at": now})
    await _audit(conn, actor, "ssh_key.make_default", record, at=now)


async def delete_key(conn: Connection, actor: Actor, key_id: str) -> SSHKeyRecord:
    """Delete a key; if it was the default, the newest remaining key becomes the default.

    Returns the deleted key. Raises NotFoundError.
    """
    owner_id = actor.owner_id
    await owners.lock(conn, owner_id)
    record = await get(conn, owner_id, key_id)
    await conn.run(_DELETE, {"b_owner_id": owner_id, "b_key_id": key_id})
    now = utcnow()
    await _audit(conn, actor, "ssh_key.delete", record, at=now)
    if record.is_default:
        rows = await conn.fetch(_NEWEST, {"owner_id": owner_id})
        if rows:
            await conn.run(
                _SET_DEFAULT, {"b_owner_id": owner_id, "b_key_id": rows[0][0], "at": now}
            )
            promoted = SSHKeyRecord(*rows[0])._replace(is_default=True, updated_at=now)
            await _audit(conn, actor, "ssh_key.make_default", promoted, at=now)
    return record


async def _audit(
    conn: Connection, actor: Actor, action: str, record: SSHKeyRecord, *, at: dt.datetime
) -> None:
    await audit.record(
        conn,
        actor,
        action,
        ssh_key_id=record.id,
        fingerprint=record.fingerprint_sha256,
        name=record.name,
        at=at,
    )


async def _ensure_name_free(conn: Connection, owner_id: str, name: str) -> None:
    if await conn.fetch(_ID_OF_NAME, {"owner_id": owner_id, "name": name}):
        raise ConflictError(f'An SSH key named "{name}" already exists; choose another name')


def _record(row: Row[Any]) -> SSHKeyRecord:
    # Rows come from _SELECT, whose columns are the record's fields, in order.
    return SSHKeyRecord(*row)  # type: ignore[call-arg]


def _fingerprint_condition(fingerprint: str) -> ColumnElement[bool]:
    kind, _, value = fingerprint.partition(":")
    if kind == "SHA256" and value:
        return SSHKey.fingerprint_sha256 == fingerprint
    if kind == "MD5" and value:
        return SSHKey.fingerprint_md5 == f"MD5:{value.lower()}"
    problem = "fingerprint must be a full SHA256:… or MD5:… fingerprint, as ssh-keygen -l prints"
    raise InvalidInputError(problem, details=[FieldProblem("fingerprint", problem)])
