"""Retries after no answer at all: a refused connection, a kept-alive one the server closed.

The servers here are real sockets on real ports: one that starts listening late, and
one that drops a request on a connection it had kept alive (as a server whose keep-alive
timeout ends just as the request goes out does). A call safe to repeat is sent again after
the same backoff as a 503's; a POST without an Idempotency-Key is not.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO

import pytest

from gpucloud.client import AsyncClient, Client, TransportError
from gpucloud.client._client import PREFIX, Endpoint, _Call, _decode_key
from gpucloud.client._retry import RetryPolicy
from tests.client.conftest import API_KEY, KEY_DTO
from tests.support.bulk_keys import ed25519_public_line


def free_port() -> int:
    """A port nothing listens on now (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _KeysHandler(BaseHTTPRequestHandler):
    """Answers every GET with an empty list of keys."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        payload = b"[]"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def late_server() -> Iterator[tuple[str, threading.Event]]:
    """A URL whose port refuses connections for 0.3 s, then is served; and 'has started'."""
    port = free_port()
    started = threading.Event()
    servers: list[ThreadingHTTPServer] = []

    def start_late() -> None:
        time.sleep(0.3)
        server = ThreadingHTTPServer(("127.0.0.1", port), _KeysHandler)
        servers.append(server)
        started.set()
        server.serve_forever()

    thread = threading.Thread(target=start_late, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", started
    started.wait(5)
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_refused_connection_is_retried_until_the_server_is_up(
    clean_env: object, late_server: tuple[str, threading.Event]
) -> None:
    """If the port refuses the first connection and the server starts later, then a list succeeds."""
    url, started = late_server
    with Client(api_key=API_KEY, base_url=url, max_retries=5) as client:
        assert not started.is_set()
        assert client.list_ssh_keys() == []
    assert started.is_set()


async def test_the_async_client_retries_a_refused_connection_too(
    clean_env: object, late_server: tuple[str, threading.Event]
) -> None:
    """If the async client's first connection is refused, then it retries and gets the answer."""
    url, started = late_server
    async with AsyncClient(api_key=API_KEY, base_url=url, max_retries=5) as client:
        assert not started.is_set()
        assert await client.list_ssh_keys() == []


def test_retries_after_refused_connections_are_bounded(clean_env: object) -> None:
    """If nothing ever listens, then after max_retries the TransportError is raised."""
    with (
        Client(api_key=API_KEY, base_url=f"http://127.0.0.1:{free_port()}", max_retries=2) as c,
        pytest.raises(TransportError, match="Could not connect"),
    ):
        c.list_ssh_keys()


@dataclass
class DroppingServer:
    """Answers requests, but drops the second one sent on the first connection unanswered."""

    url: str = ""
    requests: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    connections: int = 0


def _read_request(reader: BinaryIO) -> tuple[str, dict[str, str]] | None:
    """The method and headers of the next request on the connection (its body read and
    dropped); None when the client closed it."""
    line = b""
    head: list[bytes] = []
    while True:
        chunk = reader.read(1)
        if not chunk:
            return None
        line += chunk
        if line.endswith(b"\r\n"):
            if line == b"\r\n":
                break
            head.append(line.strip())
            line = b""
    request_line, *header_lines = (part.decode("latin-1") for part in head)
    headers = {}
    for header in header_lines:
        name, _, value = header.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while length:
        length -= len(reader.read(length))
    return request_line.split(" ")[0], headers


def _answer(connection: socket.socket, method: str) -> None:
    status, body = ("201 Created", KEY_DTO) if method == "POST" else ("200 OK", [])
    payload = json.dumps(body).encode()
    connection.sendall(
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n\r\n".encode()
        + payload
    )


@pytest.fixture
def dropping_server() -> Iterator[DroppingServer]:
    """A raw HTTP/1.1 server as DroppingServer describes, on a free port."""
    state = DroppingServer()
    listener = socket.create_server(("127.0.0.1", 0))
    state.url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def serve(connection: socket.socket, number: int) -> None:
        with connection, connection.makefile("rb") as stream:
            for index in range(100):
                request = _read_request(stream)
                if request is None:
                    return
                method, headers = request
                state.requests.append((number, method, headers))
                if number == 0 and index == 1:
                    return  # closed as the request arrived: no answer on a reused connection
                _answer(connection, method)

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            number, state.connections = state.connections, state.connections + 1
            threading.Thread(target=serve, args=(connection, number), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield state
    listener.close()


def test_a_get_dropped_on_a_reused_connection_is_sent_again(
    clean_env: object, dropping_server: DroppingServer
) -> None:
    """If the server closes a kept-alive connection without answering a list, then it is resent."""
    with Client(api_key=API_KEY, base_url=dropping_server.url) as client:
        assert client.list_ssh_keys() == []
        assert client.list_ssh_keys() == []
    assert [(number, method) for number, method, _ in dropping_server.requests] == [
        (0, "GET"),
        (0, "GET"),
        (1, "GET"),
    ]


def test_a_create_dropped_on_a_reused_connection_is_resent_with_its_idempotency_key(
    clean_env: object, dropping_server: DroppingServer
) -> None:
    """If a create gets no answer on a reused connection, then it is resent with the same key."""
    with Client(api_key=API_KEY, base_url=dropping_server.url) as client:
        client.list_ssh_keys()
        key = client.create_ssh_key(name="laptop", public_key=ed25519_public_line())
    assert key.name == "laptop"
    (_, _, _), (_, first_method, first), (_, second_method, second) = dropping_server.requests
    assert first_method == second_method == "POST"
    assert first["idempotency-key"] == second["idempotency-key"]


def test_a_post_without_an_idempotency_key_is_not_sent_twice(
    clean_env: object, dropping_server: DroppingServer
) -> None:
    """If a POST with no Idempotency-Key gets no answer, then it is not resent: TransportError."""
    plain_post = _Call(
        Endpoint("POST", PREFIX, "a plain create", idempotent=False),
        PREFIX,
        _decode_key,
        json={"name": "laptop", "publicKey": ed25519_public_line()},
    )
    assert not plain_post.safe_to_repeat
    with Client(api_key=API_KEY, base_url=dropping_server.url) as client:
        client.list_ssh_keys()
        with pytest.raises(TransportError):
            client._send(plain_post)
    assert [method for _, method, _ in dropping_server.requests] == ["GET", "POST"]


def test_the_backoff_after_no_answer_is_the_backoff_after_a_503() -> None:
    """If a call got no answer, then it waits as after a 503 without Retry-After, within the retries."""
    policy = RetryPolicy(max_retries=3, backoff=0.5, max_backoff=4.0)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0)]:
        delay = policy.delay_after_error(attempt=attempt, retryable=True)
        assert delay is not None and ceiling / 2 <= delay <= ceiling
    assert policy.delay_after_error(attempt=3, retryable=True) is None
    assert policy.delay_after_error(attempt=0, retryable=False) is None
