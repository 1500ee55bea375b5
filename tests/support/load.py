"""A bounded, mixed create / list / makedefault / delete load from several threads.

Used by the concurrency and multi-process tests: it records every answer, so the test
can check afterwards that nothing acknowledged was lost and no answer was a 5xx.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.support.bulk_keys import ed25519_public_line

PATH = "/gpu-cloud/ssh-keys"


@dataclass
class LoadResult:
    """What the load did and saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    # Per owner's API key: ids that got a 201, and ids whose delete got a 204.
    created: dict[str, set[str]] = field(default_factory=dict)
    deleted: dict[str, set[str]] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def surviving(self, api_key: str) -> set[str]:
        return self.created.get(api_key, set()) - self.deleted.get(api_key, set())


def run_mixed_load(
    base_urls: list[str],
    api_keys: list[str],
    *,
    threads: int,
    requests_per_thread: int,
    seed: int = 1,
) -> LoadResult:
    """Send the load round-robin to `base_urls`; each thread picks owners at random."""
    result = LoadResult()
    for key in api_keys:
        result.created[key] = set()
        result.deleted[key] = set()

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        clients = [httpx.Client(base_url=url, timeout=30) for url in base_urls]
        try:
            for n in range(requests_per_thread):
                http = clients[(index + n) % len(clients)]
                key = rng.choice(api_keys)
                _one_request(http, key, rng, result, f"t{index}-{n}")
        finally:
            for c in clients:
                c.close()

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return result


def _one_request(
    http: httpx.Client, key: str, rng: random.Random, result: LoadResult, tag: str
) -> None:
    headers = {"x-api-key": key}
    with result.lock:
        known = sorted(result.surviving(key))
    action = rng.choices(["create", "list", "makedefault", "delete"], weights=[4, 2, 3, 2])[0]
    if action != "create" and not known:
        action = "create"
    if action == "create":
        response = http.post(
            PATH, headers=headers, json={"name": tag, "publicKey": ed25519_public_line(tag)}
        )
    elif action == "list":
        response = http.get(PATH, headers=headers)
    elif action == "makedefault":
        response = http.patch(f"{PATH}/{rng.choice(known)}/makedefault", headers=headers)
    else:
        target = rng.choice(known)
        response = http.delete(f"{PATH}/{target}", headers=headers)
    with result.lock:
        result.statuses[response.status_code] += 1
        if response.status_code >= 500:
            result.server_errors.append(f"{action}: {response.status_code} {response.text}")
        if action == "create" and response.status_code == 201:
            result.created[key].add(response.json()["_id"])
        if action == "delete" and response.status_code == 204:
            result.deleted[key].add(target)
