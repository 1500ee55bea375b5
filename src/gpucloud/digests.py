"""SHA-256 of the few dozen bytes hashed on every request: CPython's own code.

`hashlib.sha256` goes through OpenSSL 3, which looks the algorithm up and sets up a
context on every call. For the API key presented with every request, that set-up costs
more than the hashing itself. CPython ships its own SHA-256, the module hashlib falls
back on when OpenSSL lacks the algorithm: the same digest, without the set-up
(docs/decisions.md D62). Larger inputs (a body's ETag) and the key parser, which imports
nothing of gpucloud outside its package, use hashlib.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from typing import Protocol


class Hash(Protocol):
    def digest(self) -> bytes: ...


def _builtin_sha256() -> Callable[[bytes], Hash]:
    """CPython's own constructor (module `_sha256` on 3.11, `_sha2` on 3.12 and later),
    or hashlib's on a Python without one."""
    for module in ("_sha256", "_sha2"):
        try:
            found: Callable[[bytes], Hash] = importlib.import_module(module).sha256
        except (ImportError, AttributeError):
            continue
        return found
    return hashlib.sha256


sha256 = _builtin_sha256()
