"""A TCP forwarder that a test can cut and restore: a database outage without stopping it.

The PostgreSQL server of the test machine is shared with other tests and engineers, so
a test must never stop it. Instead, the server under test reaches PostgreSQL through
this proxy; `cut()` drops every open connection and refuses new ones (the listening
socket is closed, so a connect gets "connection refused", as when the database host
is down), and `restore()` listens again on the same port.

    proxy = TCPProxy("127.0.0.1", 5432).start()
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/dbname"
    proxy.cut(); ...; proxy.restore(); ...; proxy.close()
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

_CHUNK = 65536
_ACCEPT_POLL_S = 0.1


class TCPProxy:
    """Forwards 127.0.0.1:`port` to `upstream_host`:`upstream_port`, one thread pair per
    connection, until cut."""

    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = 0
        # Figures for the tests' reports.
        self.connections_accepted = 0
        self.connections_dropped = 0
        self.cuts = 0
        self._lock = threading.Lock()
        self._open: set[tuple[socket.socket, socket.socket]] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> TCPProxy:
        """Listen (on a free port the first time, then on the same one); returns self."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(128)
        listener.settimeout(_ACCEPT_POLL_S)
        self.port = listener.getsockname()[1]
        self._stop = threading.Event()
        self._listener = listener
        self._acceptor = threading.Thread(
            target=self._accept_loop, args=(listener, self._stop), daemon=True
        )
        self._acceptor.start()
        return self

    def cut(self) -> None:
        """Refuse new connections and drop every open one, at once."""
        self._stop_listening()
        dropped = self._drop_all()
        with self._lock:
            self.cuts += 1
            self.connections_dropped += dropped

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        self.start()

    def close(self) -> None:
        """Stop listening and drop every connection, for good."""
        self._stop_listening()
        self._drop_all()

    def __enter__(self) -> TCPProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)

    def _drop_all(self) -> int:
        with self._lock:
            dropped = list(self._open)
            self._open.clear()
        for pair in dropped:
            for sock in pair:
                _close(sock)
        return len(dropped)

    def _stop_listening(self) -> None:
        listener, acceptor = self._listener, self._acceptor
        self._listener = self._acceptor = None
        self._stop.set()
        if acceptor is not None:
            acceptor.join()
        if listener is not None:
            listener.close()

    def _accept_loop(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                if stop.is_set():  # cut while this connection was being set up
                    _close(client)
                    _close(server)
                    return
                pair = (client, server)
                self._open.add(pair)
                self.connections_accepted += 1
            for source, target in (pair, (server, client)):
                threading.Thread(
                    target=self._pump, args=(pair, source, target), daemon=True
                ).start()

    def _pump(
        self,
        pair: tuple[socket.socket, socket.socket],
        source: socket.socket,
        target: socket.socket,
    ) -> None:
        try:
            while data := source.recv(_CHUNK):
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(pair)
            _close(source)
            _close(target)


def _close(sock: socket.socket) -> None:
    # shutdown() first: it wakes a thread blocked in recv() on this socket, which a
    # bare close() from another thread does not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
