"""Request limits (issue #5, SPEC 3): body size, media type, JSON shape, slow and idle clients.

The in-process tests run on both databases. The socket-level ones (a Content-Length the
client never sends, a trickled body, idle connections) need a real server; the database
is not their point, so they share one server on SQLite, with a 1-second body timeout.
"""

from __future__ import annotations

import json
import select
import selectors
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.functional.helpers import (
    PREFIX,
    UNKNOWN_API_KEY,
    UNKNOWN_SECRET,
    assert_error,
    auth,
    list_keys,
)
from tests.support.api_keys import create_api_key
from tests.support.bulk_keys import ed25519_public_line
from tests.support.databases import SQLiteTemplate
from tests.support.server import ServerProcess

LIMIT = 64 * 1024
BODY_TIMEOUT_S = 1.0
# uvicorn's timeout_keep_alive, as `gpucloud serve` sets it.
KEEP_ALIVE_S = 5.0


def create_body(name: str = "laptop") -> dict[str, str]:
    return {"name": name, "publicKey": ed25519_public_line()}


def padded_body(size: int) -> bytes:
    """A valid JSON create body of exactly `size` bytes (an ignored property pads it)."""
    start = json.dumps({**create_body(), "padding": ""}).encode()
    padding = size - len(start)
    assert padding >= 0
    return json.dumps({**create_body(), "padding": "x" * padding}).encode()[:size]


# In process


@pytest.mark.parametrize(("size", "status"), [(LIMIT, 201), (LIMIT + 1, 413)])
async def test_the_body_limit_is_64_kib(
    client: httpx.AsyncClient, alice: str, size: int, status: int
) -> None:
    """If a create body is exactly 64 KiB it is read; one byte more is a 413 that says the
    limit."""
    body = padded_body(size)
    assert len(body) == size
    headers = {**auth(alice), "Content-Type": "application/json"}
    response = await client.post(PREFIX, headers=headers, content=body)
    if status == 201:
        assert response.status_code == 201, response.text
    else:
        assert "64 KiB" in assert_error(response, 413)["message"]


async def test_a_body_over_64_kib_without_content_length_is_413(
    client: httpx.AsyncClient, alice: str
) -> None:
    """If a body over 64 KiB comes chunked, with no Content-Length, then it is a 413 too and
    nothing is created."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "laptop", "publicKey": "'
        for _ in range(70):
            yield b"A" * 1024
        yield b'"}'

    headers = {**auth(alice), "Content-Type": "application/json"}
    response = await client.post(PREFIX, headers=headers, content=chunks())
    assert "content-length" not in response.request.headers
    assert_error(response, 413)
    assert await list_keys(client, alice) == []


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", None]
)
async def test_a_body_not_sent_as_json_is_415(
    client: httpx.AsyncClient, alice: str, content_type: str | None
) -> None:
    """If a JSON body is sent with another Content-Type, or none, then it is a 415 that names
    application/json."""
    headers = auth(alice) if content_type is None else {**auth(alice), "Content-Type": content_type}
    body = json.dumps(create_body()).encode()
    response = await client.post(PREFIX, headers=headers, content=body)
    assert "application/json" in assert_error(response, 415)["message"]


async def test_a_charset_parameter_is_still_json(client: httpx.AsyncClient, alice: str) -> None:
    """If the Content-Type is `application/json; charset=utf-8`, then the body is read."""
    headers = {**auth(alice), "Content-Type": "Application/JSON; charset=utf-8"}
    response = await client.post(PREFIX, headers=headers, content=json.dumps(create_body()))
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 60_000, id="60000-open-brackets"),
        pytest.param(b'{"name": ' + b"[" * 1000 + b"]" * 1000 + b"}", id="nested-1000-deep"),
        pytest.param(b"[" * 1000 + b"]" * 1000, id="nested-array-body"),
        pytest.param(b'{"name": "laptop", "publicKey": ' + b"9" * 60_000 + b"}", id="huge-number"),
        pytest.param(b'{"name": "laptop", "publicKey": 1e999999}', id="infinite-number"),
        pytest.param(b'{"name": "laptop", "publicKey": "ssh-ed25519 AAAA', id="cut-short"),
        pytest.param(b'{"name": "' + b"n" * 60_000 + b'", "publicKey": "x"}', id="huge-name"),
    ],
)
async def test_deep_or_huge_json_is_a_400_not_a_crash(
    client: httpx.AsyncClient, alice: str, body: bytes
) -> None:
    """If the JSON is nested 1000 or 60000 deep, holds a 60000-digit number or a 60000-character
    name, or is cut short, then it is a 400 in the error shape (never a 500) and nothing is
    created."""
    headers = {**auth(alice), "Content-Type": "application/json"}
    response = await client.post(PREFIX, headers=headers, content=body)
    assert_error(response, 400)
    assert await list_keys(client, alice) == []


# Over a real socket


@pytest.fixture(scope="module")
def raw_server(
    sqlite_template: SQLiteTemplate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, str]]:
    """A real server with a 1-second body timeout, and an API key on it."""
    directory = tmp_path_factory.mktemp("request-limits")
    database_url = sqlite_template.copy_to(directory)

    secret = create_api_key(database_url, "alice")
    env = {"GPUCLOUD_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S)}
    process = ServerProcess(database_url, Path(directory) / "server.log", env=env).start()
    yield process, secret
    process.stop()


def connect(server: ServerProcess, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether a readable socket was closed by the server: an orderly end, or a reset
    (a server that closes with the client's bytes still unread sends a reset)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def post_head(secret: str, content_length: int) -> bytes:
    return (
        f"POST {PREFIX} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {secret}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n"
    ).encode()


def read_response(sock: socket.socket) -> httpx.Response:
    """One HTTP/1.1 response with a Content-Length, read off the socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection before answering: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines]
    length = int(dict((k.lower(), v) for k, v in headers)["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection in the middle of its answer"
        body += chunk
    request = httpx.Request("POST", f"http://127.0.0.1{PREFIX}")
    return httpx.Response(
        int(status_line.split()[1]), headers=headers, content=body, request=request
    )


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True if the server closes the connection within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_an_oversized_content_length_is_refused_before_the_body_is_sent(
    raw_server: tuple[ServerProcess, str],
) -> None:
    """If a client announces a 10 MB body and sends none of it, then it is answered 413 in the
    error shape at once, without the server waiting for the body."""
    server, secret = raw_server
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(post_head(secret, 10_000_000))
        response = read_response(sock)
        elapsed = time.monotonic() - started
    assert "64 KiB" in assert_error(response, 413)["message"]
    assert elapsed < BODY_TIMEOUT_S, f"the 413 took {elapsed:.2f} s: it waited for the body"


def test_a_bad_key_with_an_oversized_body_gets_the_key_error_first(
    raw_server: tuple[ServerProcess, str],
) -> None:
    """If a request with an unknown key announces a 10 MB body, then it is answered with the
    key's 404 at once, without the body."""
    server, _ = raw_server
    with connect(server) as sock:
        sock.sendall(post_head(UNKNOWN_SECRET, 10_000_000))
        response = read_response(sock)
    assert_error(response, 404, UNKNOWN_API_KEY)


@pytest.mark.parametrize("trickle", [True, False], ids=["trickled-body", "no-body"])
def test_a_body_slower_than_the_body_timeout_gets_408(
    raw_server: tuple[ServerProcess, str], trickle: bool
) -> None:
    """If a client sends its headers and then its body a byte every 0.25 s, or nothing, then
    after the 1-second body timeout it gets a 408 in the error shape."""
    server, secret = raw_server
    body = json.dumps(create_body()).encode()
    with connect(server) as sock:
        sock.sendall(post_head(secret, len(body)))
        started = time.monotonic()
        for byte in body[:-1] if trickle else b"":
            sock.sendall(bytes([byte]))
            if select.select([sock], [], [], 0.25)[0]:  # the server answered
                break
        sock.settimeout(BODY_TIMEOUT_S + 5)
        response = read_response(sock)
        elapsed = time.monotonic() - started
    assert "did not arrive" in assert_error(response, 408)["message"]
    assert BODY_TIMEOUT_S * 0.9 <= elapsed <= BODY_TIMEOUT_S + 2, elapsed


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(
    raw_server: tuple[ServerProcess, str],
) -> None:
    """If a client keeps a connection open and idle after a request, then the server closes it
    after its 5-second keep-alive timeout."""
    server, _ = raw_server
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(sock).status_code == 200
        started = time.monotonic()
        closed = closed_by_server(sock, KEEP_ALIVE_S + 3)
        elapsed = time.monotonic() - started
    assert closed, f"the idle connection was still open after {elapsed:.1f} s"
    assert elapsed >= KEEP_ALIVE_S - 1, f"closed after {elapsed:.1f} s, before the timeout"


def test_connections_that_never_complete_a_request_are_closed(
    raw_server: tuple[ServerProcess, str],
) -> None:
    """If one client opens a connection and sends nothing, and another sends a header line
    every 0.5 s and never ends its headers, then the server closes both within the 5-second
    keep-alive timeout plus 3 s."""
    server, _ = raw_server
    silent = connect(server)
    trickling = connect(server)
    deadline = time.monotonic() + KEEP_ALIVE_S + 3
    open_ = {"silent": silent, "trickling headers": trickling}
    try:
        trickling.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        with selectors.DefaultSelector() as selector:
            for name, sock in open_.items():
                selector.register(sock, selectors.EVENT_READ, name)
            sent = 0
            while open_ and time.monotonic() < deadline:
                for key, _ in selector.select(timeout=0.5):
                    if _closed_by_peer(key.fileobj):  # type: ignore[arg-type]
                        selector.unregister(key.fileobj)
                        open_.pop(key.data)
                if "trickling headers" in open_:
                    try:
                        trickling.sendall(f"X-Slow-{sent}: 1\r\n".encode())
                        sent += 1
                    except OSError:
                        open_.pop("trickling headers")
    finally:
        for sock in (silent, trickling):
            sock.close()
    assert not open_, f"still open after {KEEP_ALIVE_S + 3:g} s: {sorted(open_)}"


def test_a_client_that_hangs_up_mid_body_is_not_a_server_error(
    raw_server: tuple[ServerProcess, str],
) -> None:
    """If a client sends half its body and closes the connection, then the server logs no
    unhandled error and no 500, creates nothing, and goes on answering."""
    server, secret = raw_server
    body = json.dumps(create_body()).encode()
    with connect(server) as sock:
        sock.sendall(post_head(secret, len(body)) + body[: len(body) // 2])
        time.sleep(0.2)
    time.sleep(0.5)
    listed = httpx.get(f"{server.url}{PREFIX}", headers={"x-api-key": secret})
    assert listed.status_code == 200
    assert listed.json() == []
    log = server.logs()
    assert "unhandled error" not in log
    assert '"status":500' not in log and '"status": 500' not in log
