"""uvicorn's HTTP protocol, with a deadline for a request's headers.

uvicorn closes an idle keep-alive connection (`timeout_keep_alive`) and our body reader
has its own deadline (`GPUCLOUD_BODY_TIMEOUT_S`), but nothing bounds the time a client
takes to send its request line and headers: a client that connects and says nothing,
or trickles a header every few seconds (slowloris), would hold a connection forever.
This protocol closes the connection when a request's headers are not complete within
`GPUCLOUD_HEADER_TIMEOUT_S` of the connection opening or the request beginning.

uvicorn builds one protocol per connection from the class it is given; gpucloud.server
gives it `functools.partial(HeaderTimeoutProtocol, header_timeout_s=…)` from the
settings it read.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that drops connections whose headers do not arrive in time."""

    def __init__(self, *args: Any, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._header_deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self._header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _expire(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
