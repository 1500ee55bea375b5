"""Answers kept per owner and version, sent with a strong ETag and answered 304.

An owner's version moves in the same transaction as every change to its keys (the
database's triggers, gpucloud.owners.models), and authentication reads it on every
request. A body built from the keys at version V is therefore exactly the body of any
later request that reads version V: when the versions match, the body is current, in
this process or any other, and nothing else needs reading. When they differ, the body
is built again and replaces the old one. A body that depends on the clock as well (a
key that expires) also carries the time until which it holds.

The ETag is a digest of the body, so it changes exactly when the body does: a change
to a key that the body does not show (a new version, the same bytes) keeps its tag,
and a client polling with If-None-Match keeps getting 304.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections import OrderedDict
from typing import NamedTuple

from starlette.requests import Request
from starlette.responses import Response

from gpucloud.http.context import header


class Entry(NamedTuple):
    """One owner's body of one kind, as of one version, with its response headers."""

    version: int
    body: bytes
    etag: str
    valid_until: float | None  # time.time() after which the body is stale, if ever
    headers: list[tuple[bytes, bytes]]  # of the 200 answer
    not_modified_headers: list[tuple[bytes, bytes]]  # of the 304 answer


class _Prepared(Response):
    """A response whose headers were encoded once, when its entry was made."""

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        self.raw_headers = headers


class BodyCache:
    """The bodies of owners' answers, least recently used dropped past `max_bytes`
    (0 keeps none: every answer is built afresh)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], Entry] = OrderedDict()
        self._bytes = 0

    def get(self, owner_id: str, kind: str, version: int) -> Entry | None:
        """The body of this kind at exactly this version, if it is kept and still holds."""
        key = (owner_id, kind)
        entry = self._entries.get(key)
        if entry is None or entry.version != version:
            return None
        if entry.valid_until is not None and time.time() >= entry.valid_until:
            return None
        self._entries.move_to_end(key)
        return entry

    def put(
        self,
        owner_id: str,
        kind: str,
        version: int,
        body: bytes,
        media_type: str,
        valid_until: float | None = None,
    ) -> Entry:
        """Keep a body built from the owner's keys at `version`; returns its entry."""
        entry = make_entry(version, body, media_type, valid_until)
        key = (owner_id, kind)
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)
        if self.max_bytes and len(body) <= self.max_bytes:  # 0: keep nothing
            self._entries[key] = entry
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped.body)
        return entry

    def __len__(self) -> int:
        return len(self._entries)


def make_entry(
    version: int, body: bytes, media_type: str, valid_until: float | None = None
) -> Entry:
    """An entry for a body, with its strong ETag; kept only when given to `put`."""
    etag = etag_of(body)
    headers = Response(body, media_type=media_type, headers={"ETag": etag}).raw_headers
    return Entry(version, body, etag, valid_until, headers, [(b"etag", etag.encode())])


def etag_of(body: bytes) -> str:
    """A strong entity tag: 128 bits of the body's SHA-256, quoted."""
    digest = hashlib.sha256(body).digest()[:16]
    return '"' + base64.urlsafe_b64encode(digest).decode().rstrip("=") + '"'


def answer(request: Request, entry: Entry) -> Response:
    """The entry as a response: 304 with no body when the request's If-None-Match
    names its tag, else 200 with the body; the ETag either way."""
    # Cache-Control stays the API's no-store: a client that keeps the body (an
    # instance, a script) revalidates it with If-None-Match; no shared cache keeps it.
    if _matches(header(request, b"if-none-match"), entry.etag):
        return _Prepared(304, b"", entry.not_modified_headers)
    return _Prepared(200, entry.body, entry.headers)


def _matches(if_none_match: str | None, etag: str) -> bool:
    # If-None-Match compares weakly (RFC 9110 13.1.2): W/"x" matches "x"; * matches any.
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False
