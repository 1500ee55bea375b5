"""Fixtures for the instance side: the command's files, real and fake APIs, a real sshd.

The command's own tests run against SQLite only, as the CLI's do: the database is not
their point, and each test isolates itself by its owner. The login tests through sshd
run on both backends (tests/instance/test_logins.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.instance.command import Node
from tests.support.api_keys import create_api_key
from tests.support.databases import SQLiteTemplate
from tests.support.fake_api import FakeAPI, fake_api
from tests.support.keygen import GeneratedKey, generate
from tests.support.server import ServerProcess

_owners = itertools.count()


@dataclass
class API:
    """A real `gpucloud serve` and its database."""

    process: ServerProcess
    database_url: str

    @property
    def url(self) -> str:
        return self.process.url

    def new_owner(self) -> str:
        """An API key of a new owner."""
        return create_api_key(self.database_url, f"instance-owner-{next(_owners)}")


def _start(sqlite_template: SQLiteTemplate, directory: Path) -> API:
    database_url = sqlite_template.copy_to(directory)
    # Unknown keys (the 404 tests) must not lock the other tests out of the server.
    env = {"GPUCLOUD_AUTH_FAILURES_PER_MINUTE": "100000"}
    return API(ServerProcess(database_url, directory / "server.log", env=env).start(), database_url)


@pytest.fixture(scope="session")
def shared_api(
    sqlite_template: SQLiteTemplate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[API]:
    """One real server for the command's tests that keep it running."""
    api = _start(sqlite_template, tmp_path_factory.mktemp("instance-server"))
    yield api
    api.process.stop()


@pytest.fixture
def own_api(sqlite_template: SQLiteTemplate, tmp_path: Path) -> Iterator[API]:
    """A real server of this test alone, which it may stop and start again."""
    directory = tmp_path / "own-server"
    directory.mkdir()
    api = _start(sqlite_template, directory)
    yield api
    api.process.stop()


@pytest.fixture
def node(tmp_path: Path) -> Node:
    """The command's configuration, credential files and cache, in a private directory."""
    root = tmp_path / "node"
    root.mkdir(mode=0o700)
    return Node(root)


@pytest.fixture
def fake() -> Iterator[FakeAPI]:
    """A fake API that answers an empty 200 until the test says otherwise."""
    with fake_api() as api:
        yield api


@pytest.fixture
def laptop(tmp_path: Path) -> GeneratedKey:
    """A key pair made by ssh-keygen."""
    return generate(tmp_path, "ed25519", "alice@laptop")


@pytest.fixture
def desktop(tmp_path: Path) -> GeneratedKey:
    """Another key pair made by ssh-keygen, of another type."""
    return generate(tmp_path, "ecdsa256", "alice@desktop")
