"""A strict reader of the SSH wire format (RFC 4251 section 5) for key blobs.

Strict on purpose: one public key must have exactly one encoding, otherwise the same
key could be registered twice under two fingerprints. So besides running out of bytes,
the reader refuses multiple-precision integers that are negative or carry needless
leading zero bytes.
"""

from __future__ import annotations


class WireError(Exception):
    """The blob does not follow the SSH wire format."""


class TruncatedError(WireError):
    """A field claims more bytes than the blob has left."""


class MpintError(WireError):
    """An mpint is negative or not in its shortest form."""


class WireReader:
    """Reads the fields of one blob in order; `remaining` tells what is left."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def remaining(self) -> int:
        """The number of bytes not yet read."""
        return len(self._data) - self._pos

    def read_uint32(self) -> int:
        """The next big-endian 32-bit integer; raises TruncatedError past the end."""
        return int.from_bytes(self._take(4), "big")

    def read_string(self) -> bytes:
        """The next length-prefixed string; raises TruncatedError if it is cut short."""
        return self._take(self.read_uint32())

    def read_mpint(self) -> int:
        """The next mpint as a non-negative int.

        Raises TruncatedError if it is cut short, and MpintError if it is negative or
        has a leading zero byte that its sign does not need.
        """
        raw = self.read_string()
        if not raw:
            return 0
        if raw[0] & 0x80:
            raise MpintError("negative mpint")
        if raw[0] == 0 and (len(raw) == 1 or not raw[1] & 0x80):
            raise MpintError("mpint with a needless leading zero byte")
        return int.from_bytes(raw, "big")

    def _take(self, count: int) -> bytes:
        if count > self.remaining:
            raise TruncatedError(f"{count} bytes wanted, {self.remaining} left")
        chunk = self._data[self._pos : self._pos + count]
        self._pos += count
        return chunk
