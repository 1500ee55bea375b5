"""SSH-key rules: validation, the owner's limit, uniqueness, and the default key.

The one-default invariant (SPEC 5) lives here and in the partial unique index of
`models.py`: every write first locks the owner (`owners.service.lock`), so that the
read-then-write steps below never interleave with another writer to the same owner.
Every change to a key also moves its owner's version (a trigger of the database, see
gpucloud.owners.models), which is what the cached answers are validated by.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    bindparam,
    delete,
    exists,
    insert,
    or_,
    select,
    text,
    update,
)

from gpucloud import pubkey
from gpucloud.audit import service as audit
from gpucloud.audit.service import Actor
from gpucloud.db import Database, IntegrityError, Statement, Unit, new_id, utcnow
from gpucloud.errors import ConflictError, FieldProblem, InvalidInputError, NotFoundError
from gpucloud.owners import service as owner_service
from gpucloud.owners.models import owners
from gpucloud.ssh_keys.models import ssh_keys
from gpucloud.wire import parse_timestamp

NAME_MAX_CHARS = 128
NOT_FOUND = "SSH key not found"
_ID = re.compile(r"[0-9a-f]{24}")
# Bidirectional overrides and isolates can make a name display as something else.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class SSHKeyRecord(NamedTuple):
    """An SSH key as stored (a named tuple: a list builds many of them)."""

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
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None

    def usable(self, now: dt.datetime) -> bool:
        """Whether the key may still open a login or be certified (not expired)."""
        return self.expires_at is None or self.expires_at > now


class OwnerKeys(NamedTuple):
    """All of an owner's keys, oldest first, and the owner's version they were read at."""

    version: int
    keys: list[SSHKeyRecord]


@dataclass(frozen=True, slots=True)
class NewSSHKey:
    """A validated create request: a clean name, a parsed public key, an expiry."""

    name: str
    key: pubkey.ParsedKey
    expires_at: dt.datetime | None = None


class _Taken(NamedTuple):
    name: str
    fingerprint_sha256: str


_SELECT = select(*(ssh_keys.c[field] for field in SSHKeyRecord._fields))
_OWNER_ID = bindparam("owner_id", type_=String)
_KEY_ID = bindparam("key_id", type_=String)
_OWNED = _SELECT.where(ssh_keys.c.owner_id == _OWNER_ID)
_OLDEST_FIRST = (ssh_keys.c.created_at, ssh_keys.c.id)
_LIST = Statement(_OWNED.order_by(*_OLDEST_FIRST), SSHKeyRecord)
_VERSION = Statement(select(owners.c.version).where(owners.c.id == _OWNER_ID))
_GET = Statement(_OWNED.where(ssh_keys.c.id == _KEY_ID), SSHKeyRecord)
_NEWEST = Statement(
    _OWNED.order_by(ssh_keys.c.created_at.desc(), ssh_keys.c.id.desc()).limit(1), SSHKeyRecord
)
# A key registered twice, or a name taken: one statement answers both questions.
_TAKEN = Statement(
    select(ssh_keys.c.name, ssh_keys.c.fingerprint_sha256).where(
        ssh_keys.c.owner_id == _OWNER_ID,
        (ssh_keys.c.fingerprint_sha256 == bindparam("fingerprint"))
        | (ssh_keys.c.name == bindparam("name")),
    ),
    _Taken,
)
_BY_FINGERPRINT = Statement(
    _OWNED.where(ssh_keys.c.fingerprint_sha256 == bindparam("fingerprint")), SSHKeyRecord
)
_NAME_TAKEN = Statement(
    select(ssh_keys.c.id).where(
        ssh_keys.c.owner_id == _OWNER_ID, ssh_keys.c.name == bindparam("name")
    )
)
_INSERT = Statement(insert(ssh_keys))
# UPDATE and DELETE may not name a parameter like a column they set: hence "b_".
_THIS_KEY = and_(
    ssh_keys.c.owner_id == bindparam("b_owner_id", type_=String),
    ssh_keys.c.id == bindparam("b_key_id", type_=String),
)
_UPDATE = Statement(
    update(ssh_keys)
    .where(_THIS_KEY)
    .values(
        name=bindparam("b_name"),
        expires_at=bindparam("b_expires_at"),
        updated_at=bindparam("at"),
    )
)
_SET_DEFAULT = Statement(
    update(ssh_keys).where(_THIS_KEY).values(is_default=True, updated_at=bindparam("at"))
)


class _Named(NamedTuple):
    """What the audit trail records of a key."""

    id: str
    name: str
    fingerprint_sha256: str


# make_default's two statements: clear the default unless it is this key (or there is no
# such key), then make this key the default unless it already is, returning what the
# audit trail needs.
_THIS_ONE = ssh_keys.alias("this_one")
_CLEAR_OTHER_DEFAULT = Statement(
    update(ssh_keys)
    .where(
        ssh_keys.c.owner_id == bindparam("b_owner_id", type_=String),
        # Written as the partial index uq_ssh_keys_one_default_per_owner writes its own
        # condition: SQLite uses that index only for a matching term, and SQLAlchemy
        # would render the column as "is_default = 1" (a scan of all the owner's keys).
        text("is_default"),
        ssh_keys.c.id != bindparam("b_key_id", type_=String),
        exists().where(
            _THIS_ONE.c.owner_id == bindparam("b_owner_id", type_=String),
            _THIS_ONE.c.id == bindparam("b_key_id", type_=String),
        ),
    )
    .values(is_default=False, updated_at=bindparam("at"))
)
_MAKE_DEFAULT = Statement(
    update(ssh_keys)
    .where(_THIS_KEY, text("NOT is_default"))
    .values(is_default=True, updated_at=bindparam("at"))
    .returning(ssh_keys.c.id, ssh_keys.c.name, ssh_keys.c.fingerprint_sha256),
    _Named,
)
_DELETE = Statement(delete(ssh_keys).where(_THIS_KEY))
# Only when the stored minute differs: a second login in the same minute writes nothing.
_RECORD_USE = Statement(
    update(ssh_keys)
    .where(_THIS_KEY)
    .where(or_(ssh_keys.c.last_used_at.is_(None), ssh_keys.c.last_used_at != bindparam("minute")))
    .values(last_used_at=bindparam("minute"))
)


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


def validate_expiry(raw: str | None, now: dt.datetime) -> dt.datetime | None:
    """The expiry of `expiresAt` (None for null); raises InvalidInputError unless it is a
    time with its offset (as `createdAt` is written) and in the future."""
    if raw is None:
        return None
    expires_at = parse_timestamp(raw)
    problem = None
    if expires_at is None:
        problem = (
            f"expiresAt {raw[:40]!r} is not a time; write it in UTC as "
            "YYYY-MM-DDTHH:MM:SS.mmmZ, e.g. 2030-01-31T12:00:00.000Z, or null for no expiry"
        )
    elif expires_at <= now:
        problem = (
            f"expiresAt {raw[:40]} is not in the future; give a later time, or null for no "
            "expiry (delete the key to stop it at once)"
        )
    if problem is not None:
        raise InvalidInputError(problem, details=[FieldProblem("expiresAt", problem)])
    return expires_at


def prepare(
    name: str, public_key: str, expires_at: str | None = None, *, now: dt.datetime | None = None
) -> NewSSHKey:
    """Validate a create request (name, key, expiry, in that order); no database needed."""
    clean_name = validate_name(name)
    key = validate_public_key(public_key)
    return NewSSHKey(
        name=clean_name, key=key, expires_at=validate_expiry(expires_at, now or utcnow())
    )


async def create(unit: Unit, actor: Actor, new: NewSSHKey, *, max_keys: int) -> SSHKeyRecord:
    """Register a key for the actor's owner; the owner's first key becomes its default.

    Raises InvalidInputError when the owner's limit is reached, and ConflictError when the
    same public key (checked first) or the same name is already registered by this owner.
    """
    owner_id = actor.owner_id
    count = await owner_service.lock_and_count(unit, owner_id)
    if count >= max_keys:
        raise InvalidInputError(
            f"You have reached the limit of {max_keys} SSH keys; "
            "delete keys you no longer use before adding another"
        )
    fingerprint = new.key.fingerprint_sha256
    taken = await unit.fetch(
        _TAKEN, {"owner_id": owner_id, "fingerprint": fingerprint, "name": new.name}
    )
    for other in taken:
        if other.fingerprint_sha256 == fingerprint:
            raise ConflictError(f'This SSH key is already registered as "{other.name}"')
    if taken:
        raise _name_taken(new.name)
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
        expires_at=new.expires_at,
        last_used_at=None,
    )
    try:
        await unit.run(_INSERT, {"owner_id": owner_id, **record._asdict()})
    except IntegrityError as exc:  # only reachable if a writer skipped the owner lock
        raise ConflictError("This SSH key or its name was registered at the same time") from exc
    await _audit(unit, actor, "ssh_key.create", record, at=now)
    return record


async def get(unit: Unit, owner_id: str, key_id: str) -> SSHKeyRecord:
    """One of the owner's keys; raises NotFoundError for any id the owner does not have."""
    if _ID.fullmatch(key_id) is None:
        raise NotFoundError(NOT_FOUND)
    record = await unit.fetch_one(_GET, {"owner_id": owner_id, "key_id": key_id})
    if record is None:
        raise NotFoundError(NOT_FOUND)
    return record


async def owner_keys(unit: Unit, owner_id: str) -> OwnerKeys:
    """All the owner's keys, oldest first (ties by id), with the owner's version, read in
    one snapshot: the version says exactly which state of the keys these are."""
    version = await unit.fetch_one(_VERSION, {"owner_id": owner_id})
    keys = await unit.fetch(_LIST, {"owner_id": owner_id})
    return OwnerKeys(version=int(version.version) if version else 0, keys=keys)


async def find_keys(
    unit: Unit, owner_id: str, *, fingerprint: str | None = None, name: str | None = None
) -> list[SSHKeyRecord]:
    """The owner's keys with this fingerprint and/or this name, oldest first.

    `fingerprint` is a full `SHA256:…` or `MD5:…` string; `name` an exact name.
    Raises InvalidInputError for a fingerprint of neither form.
    """
    if any(value is not None and "\x00" in value for value in (fingerprint, name)):
        # No stored name or fingerprint holds NUL, and PostgreSQL refuses it in text.
        return []
    conditions = []
    if fingerprint is not None:
        conditions.append(_fingerprint_condition(fingerprint))
    if name is not None:
        conditions.append(ssh_keys.c.name == name)
    query = _OWNED.where(*conditions).order_by(*_OLDEST_FIRST)
    return await unit.fetch(Statement(query, SSHKeyRecord), {"owner_id": owner_id})


def authorized_keys_lines(keys: list[SSHKeyRecord], now: dt.datetime) -> list[str]:
    """`authorized_keys` lines of these keys (oldest first) that have not expired at
    `now`: the default first, then oldest first. A key with an expiry gets sshd's
    `expiry-time` option in front, so that sshd refuses it then even from a cached copy."""
    ordered = sorted(keys, key=lambda key: not key.is_default)  # a stable sort keeps the age order
    return [authorized_keys_line(key) for key in ordered if key.usable(now)]


def authorized_keys_line(key: SSHKeyRecord) -> str:
    """The key's `authorized_keys` line, with `expiry-time="YYYYMMDDHHMMSSZ"` (UTC, the
    second rounded down: sshd stops it no later than the API does) when it expires."""
    if key.expires_at is None:
        return key.public_key
    return f'expiry-time="{key.expires_at.strftime("%Y%m%d%H%M%SZ")}" {key.public_key}'


def valid_until(keys: list[SSHKeyRecord], now: dt.datetime) -> dt.datetime | None:
    """When the authorized_keys lines of `keys` next change by the clock alone: the
    earliest expiry still ahead of `now` (None if no key will expire)."""
    return min((k.expires_at for k in keys if k.expires_at and k.expires_at > now), default=None)


class _Keep:
    """The value of a field that an update leaves as it is."""


KEEP = _Keep()


async def update_key(
    unit: Unit,
    actor: Actor,
    key_id: str,
    *,
    name: str | _Keep = KEEP,
    expires_at: dt.datetime | _Keep | None = KEEP,
) -> SSHKeyRecord:
    """Rename a key and/or set its expiry (already validated; None removes it). A value
    equal to the stored one changes nothing; anything that changes moves `updatedAt`.

    Raises NotFoundError, or ConflictError when another key has that name.
    """
    owner_id = actor.owner_id
    await owner_service.lock(unit, owner_id)
    record = await get(unit, owner_id, key_id)
    new_name = record.name if isinstance(name, _Keep) else name
    new_expiry = record.expires_at if isinstance(expires_at, _Keep) else expires_at
    renaming = new_name != record.name
    expiring = new_expiry != record.expires_at
    if not renaming and not expiring:
        return record
    if renaming and await unit.fetch(_NAME_TAKEN, {"owner_id": owner_id, "name": new_name}):
        raise _name_taken(new_name)
    now = utcnow()
    changed = record._replace(name=new_name, expires_at=new_expiry, updated_at=now)
    await unit.run(
        _UPDATE,
        {
            "b_owner_id": owner_id,
            "b_key_id": key_id,
            "b_name": changed.name,
            "b_expires_at": changed.expires_at,
            "at": now,
        },
    )
    if renaming:
        await _audit(unit, actor, "ssh_key.rename", changed, at=now)
    if expiring:
        await _audit(unit, actor, "ssh_key.set_expiry", changed, at=now)
    return changed


async def rename(unit: Unit, actor: Actor, key_id: str, name: str) -> SSHKeyRecord:
    """Give a key a new (already validated) name; the same name changes nothing.

    Raises NotFoundError, or ConflictError when another key has that name.
    """
    return await update_key(unit, actor, key_id, name=name)


async def make_default(unit: Unit, actor: Actor, key_id: str) -> None:
    """Make the key the owner's only default; already default changes nothing.

    Raises NotFoundError, having changed nothing.
    """
    owner_id = actor.owner_id
    if _ID.fullmatch(key_id) is None:
        raise NotFoundError(NOT_FOUND)
    await owner_service.lock(unit, owner_id)
    now = utcnow()
    # Two statements, clear then set: a unique index is checked row by row, so one
    # statement flipping both rows could see two defaults half-way.
    values = {"b_owner_id": owner_id, "b_key_id": key_id, "at": now}
    await unit.run(_CLEAR_OTHER_DEFAULT, values)
    made = await unit.fetch_one(_MAKE_DEFAULT, values)
    if made is None:
        # Already the default, or no such key (get() raises NotFoundError): either way
        # the first statement changed nothing.
        await get(unit, owner_id, key_id)
        return
    await _audit(unit, actor, "ssh_key.make_default", made, at=now)


async def delete_key(unit: Unit, actor: Actor, key_id: str) -> SSHKeyRecord:
    """Delete a key; if it was the default, the newest remaining key becomes the default.

    Returns the deleted key. Raises NotFoundError.
    """
    owner_id = actor.owner_id
    await owner_service.lock(unit, owner_id)
    record = await get(unit, owner_id, key_id)
    await unit.run(_DELETE, {"b_owner_id": owner_id, "b_key_id": key_id})
    now = utcnow()
    await _audit(unit, actor, "ssh_key.delete", record, at=now)
    if record.is_default:
        newest = await unit.fetch_one(_NEWEST, {"owner_id": owner_id})
        if newest is not None:
            await unit.run(_SET_DEFAULT, {"b_owner_id": owner_id, "b_key_id": newest.id, "at": now})
            promoted = newest._replace(is_default=True, updated_at=now)
            await _audit(unit, actor, "ssh_key.make_default", promoted, at=now)
    return record


async def key_for_login(database: Database, owner_id: str, fingerprint: str) -> SSHKeyRecord | None:
    """The owner's key whose SHA-256 fingerprint is `fingerprint` (as sshd's %f gives
    it), or None. Raises InvalidInputError for anything but a `SHA256:…` fingerprint.

    One indexed read, answered from memory while the database has not changed (an
    instance asks for the same key at every login).
    """
    kind, _, value = fingerprint.partition(":")
    if kind != "SHA256" or not value or "\x00" in value:
        problem = (
            "fingerprint must be a SHA256:… fingerprint, as sshd's %f and "
            "ssh-keygen -l -E sha256 print it"
        )
        raise InvalidInputError(problem, details=[FieldProblem("fingerprint", problem)])
    rows = await database.fetch(
        _BY_FINGERPRINT, {"owner_id": owner_id, "fingerprint": fingerprint}, reuse=True
    )
    return rows[0] if rows else None


def use_is_new(record: SSHKeyRecord, now: dt.datetime) -> bool:
    """Whether a use at `now` would change the key's recorded last use (another minute)."""
    return record.last_used_at != use_minute(now)


def use_minute(now: dt.datetime) -> dt.datetime:
    """The minute `lastUsedAt` records for a use at `now` (kept to the minute, D46)."""
    return now.replace(second=0, microsecond=0)


async def record_use(unit: Unit, owner_id: str, key_id: str, now: dt.datetime) -> bool:
    """Record that the key was handed to an SSH server (or certified) at `now`, kept to
    the minute; returns whether anything was written (not when the stored minute is
    already this one, nor for a key that does not exist).

    Takes the owner's lock first: the write moves the owner's version (its triggers
    update the owner's row), and taking the owner before the key, as every writer does,
    keeps two transactions from waiting on each other.
    """
    await owner_service.lock(unit, owner_id)
    params = {"b_owner_id": owner_id, "b_key_id": key_id, "minute": use_minute(now)}
    return await unit.run(_RECORD_USE, params) > 0


async def _audit(
    unit: Unit, actor: Actor, action: str, record: SSHKeyRecord | _Named, *, at: dt.datetime
) -> None:
    await audit.record(
        unit,
        actor,
        action,
        ssh_key_id=record.id,
        fingerprint=record.fingerprint_sha256,
        name=record.name,
        at=at,
    )


def _name_taken(name: str) -> ConflictError:
    return ConflictError(f'An SSH key named "{name}" already exists; choose another name')


def _fingerprint_condition(fingerprint: str) -> ColumnElement[bool]:
    kind, _, value = fingerprint.partition(":")
    if kind == "SHA256" and value:
        return ssh_keys.c.fingerprint_sha256 == fingerprint
    if kind == "MD5" and value:
        return ssh_keys.c.fingerprint_md5 == f"MD5:{value.lower()}"
    problem = "fingerprint must be a full SHA256:… or MD5:… fingerprint, as ssh-keygen -l prints"
    raise InvalidInputError(problem, details=[FieldProblem("fingerprint", problem)])
