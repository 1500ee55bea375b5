"""Fixtures of the functional tests: real SSH keys, made once per session.

`key_corpus` (one key of every kind, private keys, a certificate) comes from the
`tests.support.keyfixtures` plugin that the top conftest enables.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpucloud.config import Settings
from tests.support import keygen

ED25519_POOL_SIZE = 8


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The app's settings, without rate limits.

    These tests send dozens of requests a second, many with bad API keys on purpose;
    test_rate_limit.py turns the limits back on to test them.
    """
    return Settings(database_url=database_url, log_format="text", rate_limit_enabled=False)


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide scratch directory for ssh-keygen's files."""
    return tmp_path_factory.mktemp("functional-keys")


@pytest.fixture(scope="session")
def ed25519_keys(key_dir: Path) -> list[keygen.GeneratedKey]:
    """Distinct Ed25519 keys, commented `user0@host` … `user7@host`; reused by every test."""
    return [
        keygen.generate(key_dir, "ed25519", comment=f"user{i}@host")
        for i in range(ED25519_POOL_SIZE)
    ]
