"""A tiny HTTP server on a free port, for what a real `gpucloud serve` cannot be made to do.

The instance-side command must survive servers that stall, trickle, lie about lengths or
send garbage, and (until the server sends them) ETags and 304s. Everything else is
tested against the real server. Each connection is read up to the end of its request
head, recorded, and answered by the test's `respond` function: bytes to send (then the
connection is closed), or one of the behaviours STALL and TRICKLE.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

STALL = "stall"  # accept, read the request, never answer
TRICKLE = "trickle"  # answer one byte every 0.2 s, forever


@dataclass(frozen=True)
class Request:
    """What the command sent: request line and headers (names lower-cased)."""

    method: str
    target: str
    headers: dict[str, str]


Respond = Callable[[Request], "bytes | str"]


def http_response(
    status: int = 200,
    body: bytes | str = b"",
    *,
    headers: dict[str, str] | None = None,
    content_type: str | None = "text/plain; charset=utf-8",
    length: bool = True,
) -> bytes:
    """A raw HTTP/1.1 response; `length=False` leaves Content-Length out (body until close)."""
    payload = body.encode() if isinstance(body, str) else body
    lines = [f"HTTP/1.1 {status} Whatever"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    if length:
        lines.append(f"Content-Length: {len(payload)}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@dataclass
class FakeAPI:
    """The server; `url` is its base URL, `requests` what it was sent."""

    respond: Respond = field(default=lambda _request: http_response(200, ""))
    requests: list[Request] = field(default_factory=list)
    tls: ssl.SSLContext | None = None  # set to serve HTTPS with this context

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            head = b""
            try:
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
            except OSError:
                return
            lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            method, target, _ = [*lines[0].split(" "), "", ""][:3]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            request = Request(method, target, headers)
            self.requests.append(request)
            answer = self.respond(request)
            try:
                if answer == STALL:
                    self._stopped.wait()
                elif answer == TRICKLE:
                    for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" * 1000:
                        if self._stopped.wait(0.2):
                            return
                        conn.sendall(bytes([byte]))
                else:
                    conn.sendall(answer if isinstance(answer, bytes) else answer.encode())
            except OSError:
                return

    def close(self) -> None:
        self._stopped.set()
        self._listener.close()
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(5)


@contextmanager
def fake_api(respond: Respond | None = None) -> Iterator[FakeAPI]:
    """A FakeAPI for the block; it answers `respond(request)` (an empty 200 by default)."""
    api = FakeAPI() if respond is None else FakeAPI(respond=respond)
    try:
        yield api
    finally:
        api.close()


def answer(raw: bytes) -> Respond:
    """A `respond` function that sends `raw` to every request."""
    return lambda _request: raw
