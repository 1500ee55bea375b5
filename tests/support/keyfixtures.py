"""Pytest plugin: a session-wide corpus of real SSH keys (see `keygen.build_corpus`).

Made once per test session, because ssh-keygen takes seconds for RSA 4096. Enable it
from the top conftest with `pytest_plugins = ["tests.support.keyfixtures"]`.
"""

from __future__ import annotations

import pytest

from tests.support.keygen import KeyCorpus, build_corpus


@pytest.fixture(scope="session")
def key_corpus(tmp_path_factory: pytest.TempPathFactory) -> KeyCorpus:
    """One key of every kind, private keys of every format, and a certificate."""
    return build_corpus(tmp_path_factory.mktemp("key-corpus"))
