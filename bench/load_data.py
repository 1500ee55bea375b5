"""Benchmark data, loaded fast and cached under `.bench/`.

Two SQLite databases, each first migrated by `gpucloud db upgrade`, then filled directly
with sqlite3 `executemany` in large transactions, with exactly the rows the service would
write: ids from `gpucloud.db.new_id`, API-key secrets, digests and prefixes from
`gpucloud.api_keys.secrets`, fingerprints from the key parser's own functions, timestamps
in the column format SQLAlchemy writes, the first key of each owner its default, and one
audit event per API key and per SSH key created:

- **small**: `BENCH_OWNERS` owners (`bench-0000`, …), each with one API key and
  `KEYS_PER_OWNER` SSH keys;
- **large**: the small database plus filler owners, up to `LARGE_OWNERS` owners and
  `LARGE_OWNERS * KEYS_PER_OWNER` SSH keys (100,000 and 1,000,000).

The SSH keys are valid Ed25519 public keys made from random 32-byte strings in the
`ssh-ed25519` wire format (the database never re-parses a key; the self-check below does,
for a sample). The bench owners' secrets and key ids go to a manifest beside the database:
the benchmark's requests authenticate as them.

The POST key pool is a file of real Ed25519 public keys made by `cryptography`, one a line,
grown on demand.

Cached files are named after the schema revision and `LOADER_VERSION`; delete `.bench/`
to rebuild. `python -m bench.load_data [--large] [--post-keys N]` builds ahead of time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from gpucloud import migrate
from gpucloud.api_keys import secrets as api_secrets
from gpucloud.db import new_id
from gpucloud.pubkey.parse import fingerprint_md5, fingerprint_sha256

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench"
DB_DIR = CACHE / "db"
POST_KEYS = CACHE / "post-keys.txt"

LOADER_VERSION = 1
BENCH_OWNERS = 1000
KEYS_PER_OWNER = 10
LARGE_OWNERS = 100_000
# Owners generated (and inserted) per batch: bounds the loader's memory.
BATCH_OWNERS = 5000

_ED25519_PREFIX = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20"
_KEY_TYPE = "ssh-ed25519"
_KEY_BITS = 256
# What the server records as the client of the SSH-key creations, and the CLI of API keys.
_HTTP_CLIENT = "127.0.0.1"


@dataclass(frozen=True)
class BenchOwner:
    """An owner the benchmark acts as: its API-key secret and its SSH keys' ids (oldest first)."""

    name: str
    owner_id: str
    api_key_id: str
    secret: str
    key_ids: list[str]


@dataclass(frozen=True)
class Dataset:
    """A cached, migrated and loaded database, and the owners the benchmark may act as."""

    kind: str
    path: Path
    owners: list[BenchOwner]
    ssh_keys: int
    total_owners: int
    build_seconds: float | None  # None when it came from the cache


# ---------------------------------------------------------------------------- rows


class _Clock:
    """Strictly increasing creation times, one millisecond apart, in SQLAlchemy's SQLite
    column format (naive UTC, microseconds, truncated to the millisecond as utcnow does)."""

    def __init__(self, start: dt.datetime) -> None:
        self._next = start.replace(tzinfo=None, microsecond=start.microsecond // 1000 * 1000)

    def tick(self) -> str:
        value = self._next
        self._next = value + dt.timedelta(milliseconds=1)
        return value.isoformat(sep=" ", timespec="microseconds")


@dataclass
class _Batch:
    owners: list[tuple[object, ...]]
    api_keys: list[tuple[object, ...]]
    ssh_keys: list[tuple[object, ...]]
    audit: list[tuple[object, ...]]
    bench: list[BenchOwner]


def _owner_batch(names: list[str], clock: _Clock, *, keep: bool) -> _Batch:
    """Rows for `names`: each owner, its API key and its SSH keys, with their audit events.

    `keep` keeps the secrets and key ids (bench owners) for the manifest.
    """
    batch = _Batch([], [], [], [], [])
    randomness = os.urandom(32 * KEYS_PER_OWNER * len(names))
    offset = 0
    for name in names:
        owner_id = new_id()
        batch.owners.append((owner_id, name, clock.tick()))
        secret = api_secrets.generate()
        api_key_id = new_id()
        created = clock.tick()
        batch.api_keys.append(
            (
                api_key_id,
                owner_id,
                api_secrets.digest(secret),
                api_secrets.display_prefix(secret),
                created,
            )
        )
        batch.audit.append(
            (
                new_id(),
                created,
                owner_id,
                "api_key.create",
                api_key_id,
                None,
                None,
                None,
                None,
                "cli",
            )
        )
        key_ids = []
        for index in range(KEYS_PER_OWNER):
            blob = _ED25519_PREFIX + randomness[offset : offset + 32]
            offset += 32
            key_id = new_id()
            key_ids.append(key_id)
            key_name = f"key {index + 1}"
            sha256 = fingerprint_sha256(blob)
            created = clock.tick()
            batch.ssh_keys.append(
                (
                    owner_id,
                    key_id,
                    key_name,
                    f"{_KEY_TYPE} {base64.b64encode(blob).decode('ascii')}",
                    _KEY_TYPE,
                    _KEY_BITS,
                    sha256,
                    fingerprint_md5(blob),
                    1 if index == 0 else 0,
                    created,
                    created,
                )
            )
            batch.audit.append(
                (
                    new_id(),
                    created,
                    owner_id,
                    "ssh_key.create",
                    api_key_id,
                    key_id,
                    sha256,
                    key_name,
                    uuid.uuid4().hex,
                    _HTTP_CLIENT,
                )
            )
        if keep:
            batch.bench.append(BenchOwner(name, owner_id, api_key_id, secret, key_ids))
    # Inserting in primary-key order keeps the B-trees' inserts near their right edge.
    batch.owners.sort()
    batch.ssh_keys.sort()
    batch.audit.sort()
    batch.api_keys.sort()
    return batch


_INSERTS = {
    "owners": "INSERT INTO owners (id, name, created_at) VALUES (?, ?, ?)",
    "api_keys": "INSERT INTO api_keys (id, owner_id, secret_digest, prefix, created_at, "
    "expires_at, last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL)",
    "ssh_keys": "INSERT INTO ssh_keys (owner_id, id, name, public_key, key_type, key_bits, "
    "fingerprint_sha256, fingerprint_md5, is_default, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "audit": "INSERT INTO audit_events (id, at, owner_id, action, api_key_id, ssh_key_id, "
    "fingerprint, name, request_id, client) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
}


def _insert(conn: sqlite3.Connection, batch: _Batch) -> None:
    conn.executemany(_INSERTS["owners"], batch.owners)
    conn.executemany(_INSERTS["api_keys"], batch.api_keys)
    conn.executemany(_INSERTS["ssh_keys"], batch.ssh_keys)
    conn.executemany(_INSERTS["audit"], batch.audit)


def _bulk_connection(path: Path) -> sqlite3.Connection:
    """A connection tuned for one bulk load: no journal, no fsync, a large page cache.

    Safe because a failed load leaves only a temporary file that is deleted.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")  # leave WAL so that journal_mode=OFF applies
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")  # 1 GB
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _finish(conn: sqlite3.Connection) -> None:
    # Leave the file as the server leaves it: in WAL mode, everything checkpointed.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _names(prefix: str, start: int, stop: int, width: int) -> Iterator[list[str]]:
    for first in range(start, stop, BATCH_OWNERS):
        yield [f"{prefix}-{i:0{width}d}" for i in range(first, min(stop, first + BATCH_OWNERS))]


# ---------------------------------------------------------------------------- databases


def _gpucloud_command() -> list[str]:
    script = Path(sys.executable).parent / "gpucloud"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from gpucloud.cli import main; main()"]


def migrate_url(url: str) -> None:
    """Bring the database at `url` to the schema's head with `gpucloud db upgrade`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")}
    env["GPUCLOUD_DATABASE_URL"] = url
    done = subprocess.run(
        [*_gpucloud_command(), "db", "upgrade"], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"`gpucloud db upgrade` failed ({done.returncode}):\n{done.stderr}")


def _migrated(path: Path) -> None:
    """A new SQLite database at `path`, brought to the schema's head."""
    for stale in _with_sidecars(path):
        stale.unlink(missing_ok=True)
    migrate_url(f"sqlite:///{path}")


def _with_sidecars(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _cache_name(kind: str, owners: int) -> str:
    return f"{kind}-rev{migrate.head()}-v{LOADER_VERSION}-{owners}owners"


def _manifest_path(db: Path) -> Path:
    return db.with_suffix(".json")


def _read_manifest(db: Path) -> list[BenchOwner] | None:
    manifest = _manifest_path(db)
    if not db.exists() or not manifest.exists():
        return None
    data = json.loads(manifest.read_text())
    return [BenchOwner(**owner) for owner in data["owners"]]


def _write_manifest(db: Path, owners: list[BenchOwner], **facts: object) -> None:
    data = {**facts, "owners": [asdict(o) for o in owners]}
    tmp = _manifest_path(db).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(_manifest_path(db))


def ensure_small(*, log: bool = True) -> Dataset:
    """The small database (bench owners only), built unless cached."""
    DB_DIR.mkdir(parents=True, exist_ok=True)
    path = DB_DIR / f"{_cache_name('small', BENCH_OWNERS)}.db"
    owners = _read_manifest(path)
    if owners is not None:
        return Dataset("small", path, owners, BENCH_OWNERS * KEYS_PER_OWNER, BENCH_OWNERS, None)
    started = time.perf_counter()
    tmp = path.with_suffix(".db.tmp")
    _migrated(tmp)
    # Creation times just before the load, as if the keys were created through the API
    # (their ids, from new_id, carry the load time).
    clock = _Clock(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    conn = _bulk_connection(tmp)
    bench: list[BenchOwner] = []
    conn.execute("BEGIN")
    for names in _names("bench", 0, BENCH_OWNERS, 4):
        batch = _owner_batch(names, clock, keep=True)
        _insert(conn, batch)
        bench.extend(batch.bench)
    conn.execute("COMMIT")
    _finish(conn)
    bench.sort(key=lambda o: o.name)
    asyncio.run(_self_check(tmp, bench, expected_keys=BENCH_OWNERS * KEYS_PER_OWNER))
    tmp.replace(path)
    _write_manifest(path, bench, kind="small", owners_total=BENCH_OWNERS)
    seconds = time.perf_counter() - started
    if log:
        print(f"bench: built the small database in {seconds:.1f} s: {path}", file=sys.stderr)
    return Dataset("small", path, bench, BENCH_OWNERS * KEYS_PER_OWNER, BENCH_OWNERS, seconds)


def ensure_large(*, log: bool = True) -> Dataset:
    """The large database: the small one plus filler owners, built unless cached."""
    path = DB_DIR / f"{_cache_name('large', LARGE_OWNERS)}.db"
    total_keys = LARGE_OWNERS * KEYS_PER_OWNER
    owners = _read_manifest(path)
    if owners is not None:
        return Dataset("large", path, owners, total_keys, LARGE_OWNERS, None)
    small = ensure_small(log=log)
    started = time.perf_counter()
    tmp = path.with_suffix(".db.tmp")
    for stale in _with_sidecars(tmp):
        stale.unlink(missing_ok=True)
    shutil.copyfile(small.path, tmp)
    clock = _Clock(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    conn = _bulk_connection(tmp)
    filler = LARGE_OWNERS - BENCH_OWNERS
    done = 0
    for names in _names("owner", 0, filler, 6):
        conn.execute("BEGIN")
        _insert(conn, _owner_batch(names, clock, keep=False))
        conn.execute("COMMIT")
        done += len(names)
        if log and done % 20000 < BATCH_OWNERS:
            print(
                f"bench: large database: {done + BENCH_OWNERS:,} of {LARGE_OWNERS:,} owners "
                f"({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
    _finish(conn)
    asyncio.run(_self_check(tmp, small.owners, expected_keys=total_keys))
    tmp.replace(path)
    _write_manifest(path, small.owners, kind="large", owners_total=LARGE_OWNERS)
    seconds = time.perf_counter() - started
    if log:
        size = path.stat().st_size / 2**20
        print(
            f"bench: built the large database in {seconds:.0f} s ({size:,.0f} MiB): {path}",
            file=sys.stderr,
        )
    return Dataset("large", path, small.owners, total_keys, LARGE_OWNERS, seconds)


async def _self_check(path: Path, bench: list[BenchOwner], *, expected_keys: int) -> None:
    """Read the loaded data back through gpucloud's own HTTP API, in process.

    Raises AssertionError when a count, the default invariant, an authentication or a
    key's canonical form or fingerprints differ from what the service would produce.
    Only the public contract is used (create_app, the SPEC's endpoints, the key parser),
    so the check survives changes inside gpucloud.
    """
    import httpx

    from gpucloud.app import create_app
    from gpucloud.config import Settings
    from gpucloud.pubkey import parse_public_key

    raw = sqlite3.connect(path)
    try:
        keys, defaults, owners = raw.execute(
            "SELECT count(*), sum(is_default), count(DISTINCT owner_id) FROM ssh_keys"
        ).fetchone()
    finally:
        raw.close()
    assert keys == expected_keys, f"{keys} SSH keys loaded, expected {expected_keys}"
    assert defaults == owners, f"{defaults} default keys for {owners} owners"

    app = create_app(Settings(database_url=f"sqlite:///{path}", rate_limit_enabled=False))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):
        for owner in (bench[0], bench[-1]):
            answer = await client.get("/gpu-cloud/ssh-keys", headers={"x-api-key": owner.secret})
            assert answer.status_code == 200, f"GET as {owner.name}: {answer.status_code}"
            listed = answer.json()
            assert [k["_id"] for k in listed] == owner.key_ids, "keys not listed oldest first"
            assert sum(k["isDefault"] for k in listed) == 1, "not exactly one default key"
            for key in listed:
                parsed = parse_public_key(key["publicKey"])
                assert parsed.openssh == key["publicKey"], "public key not in canonical form"
                assert parsed.fingerprint_sha256 == key["fingerprint"]
                assert parsed.fingerprint_md5 == key["fingerprintMd5"]
                assert (parsed.key_type, parsed.bits) == (key["keyType"], key["keyBits"])


def fresh_copy(dataset: Dataset, target: Path) -> Path:
    """A private copy of a cached database for one server, so that runs start equal."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in _with_sidecars(target):
        stale.unlink(missing_ok=True)
    shutil.copyfile(dataset.path, target)
    return target


def remove_copy(target: Path) -> None:
    for path in _with_sidecars(target):
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- POST pool


def ensure_post_keys(count: int, *, log: bool = True) -> list[str]:
    """At least `count` distinct, real Ed25519 public-key lines (grown and cached on demand)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    CACHE.mkdir(parents=True, exist_ok=True)
    lines = POST_KEYS.read_text().splitlines() if POST_KEYS.exists() else []
    missing = count - len(lines)
    if missing <= 0:
        return lines
    started = time.perf_counter()
    if log:
        print(f"bench: generating {missing:,} Ed25519 keys for the POST rounds", file=sys.stderr)
    new = []
    for index in range(len(lines), count):
        public = ed25519.Ed25519PrivateKey.generate().public_key()
        line = public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ).decode("ascii")
        new.append(f"{line} bench{index}@loadgen")
    with POST_KEYS.open("a") as out:
        out.write("".join(f"{line}\n" for line in new))
    if log:
        print(f"bench: ... in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return lines + new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--large", action="store_true", help="also build the 1,000,000-key DB")
    parser.add_argument("--post-keys", type=int, default=0, help="grow the POST pool to N keys")
    args = parser.parse_args()
    small = ensure_small()
    print(small.path)
    if args.large:
        print(ensure_large().path)
    if args.post_keys:
        print(f"{len(ensure_post_keys(args.post_keys)):,} POST keys in {POST_KEYS}")


if __name__ == "__main__":
    main()
