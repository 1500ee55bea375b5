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
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gpucloud import pubkey
from gpucloud.audit import service as audit
from gpucloud.audit.service import Actor
from gpucloud.db import new_id, utcnow
from gpucloud.errors import ConflictError, FieldProblem, InvalidInputError, NotFoundError
from gpucloud.owners import service as owners
from gpucloud.ssh_keys.models import SSHKey

NAME_MAX_CHARS = 128
NOT_FOUND = "SSH key not found"
_ID = re.compile(r"[0-9a-f]{24}")
# Bidirectional overrides and isolates can make a name display as something else.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@dataclass(frozen=True, slots=True)
class SSHKeyRecord:
    """An SSH key as stored."""

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


async def create(
    conn: AsyncConnection, actor: Actor, new: NewSSHKey, *, max_keys: int
) -> SSHKeyRecord:
    """Register a key for the actor's owner; the owner's first key becomes its default.

    Raises InvalidInputError when the owner's limit is reached, and ConflictError when the
    same public key or the same name is already registered by this owner.
    """
    owner_id = actor.owner_id
    await owners.lock(conn, owner_id)
    count = await conn.scalar(select(func.count()).where(SSHKey.owner_id == owner_id)) or 0
    if count >= max_keys:
        raise InvalidInputError(
            f"You have reached the limit of {max_keys} SSH keys; "
            "delete keys you no longer use before adding another"
        )
    same_key = await conn.scalar(
        select(SSHKey.name).where(
            SSHKey.owner_id == owner_id,
            SSHKey.fingerprint_sha256 == new.key.fingerprint_sha256,
        )
    )
    if same_key is not None:
        raise ConflictError(f'This SSH key is already registered as "{same_key}"')
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
        await conn.execute(insert(SSHKey).values(owner_id=owner_id, **_as_row(record)))
    except IntegrityError as exc:  # only reachable if a writer skipped the owner lock
        raise ConflictError("This SSH key or its name was registered at the same time") from exc
    await _audit(conn, actor, "ssh_key.create", record, at=now)
    return record


async def get(conn: AsyncConnection, owner_id: str, key_id: str) -> SSHKeyRecord:
    """One of the owner's keys; raises NotFoundError for any id the owner does not have."""
    if _ID.fullmatch(key_id) is None:
        raise NotFoundError(NOT_FOUND)
    row = (await conn.execute(_owned(owner_id).where(SSHKey.id == key_id))).first()
    if row is None:
        raise NotFoundError(NOT_FOUND)
    return SSHKeyRecord(**row._mapping)


async def list_keys(
    conn: AsyncConnection,
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
    query = _owned(owner_id)
    if fingerprint is not None:
        query = query.where(_fingerprint_condition(fingerprint))
    if name is not None:
        query = query.where(SSHKey.name == name)
    rows = await conn.execute(query.order_by(SSHKey.created_at, SSHKey.id))
    return [SSHKeyRecord(**row._mapping) for row in rows]


async def authorized_keys(conn: AsyncConnection, owner_id: str) -> list[str]:
    """The owner's public keys as `authorized_keys` lines: default first, then oldest first."""
    rows = await conn.scalars(
        select(SSHKey.public_key)
        .where(SSHKey.owner_id == owner_id)
        .order_by(SSHKey.is_default.desc(), SSHKey.created_at, SSHKey.id)
    )
    return list(rows)


async def rename(conn: AsyncConnection, actor: Actor, key_id: str, name: str) -> SSHKeyRecord:
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
    await conn.execute(
        update(SSHKey)
        .where(SSHKey.owner_id == owner_id, SSHKey.id == key_id)
        .values(name=name, updated_at=now)
    )
    renamed = _replace(record, name=name, updated_at=now)
    await _audit(conn, actor, "ssh_key.rename", renamed, at=now)
    return renamed


async def make_default(conn: AsyncConnection, actor: Actor, key_id: str) -> None:
    """Make the key the owner's only default; already default changes nothing."""
    owner_id = actor.owner_id
    await owners.lock(conn, owner_id)
    record = await get(conn, owner_id, key_id)
    if record.is_default:
        return
    now = utcnow()
    # Two statements, clear then set: a unique index is checked row by row, so one
    # statement flipping both rows could see two defaults half-way.
    await conn.execute(
        update(SSHKey)
        .where(SSHKey.owner_id == owner_id, SSHKey.is_default.is_(True))
        .values(is_default=False, updated_at=now)
    )
    await conn.execute(
        update(SSHKey)
        .where(SSHKey.owner_id == owner_id, SSHKey.id == key_id)
        .values(is_default=True, updated_at=now)
    )
    await _audit(conn, actor, "ssh_key.make_default", record, at=now)


async def delete_key(conn: AsyncConnection, actor: Actor, key_id: str) -> SSHKeyRecord:
    """Delete a key; if it was the default, the newest remaining key becomes the default.

    Returns the deleted key. Raises NotFoundError.
    """
    owner_id = actor.owner_id
    await owners.lock(conn, owner_id)
    record = await get(conn, owner_id, key_id)
    await conn.execute(delete(SSHKey).where(SSHKey.owner_id == owner_id, SSHKey.id == key_id))
    now = utcnow()
    await _audit(conn, actor, "ssh_key.delete", record, at=now)
    if record.is_default:
        successor = (
            await conn.execute(
                _owned(owner_id).order_by(SSHKey.created_at.desc(), SSHKey.id.desc()).limit(1)
            )
        ).first()
        if successor is not None:
            await conn.execute(
                update(SSHKey)
                .where(SSHKey.owner_id == owner_id, SSHKey.id == successor.id)
                .values(is_default=True, updated_at=now)
            )
            promoted = SSHKeyRecord(**successor._mapping)
            await _audit(conn, actor, "ssh_key.make_default", promoted, at=now)
    return record


async def _audit(
    conn: AsyncConnection, actor: Actor, action: str, record: SSHKeyRecord, *, at: dt.datetime
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


async def _ensure_name_free(conn: AsyncConnection, owner_id: str, name: str) -> None:
    taken = await conn.scalar(
        select(SSHKey.id).where(SSHKey.owner_id == owner_id, SSHKey.name == name)
    )
    if taken is not None:
        raise ConflictError(f'An SSH key named "{name}" already exists; choose another name')


def _owned(owner_id: str) -> Select[*tuple[Any, ...]]:
    return _SELECT.where(SSHKey.owner_id == owner_id)


def _fingerprint_condition(fingerprint: str) -> ColumnElement[bool]:
    kind, _, value = fingerprint.partition(":")
    if kind == "SHA256" and value:
        return SSHKey.fingerprint_sha256 == fingerprint
    if kind == "MD5" and value:
        return SSHKey.fingerprint_md5 == f"MD5:{value.lower()}"
    problem = "fingerprint must be a full SHA256:… or MD5:… fingerprint, as ssh-keygen -l prints"
    raise InvalidInputError(problem, details=[FieldProblem("fingerprint", problem)])


def _as_row(record: SSHKeyRecord) -> dict[str, object]:
    return {column.key: getattr(record, column.key) for column in _COLUMNS}


def _replace(record: SSHKeyRecord, **changes: object) -> SSHKeyRecord:
    return SSHKeyRecord(**{**_as_row(record), **changes})  # type: ignore[arg-type]
