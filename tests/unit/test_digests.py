"""gpucloud.digests: the same SHA-256 as hashlib, without OpenSSL on CPython."""

from __future__ import annotations

import hashlib
import os
import platform

import pytest

from gpucloud import digests
from gpucloud.api_keys import secrets


@pytest.mark.parametrize("size", [0, 1, 47, 55, 56, 63, 64, 65, 300, 4096])
def test_digest_is_hashlibs(size: int) -> None:
    data = os.urandom(size)
    assert digests.sha256(data).digest() == hashlib.sha256(data).digest()


def test_stored_api_key_digest_is_unchanged() -> None:
    # What is stored (api_keys.secret_digest) must not change with the implementation,
    # or every existing key would stop working.
    secret = "gck_" + "A" * 43
    assert secrets.digest(secret).hex() == (
        "c179e29a500d264b5b3982b396048498c140c982c175858d31280d3a144b6d33"
    )


@pytest.mark.skipif(platform.python_implementation() != "CPython", reason="CPython's modules")
def test_cpython_uses_its_own_implementation() -> None:
    assert digests.sha256 is not hashlib.sha256
