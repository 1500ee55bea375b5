"""Fixtures for the instance side: the command's files, real and fake APIs, a real sshd.

The command's own tests run against SQLite only, as the CLI's do: the database is not
their point, and each test isolates itself by its owner. The login tests through sshd
run on both backends (tests/instance/test_logins.py).
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gpucloud.cli.node import sshd_config_lines
from gpucloud.node import authorized_keys
from tests.instance.command import Node
from tests.support import sshd
from tests.support.api_keys import create_api_key
from tests.support.databases import SQLiteTemplate
from tests.support.fake_api import FakeAPI, fake_api
from tests.support.keygen import GeneratedKey, generate
from tests.support.server import ServerProcess
from tests.support.sshd import Sshd, login

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


# A real sshd, asking the command at every login.


@dataclass
class Machine:
    """The session's instance: its users, the command sshd runs, its files, its sshd."""

    command_user: str
    login_user: str
    command: Path
    node: Node
    sshd: Sshd


@dataclass
class Instance:
    """The machine, wired to this test's server for the owner alice: the node holds
    `api_key`, of the scope authorized-keys (SPEC 8); alice registers her keys with
    `owner_key`, of the scope ssh-keys."""

    machine: Machine
    server: ServerProcess
    database_url: str
    api_key: str
    owner_key: str
    outcomes: list[str] = field(default_factory=list)  # of the last login's lookups

    @property
    def node(self) -> Node:
        return self.machine.node

    def login(self, key: GeneratedKey) -> bool:
        """Whether `ssh -i KEY login_user@127.0.0.1 true` logs in; see `outcomes`."""
        assert key.private_path is not None
        before = len(self.machine.sshd.log())
        port = self.machine.sshd.port
        result = login(user=self.machine.login_user, key=key.private_path, port=port)
        # The command's stderr reaches sshd's (-e): one lookup line per run.
        new = self.machine.sshd.log()[before:]
        self.outcomes = re.findall(r"lookup user=\S+ .*?outcome=(\w+)", new)
        return result.ok


@pytest.fixture(scope="session")
def sshd_available() -> None:
    """Skip (or fail, with GPUCLOUD_TEST_REQUIRE_SSHD=1) where sshd logins cannot run."""
    reason = sshd.unavailable()
    if reason is not None:
        if sshd.REQUIRE:
            pytest.fail(f"GPUCLOUD_TEST_REQUIRE_SSHD=1 but {reason}")
        pytest.skip(f"{reason}; set GPUCLOUD_TEST_REQUIRE_SSHD=1 to make this an error")


def _wrapper_text(interpreter: str, source: Path) -> str:
    # What the console script does, with an interpreter the command user can run.
    return (
        f"#!{interpreter} -IS\n"
        "# gpucloud's tests: the package's gpucloud-authorized-keys, for sshd.\n"
        "import sys\n"
        f"sys.path.insert(0, {str(source)!r})\n"
        "from gpucloud.node.authorized_keys import main\n"
        "sys.exit(main())\n"
    )


def _interpreter_for(user: str, source: Path) -> str:
    """A Python that `user` can run and that finds the package's module."""
    probe = f"import sys; sys.path.insert(0, {str(source)!r}); import gpucloud.node.authorized_keys"
    candidates = [os.path.realpath(sys.executable), "/usr/bin/python3"]
    for candidate in candidates:
        if (
            Path(candidate).exists()
            and sshd.run_as(user, candidate, "-IS", "-c", probe).returncode == 0
        ):
            return candidate
    raise RuntimeError(
        f"none of {candidates} can import gpucloud.node.authorized_keys from {source} as {user}"
    )


@pytest.fixture(scope="session")
def machine(sshd_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    """Users, a root-owned command, its files and an sshd: made once, removed at the end."""
    made: list[Callable[[], None]] = []
    try:
        command_user = sshd.create_user("gck-cmd-", login=False)
        made.append(lambda: sshd.delete_user(command_user))
        login_user = sshd.create_user("gck-user-", login=True)
        made.append(lambda: sshd.delete_user(login_user))
        root = sshd.RootDirectory()
        made.append(root.remove)

        source = Path(authorized_keys.__file__).parents[2]
        interpreter = _interpreter_for(command_user, source)
        # The command user cannot write bytecode next to the source; compile it once here.
        for target in (source / "gpucloud" / "__init__.py", source / "gpucloud" / "node"):
            subprocess.run([interpreter, "-m", "compileall", "-q", str(target)], check=True)
        command = root.path / "gpucloud-authorized-keys"
        command.write_text(_wrapper_text(interpreter, source))
        command.chmod(0o755)

        group = pwd.getpwnam(command_user).pw_gid
        node = Node(root.path, group=group)
        node.cache.mkdir(mode=0o700)
        os.chown(node.cache, pwd.getpwnam(command_user).pw_uid, group)
        drop_in = sshd_config_lines(
            command=str(command), command_user=command_user, config=str(node.config)
        )
        server = sshd.Sshd(tmp_path_factory.mktemp("sshd"), extra=drop_in).start()
        made.append(server.stop)
        yield Machine(command_user, login_user, command, node, server)
    finally:
        for undo in reversed(made):
            undo()


@pytest.fixture
def instance(machine: Machine, server: ServerProcess, database_url: str) -> Instance:
    """The machine's command pointed at this test's server, for the login user as alice."""
    for path in machine.node.cache_files():
        path.unlink()
    api_key = create_api_key(database_url, "alice", scopes=("authorized-keys",))
    owner_key = create_api_key(database_url, "alice")
    machine.node.configure(server.url, {machine.login_user: api_key}, timeout="3", max_stale="1h")
    for path in (machine.node.config, *machine.node.credentials.iterdir()):
        assert sshd.readable_by(machine.command_user, path), (
            f"{machine.command_user} cannot read {path}"
        )
    return Instance(machine, server, database_url, api_key, owner_key)
