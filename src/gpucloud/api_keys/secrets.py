"""The API-key format: the one module that knows what a `gck_` secret looks like.

A secret is `gck_` + 43 base64url characters (32 random bytes, 256 bits). Only its
SHA-256 digest is stored: the secret has full entropy, so a fast hash is enough (a slow
password hash would add nothing but latency to every request).
"""

from __future__ import annotations

import re
import secrets

from gpucloud.digests import sha256

PREFIX = "gck_"
SECRET_PATTERN = re.compile(r"gck_[A-Za-z0-9_-]{43}")
# How much of a secret `api-keys list` shows, so an operator can tell keys apart.
DISPLAY_CHARS = len(PREFIX) + 6


def generate() -> str:
    """A new secret."""
    return PREFIX + secrets.token_urlsafe(32)


def is_well_formed(value: str) -> bool:
    """True when `value` has the exact form of a secret."""
    return SECRET_PATTERN.fullmatch(value) is not None


def digest(secret: str) -> bytes:
    """The stored form of a secret: its SHA-256 digest."""
    return sha256(secret.encode("ascii")).digest()


def display_prefix(secret: str) -> str:
    """The non-secret beginning of a secret, e.g. `gck_Ab12Cd`."""
    return secret[:DISPLAY_CHARS]
