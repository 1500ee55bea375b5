"""Helpers of the reliability tests: API keys, a recorded background load, the error
shape, and what the database itself must hold after a fault."""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select

from gpucloud.audit.models import audit_events
from gpucloud.db import normalize_url, sqlite_path
from gpucloud.idempotency.models import idempotency_keys
from gpucloud.owners.models import owners
from gpucloud.pubkey import parse_public_key
from gpucloud.ssh_keys.models import ssh_keys
from tests.support.api_keys import open_database
from tests.support.bulk_keys import ed25519_public_line
from tests.support.server import ServerProcess

PREFIX = "/gpu-cloud/ssh-keys"
ERROR_REQUIRED = frozenset({"statusCode", "timestamp", "path", "message"})
ERROR_ALLOWED = ERROR_REQUIRED | {"error", "details"}


def error_shape_problem(response: httpx.Response) -> str | None:
    """None if `response` is an error in the SPEC's error shape, else what is wrong with it."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return f"content type {response.headers.get('content-type')!r}: {response.text[:200]}"
    body: Any = response.json()
    if not isinstance(body, dict) or not set(body) >= ERROR_REQUIRED:
        return f"not the error shape: {response.text[:200]}"
    if set(body) - ERROR_ALLOWED:
        return f"extra properties {sorted(set(body) - ERROR_ALLOWED)}: {response.text[:200]}"
    if body["statusCode"] != response.status_code or not body["message"]:
        return f"statusCode or message wrong: {response.text[:200]}"
    if body["path"] != response.request.url.path:
        return f"path {body['path']!r} is not the request's: {response.text[:200]}"
    return None


@dataclass(frozen=True)
class Outcome:
    """One request of the load and what came of it."""

    started: float  # time.monotonic() when sent
    ended: float
    action: str  # "create" or "list"
    api_key: str
    name: str  # the create's name (unique per request), "" for a list
    idempotency_key: str | None
    public_key: str
    status: int | None  # None: no answer (transport error)
    error: str  # the transport error's class, or the error-shape problem, or ""
    retry_after: str | None
    key_id: str | None  # the new key's id, for a 201
    fingerprint: str | None


@dataclass
class BackgroundLoad:
    """Threads that create keys and list them, recording every outcome, until stopped.

    Each create has a unique name and a fresh key; with `idempotency`, every other create
    carries an Idempotency-Key. `max_creates` bounds the whole load. `on_outcome` is
    called (from the load's threads) after each request; after a 503, a thread waits
    `pause_after_503_s` (a client that backs off a little, not the full Retry-After).
    """

    base_url: str
    api_keys: list[str]
    threads: int = 4
    list_share: float = 0.25
    idempotency: bool = False
    max_creates: int | None = None
    timeout_s: float = 10.0
    pause_after_503_s: float = 0.0
    on_outcome: Callable[[Outcome], None] | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _creates_started: int = 0

    def start(self) -> BackgroundLoad:
        self._workers = [
            threading.Thread(target=self._work, args=(n,), daemon=True) for n in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()
        return self

    def halt(self) -> None:
        """Ask every thread to stop after its current request; returns at once."""
        self._stop.set()

    def stop(self) -> None:
        """Ask every thread to stop after its current request, and wait for them."""
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout_s + 5)
            assert not worker.is_alive(), "a load thread did not stop"

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def statuses(self, outcomes: list[Outcome] | None = None) -> Counter[int | None]:
        return Counter(o.status for o in (self.snapshot() if outcomes is None else outcomes))

    def acknowledged(self) -> list[Outcome]:
        """The creates that got a 201."""
        return [o for o in self.snapshot() if o.action == "create" and o.status == 201]

    def _work(self, index: int) -> None:
        rng = random.Random(index)
        with httpx.Client(base_url=self.base_url, timeout=self.timeout_s) as http:
            n = 0
            while not self._stop.is_set():
                n += 1
                api_key = self.api_keys[(index + n) % len(self.api_keys)]
                if rng.random() < self.list_share:
                    outcome = self._list(http, api_key)
                else:
                    with self._lock:
                        if (
                            self.max_creates is not None
                            and self._creates_started >= self.max_creates
                        ):
                            return
                        self._creates_started += 1
                    outcome = self._create(http, api_key, f"w{index}-{n}", idempotent=n % 2 == 0)
                with self._lock:
                    self.outcomes.append(outcome)
                if self.on_outcome is not None:
                    self.on_outcome(outcome)
                if outcome.status == 503:
                    self._stop.wait(self.pause_after_503_s)

    def _create(self, http: httpx.Client, api_key: str, name: str, *, idempotent: bool) -> Outcome:
        public_key = ed25519_public_line(name)
        headers = {"x-api-key": api_key}
        idempotency_key = f"retry-{name}" if self.idempotency and idempotent else None
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        body = {"name": name, "publicKey": public_key}
        return self._send(http, "create", api_key, name, idempotency_key, public_key, body, headers)

    def _list(self, http: httpx.Client, api_key: str) -> Outcome:
        return self._send(http, "list", api_key, "", None, "", None, {"x-api-key": api_key})

    def _send(
        self,
        http: httpx.Client,
        action: str,
        api_key: str,
        name: str,
        idempotency_key: str | None,
        public_key: str,
        body: dict[str, str] | None,
        headers: dict[str, str],
    ) -> Outcome:
        started = time.monotonic()
        status = key_id = fingerprint = retry_after = None
        error = ""
        try:
            if body is None:
                response = http.get(PREFIX, headers=headers)
            else:
                response = http.post(PREFIX, headers=headers, json=body)
        except httpx.TransportError as exc:
            error = type(exc).__name__
        else:
            status = response.status_code
            retry_after = response.headers.get("retry-after")
            if status >= 400:
                error = error_shape_problem(response) or ""
            elif status == 201:
                dto = response.json()
                key_id, fingerprint = dto["_id"], dto["fingerprint"]
        return Outcome(
            started=started,
            ended=time.monotonic(),
            action=action,
            api_key=api_key,
            name=name,
            idempotency_key=idempotency_key,
            public_key=public_key,
            status=status,
            error=error,
            retry_after=retry_after,
            key_id=key_id,
            fingerprint=fingerprint,
        )


ACCESS_LINE = re.compile(r'"logger":\s*"gpucloud\.access".*"status":\s*\d{3}')


def server_log_lines(server: ServerProcess, pattern: re.Pattern[str]) -> list[str]:
    """The lines of the server's log that match `pattern`.

    Fails the test if the log holds no access line in the form the patterns expect
    (JSON, with `"status": NNN`): a changed log format must not make a scan for 5xx
    answers pass by seeing nothing.
    """
    lines = server.logs().splitlines()
    assert any(ACCESS_LINE.search(line) for line in lines), (
        "no JSON access line with a status in the server log; has its format changed?\n"
        + "\n".join(lines[-5:])
    )
    return [line for line in lines if pattern.search(line)]


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll `condition` every 20 ms; the seconds it took. Fails the test after `timeout_s`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.02)
    return time.monotonic() - started


def listed_keys(base_url: str, api_key: str) -> dict[str, dict[str, Any]]:
    """The owner's keys by id, as GET /gpu-cloud/ssh-keys lists them."""
    response = httpx.get(f"{base_url}{PREFIX}", headers={"x-api-key": api_key}, timeout=10)
    assert response.status_code == 200, response.text
    return {key["_id"]: key for key in response.json()}


def assert_acknowledged_creates_kept(load: BackgroundLoad, base_url: str) -> int:
    """Every create that got a 201 is listed with the same fingerprint and name; the count."""
    acknowledged = load.acknowledged()
    for api_key in load.api_keys:
        listed = listed_keys(base_url, api_key)
        for outcome in acknowledged:
            if outcome.api_key != api_key:
                continue
            assert outcome.key_id in listed, f"acknowledged key {outcome.name} was lost"
            stored = listed[outcome.key_id]
            assert (stored["fingerprint"], stored["name"]) == (outcome.fingerprint, outcome.name)
    return len(acknowledged)


@dataclass(frozen=True)
class StoredState:
    """What the database holds, read directly (not through the API)."""

    keys: int
    owners_with_keys: int
    audit_creates: int
    idempotency_rows: int
    sqlite_integrity: str | None  # PRAGMA integrity_check, or None on PostgreSQL


def check_stored_state(database_url: str) -> StoredState:
    """Read the database directly and fail the test on anything half-written.

    Every SSH key belongs to an existing owner, is whole (its stored public key parses
    to the stored type, size and fingerprints) and has its `ssh_key.create` audit event;
    every such event names an existing key (this load deletes nothing); every owner with
    keys has exactly one default; every stored idempotent answer names an existing key of
    its owner. On SQLite, the file also passes PRAGMA integrity_check and foreign_key_check.
    """
    integrity = _sqlite_integrity(database_url)
    return asyncio.run(_check(database_url, integrity))


async def _check(database_url: str, integrity: str | None) -> StoredState:
    async with open_database(database_url) as database, database.read() as conn:
        keys = await conn.fetch(
            select(
                ssh_keys.c.id,
                ssh_keys.c.owner_id,
                ssh_keys.c.name,
                ssh_keys.c.public_key,
                ssh_keys.c.key_type,
                ssh_keys.c.key_bits,
                ssh_keys.c.fingerprint_sha256,
                ssh_keys.c.fingerprint_md5,
                ssh_keys.c.is_default,
                owners.c.id.label("known"),
            ).outerjoin(owners, owners.c.id == ssh_keys.c.owner_id)
        )
        creates = await conn.fetch(
            select(
                audit_events.c.ssh_key_id, audit_events.c.owner_id, audit_events.c.fingerprint
            ).where(audit_events.c.action == "ssh_key.create")
        )
        remembered = await conn.fetch(
            select(
                idempotency_keys.c.owner_id,
                idempotency_keys.c.key,
                idempotency_keys.c.status,
                idempotency_keys.c.location,
            )
        )

    problems = []
    by_id = {(k.owner_id, k.id): k for k in keys}
    defaults: Counter[str] = Counter()
    for key in keys:
        defaults[key.owner_id] += 1 if key.is_default else 0
        if key.known is None:
            problems.append(f"key {key.id} has no owner row")
        parsed = parse_public_key(key.public_key)
        stored = (key.key_type, key.key_bits, key.fingerprint_sha256, key.fingerprint_md5)
        if stored != (
            parsed.key_type,
            parsed.bits,
            parsed.fingerprint_sha256,
            parsed.fingerprint_md5,
        ):
            problems.append(f"key {key.id} is not whole: {stored}")
        if not key.name:
            problems.append(f"key {key.id} has no name")
    audited = {(row.owner_id, row.ssh_key_id): row.fingerprint for row in creates}
    for (owner_id, key_id), key in by_id.items():
        if audited.get((owner_id, key_id)) != key.fingerprint_sha256:
            problems.append(f"key {key_id} has no matching ssh_key.create audit event")
    for owner_id, key_id in set(audited) - set(by_id):
        problems.append(f"audit event for key {key_id} of {owner_id}, which does not exist")
    for owner_id, count in defaults.items():
        if count != 1:
            problems.append(f"owner {owner_id} has {count} default keys")
    for row in remembered:
        key_id = (row.location or "").rsplit("/", 1)[-1]
        if row.status == 201 and (row.owner_id, key_id) not in by_id:
            problems.append(f"idempotency key {row.key} answers with key {key_id}, which is gone")
    if integrity is not None and integrity != "ok":
        problems.append(f"PRAGMA integrity_check: {integrity}")
    assert problems == [], "\n".join(problems[:30])
    return StoredState(
        keys=len(keys),
        owners_with_keys=len(defaults),
        audit_creates=len(creates),
        idempotency_rows=len(remembered),
        sqlite_integrity=integrity,
    )


def _sqlite_integrity(database_url: str) -> str | None:
    path = sqlite_path(normalize_url(database_url))
    if path is None:
        return None
    with sqlite3.connect(path, timeout=10) as conn:
        integrity = "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
        foreign = conn.execute("PRAGMA foreign_key_check").fetchall()
    conn.close()
    return integrity if not foreign else f"{integrity}; foreign_key_check: {foreign[:5]}"
