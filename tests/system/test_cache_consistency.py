"""No stale answer, across processes: cached bodies always equal a fresh one.

Two server processes keep the list and authorized_keys per owner and version; a third,
whose cache is off (GPUCLOUD_RESPONSE_CACHE_BYTES=0), builds every answer afresh. Random
sequences of writes go to either of the two; after every step, each of them is asked for
both answers with the tag it last gave, and each answer — a 200's body, or the body a
304 stands for — must be exactly the fresh one. A 304 must come exactly when the fresh
body is the one the tag was given for.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.api_keys import create_api_key
from tests.support.bulk_keys import ed25519_public_line
from tests.support.server import ServerProcess

PREFIX = "/gpu-cloud/ssh-keys"
ANSWERS = (PREFIX, f"{PREFIX}/authorized_keys")
KEY_POOL = [ed25519_public_line(f"pool{i}@host") for i in range(6)]
NAMES = ("laptop", "desktop", "ci", "Laptop")
_owners = itertools.count()

Step = tuple[str, int, int, int]  # (operation, server, key index, name index)
steps = st.lists(
    st.tuples(
        st.sampled_from(["create", "create", "rename", "makedefault", "delete"]),
        st.integers(0, 1),
        st.integers(0, len(KEY_POOL) - 1),
        st.integers(0, len(NAMES) - 1),
    ),
    min_size=1,
    max_size=10,
)


@pytest.fixture
def servers(database_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ...]]:
    """Two caching servers and one that builds every answer afresh, on one database."""
    started: list[ServerProcess] = []
    try:
        for name, env in (("a", {}), ("b", {}), ("fresh", {"GPUCLOUD_RESPONSE_CACHE_BYTES": "0"})):
            started.append(ServerProcess(database_url, tmp_path / f"{name}.log", env=env).start())
        yield tuple(started)
    finally:
        for server in started:
            server.stop()


def _apply(
    http: httpx.Client,
    server: ServerProcess,
    headers: dict[str, str],
    step: Step,
    keys: list[dict[str, Any]],
) -> None:
    operation, _, key_index, name_index = step
    if operation == "create":
        body = {"name": f"{NAMES[name_index]} {key_index}", "publicKey": KEY_POOL[key_index]}
        answer = http.post(server.url + PREFIX, headers=headers, json=body)
        assert answer.status_code in (201, 409), answer.text
        return
    if not keys:
        return
    key_id = keys[key_index % len(keys)]["_id"]
    if operation == "rename":
        answer = http.patch(
            f"{server.url}{PREFIX}/{key_id}", headers=headers, json={"name": NAMES[name_index]}
        )
        assert answer.status_code in (200, 409), answer.text
    elif operation == "makedefault":
        answer = http.patch(f"{server.url}{PREFIX}/{key_id}/makedefault", headers=headers)
        assert answer.status_code == 204, answer.text
    else:
        answer = http.delete(f"{server.url}{PREFIX}/{key_id}", headers=headers)
        assert answer.status_code == 204, answer.text


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=steps)
def test_cached_answers_always_equal_fresh_ones_across_two_processes(
    servers: tuple[ServerProcess, ServerProcess, ServerProcess],
    database_url: str,
    sequence: list[Step],
) -> None:
    """If writes go to either of two server processes in any order, then every answer of
    either one, 200 or 304, is exactly what a server without a cache answers at that moment,
    and a 304 comes exactly when that answer did not change."""
    caching, fresh = servers[:2], servers[2]
    secret = create_api_key(database_url, owner=f"cache-owner-{next(_owners)}")
    headers = {"x-api-key": secret}
    seen: dict[tuple[int, str], tuple[str, bytes]] = {}
    with httpx.Client(timeout=10) as http:
        for step in [("read", 0, 0, 0), *sequence]:
            if step[0] != "read":
                keys = http.get(fresh.url + PREFIX, headers=headers).json()
                _apply(http, caching[step[1]], headers, step, keys)
            for index, server in enumerate(caching):
                for path in ANSWERS:
                    truth = http.get(fresh.url + path, headers=headers)
                    assert truth.status_code == 200
                    before = seen.get((index, path))
                    asked = dict(headers)
                    if before is not None:
                        asked["If-None-Match"] = before[0]
                    answer = http.get(server.url + path, headers=asked)
                    where = f"server {'ab'[index]} {path} after {step}"
                    if before is not None and before[1] == truth.content:
                        assert answer.status_code == 304, where
                    else:
                        assert answer.status_code == 200, where
                        assert answer.content == truth.content, where
                    assert answer.headers["etag"] == truth.headers["etag"], where
                    seen[(index, path)] = (answer.headers["etag"], truth.content)
