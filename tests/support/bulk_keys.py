"""Many real Ed25519 public keys, fast, for load and concurrency tests.

The fingerprint and format tests use keys made by ssh-keygen (tests/support/keygen.py);
load tests need hundreds of distinct keys, which `cryptography` makes in microseconds.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


def ed25519_public_line(comment: str = "") -> str:
    """A new OpenSSH `ssh-ed25519 AAAA… comment` line."""
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    text = line.decode()
    return f"{text} {comment}" if comment else text
