"""One request header read the way Starlette reads it, from the dict built once a request."""

from __future__ import annotations

import itertools

from starlette.requests import Request

from gpucloud.http.context import header, headers_of


def test_a_header_reads_as_starlette_reads_it_repeated_or_missing() -> None:
    """If a request carries headers repeated, missing or in any order, then header()
    answers what Starlette's request.headers.get answers: the first value, or None."""
    sent = [
        (b"x-api-key", b"first"),
        (b"host", b"example"),
        (b"x-api-key", b"second"),
        (b"if-none-match", b'"tag"'),
        (b"x-request-id", b"caf\xe9"),
    ]
    for order in itertools.permutations(sent):
        request = Request({"type": "http", "headers": list(order)})
        for name in (b"x-api-key", b"host", b"if-none-match", b"x-request-id", b"absent"):
            assert header(request, name) == request.headers.get(name.decode()), (order, name)


def test_the_headers_are_read_into_a_dict_once_per_request() -> None:
    """If a request's headers are read several times, then the dict is built once and
    kept with the request's state, not with the app (another request gets its own)."""
    scope = {"type": "http", "headers": [(b"x-api-key", b"k")]}
    assert headers_of(scope) is headers_of(scope)
    other = {"type": "http", "headers": [(b"x-api-key", b"other")]}
    assert headers_of(other)[b"x-api-key"] == b"other"
