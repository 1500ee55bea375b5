"""The configuration is read on every run, and every mistake in it has its own message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.instance.command import Node
from tests.support.fake_api import FakeAPI

SECRET = "gck_" + "B" * 43
GOOD = """\
[server]
url = {url}   ; the gpucloud API
timeout = 3   # seconds
[cache]
directory = {cache}
max_stale = 1h
[users]
ubuntu = {credential}
"""


@pytest.fixture
def good(node: Node, fake: FakeAPI) -> dict[str, str]:
    """The pieces of a valid configuration (the SPEC's example) for this node."""
    return {
        "url": fake.url,
        "cache": str(node.cache),
        "credential": str(node.credential("ubuntu", SECRET)),
    }


def test_the_spec_example_works(node: Node, fake: FakeAPI, good: dict[str, str]) -> None:
    """If the configuration is the SPEC's example, comments and all, then the API is asked."""
    node.write_config(GOOD.format(**good))
    run = node.run("ubuntu")
    assert run.returncode == 0, run.stderr
    assert len(fake.requests) == 1


MISTAKES = [
    ("url = {url}", "url = ftp://{cache}", "must start with http:// or https://"),
    ("url = {url}", "url = http://alice:pw@127.0.0.1:1", "must not hold a user name or password"),
    ("url = {url}", "url = {url}/?debug=1", "must not have a query or a fragment"),
    ("url = {url}", "url = http://", "must be a host name or IP address"),
    ("url = {url}", "url = http://127.0.0.1:99999", "must be a host name or IP address"),
    ("url = {url}", "url = http://exa mple.com", "cannot be used"),
    ("url = {url}", "url =", "[server] url is missing"),
    ("url = {url}", "", "[server] url is missing"),
    ("[server]", "[servers]", "unknown section [servers]"),
    ("[cache]", "[DEFAULT]", "unknown section [DEFAULT]"),
    (
        "timeout = 3",
        "uri = http://x",
        "unknown key uri in [server]; [server] takes url and timeout",
    ),
    ("max_stale = 1h", "max_age = 1h", "unknown key max_age in [cache]"),
    ("timeout = 3", "timeout = fast", "[server] timeout = fast is not a duration"),
    ("timeout = 3", "timeout = 0", "[server] timeout must be more than 0 and at most 30 seconds"),
    ("timeout = 3", "timeout = 90", "[server] timeout must be more than 0 and at most 30 seconds"),
    ("max_stale = 1h", "max_stale = 1 hour", "[cache] max_stale = 1 hour is not a duration"),
    ("max_stale = 1h", "max_stale = -5m", "[cache] max_stale = -5m is not a duration"),
    ("directory = {cache}", "directory = cache", "[cache] directory must be an absolute path"),
    (
        "timeout = 3",
        "timeout = 3\ntimeout = 4",
        "option 'timeout' in section 'server' already exists",
    ),
    ("[cache]", "[server]", "section 'server' already exists"),
    ("[server]", "url at the top\n[server]", "File contains no section headers"),
    ("timeout = 3", "timeout", "contains parsing errors"),
    ("timeout = 3", "timeout = 3\n  4", "[server] timeout spans several lines"),
    (
        "ubuntu = {credential}",
        "ub/untu = {credential}",
        "[users] ub/untu is not a plain user name",
    ),
    (
        "ubuntu = {credential}",
        "ubuntu = keys/ubuntu",
        "must name a credential file by its absolute path",
    ),
    ("ubuntu = {credential}", f"ubuntu = {SECRET}", "[users] ubuntu looks like an API key itself"),
]


@pytest.mark.parametrize(("good_line", "bad_line", "message"), MISTAKES, ids=lambda v: repr(v))
def test_each_mistake_has_its_message(
    node: Node, fake: FakeAPI, good: dict[str, str], good_line: str, bad_line: str, message: str
) -> None:
    """If the configuration has a mistake, then stderr says which, nothing is printed, status is 2."""
    text = GOOD.replace(good_line, bad_line, 1)
    node.write_config(text.format(**good))
    run = node.run("ubuntu")
    assert (run.returncode, run.stdout) == (2, ""), run.stderr
    assert message in run.stderr
    assert run.lookup["reason"] == "configuration error"
    assert fake.requests == []


def test_every_mistake_is_reported_at_once(node: Node, fake: FakeAPI, good: dict[str, str]) -> None:
    """If the configuration has several mistakes, then each one has its line on stderr."""
    text = GOOD.replace("timeout = 3", "timeout = soon").replace("[cache]", "[cash]")
    node.write_config(text.replace("ubuntu = ", "-ubuntu = ").format(**good))
    run = node.run("ubuntu")
    assert run.returncode == 2
    for message in (
        "unknown section [cash]",
        "[server] timeout = soon is not a duration",
        "[users] -ubuntu is not a plain user name",
    ):
        assert message in run.stderr


def test_a_missing_configuration_is_said(node: Node) -> None:
    """If the configuration file does not exist, then stderr names it and nothing is printed."""
    run = node.run("ubuntu")
    assert (run.returncode, run.stdout) == (2, "")
    assert f"cannot read the configuration file {node.config}: No such file" in run.stderr


def test_a_configuration_others_can_change_is_refused(
    node: Node, fake: FakeAPI, good: dict[str, str]
) -> None:
    """If other users can write the configuration (which names the API), then it is not used."""
    node.write_config(GOOD.format(**good)).chmod(0o666)
    run = node.run("ubuntu")
    assert (run.returncode, run.stdout) == (2, "")
    assert "can be changed by other users (mode 0666); chmod go-w" in run.stderr
    assert fake.requests == []


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_configuration_of_another_user_is_refused(
    node: Node, fake: FakeAPI, good: dict[str, str]
) -> None:
    """If the configuration belongs to neither root nor the command's user, then it is not used."""
    os.chown(node.write_config(GOOD.format(**good)), 4242, 4242)
    run = node.run("ubuntu")
    assert run.returncode == 2
    assert "is owned by uid 4242, neither root nor the user running this command" in run.stderr


def test_a_configuration_in_a_directory_others_can_change_is_refused(
    tmp_path: Path, fake: FakeAPI, good: dict[str, str]
) -> None:
    """If the configuration's directory is world-writable (no sticky bit), then it is not used."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    node = Node(shared)
    node.write_config(GOOD.format(**good))
    run = node.run("ubuntu")
    assert run.returncode == 2
    assert f"is in {shared}, which other users can change" in run.stderr


def test_a_configuration_that_is_not_utf8_is_refused(node: Node) -> None:
    """If the configuration is not UTF-8 text, then stderr says so."""
    node.config.write_bytes(b"[server]\nurl = http://h\xff\n")
    run = node.run("ubuntu")
    assert run.returncode == 2
    assert "is not UTF-8 text" in run.stderr


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        (
            0o644,
            "is readable by other users (mode 0644); let only its owner and group read it: chmod 0640",
        ),
        (0o604, "is readable by other users (mode 0604)"),
        (0o660, "can be changed by other users (mode 0660)"),
        (0o602, "can be changed by other users (mode 0602)"),
    ],
)
def test_a_credential_others_can_read_or_change_is_refused(
    node: Node, fake: FakeAPI, good: dict[str, str], mode: int, message: str
) -> None:
    """If others may read or change a credential file, then it is not used, and stderr says why."""
    node.write_config(GOOD.format(**good))
    Path(good["credential"]).chmod(mode)
    run = node.run("ubuntu")
    assert (run.returncode, run.stdout) == (2, "")
    assert f"[users] ubuntu: the credential file {good['credential']} {message}" in run.stderr
    assert fake.requests == []


def test_a_credential_its_group_may_read_is_used(
    node: Node, fake: FakeAPI, good: dict[str, str]
) -> None:
    """If the credential file is 0640 (root and the command user's group), then it is used."""
    node.write_config(GOOD.format(**good))
    Path(good["credential"]).chmod(0o640)
    run = node.run("ubuntu")
    assert run.returncode == 0, run.stderr
    assert fake.requests[0].headers["x-api-key"] == SECRET


@pytest.mark.parametrize(
    "content", ["", "hello\n", SECRET[:-1], SECRET + "\n" + SECRET, "gck_" + "+" * 43]
)
def test_a_credential_without_an_api_key_is_refused(
    node: Node, fake: FakeAPI, good: dict[str, str], content: str
) -> None:
    """If the credential file does not hold one API key, then it is not used, nor echoed."""
    node.write_config(GOOD.format(**good))
    Path(good["credential"]).write_text(content)
    run = node.run("ubuntu")
    assert run.returncode == 2
    assert "does not hold an API key (one line: gck_ and 43 more characters" in run.stderr
    assert fake.requests == []


def test_a_missing_credential_is_said(node: Node, fake: FakeAPI, good: dict[str, str]) -> None:
    """If the credential file does not exist, then stderr names the user and the file."""
    node.write_config(GOOD.format(**good))
    Path(good["credential"]).unlink()
    run = node.run("ubuntu")
    assert run.returncode == 2
    assert f"cannot read [users] ubuntu: the credential file {good['credential']}" in run.stderr


def test_only_the_users_own_credential_is_read(
    node: Node, fake: FakeAPI, good: dict[str, str]
) -> None:
    """If another user's credential file is unreadable, then this user's lookup still works."""
    broken = node.credential("admin", SECRET)
    node.write_config(GOOD.format(**good) + f"admin = {broken}\n")
    broken.chmod(0o666)
    assert node.run("ubuntu").returncode == 0
    assert node.run("admin").returncode == 2


@pytest.mark.parametrize("which", ["configuration", "credential"])
def test_a_fifo_is_refused_rather_than_waited_on(
    node: Node, fake: FakeAPI, good: dict[str, str], which: str
) -> None:
    """If the configuration or the credential is a FIFO, then it is refused at once, not read."""
    node.write_config(GOOD.format(**good))
    path = node.config if which == "configuration" else Path(good["credential"])
    path.unlink()
    os.mkfifo(path, 0o600)
    run = node.run("ubuntu", timeout=10)
    assert (run.returncode, run.stdout) == (2, "")
    assert f"{path} is not a regular file" in run.stderr
