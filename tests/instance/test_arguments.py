"""The command's arguments are hostile: sshd puts tokens on its command line unquoted."""

from __future__ import annotations

import os

import pytest

from tests.instance.command import Node, run_command
from tests.support.fake_api import FakeAPI

SECRET = "gck_" + "A" * 43
# A real SHA-256 fingerprint (of nothing in particular), as sshd's %f gives it.
FINGERPRINT = "SHA256:uMKz2gO+NzksYbDdbPxv4GFcUWlvB5ie4fRhCGYxGps"

HOSTILE_USERS = [
    "",
    " ",
    "ubuntu ",
    " ubuntu",
    "ubuntu\n",
    "ubuntu\tx",
    "root; rm -rf /",
    "$(id)",
    "`id`",
    "${IFS}",
    "ubuntu|id",
    "ubuntu&",
    "ubuntu'",
    'ubuntu"',
    "../../etc/passwd",
    "..",
    ".",
    ".hidden",
    "a/b",
    "/etc/passwd",
    "ubuntu@all",
    "ubuntu@SHA256-x",
    "-c",
    "--config",
    "--help=x",
    "~root",
    "ub*",
    "ub?",
    "ubuntu\x01",
    "ubuntu\x7f",
    "ubuntu%00",
    "übuntu",
    "ubu\u200bntu",
    "a" * 33,
    "a" * 100_000,
    os.fsdecode(b"ub\xffuntu"),  # not UTF-8: sshd passes bytes
]

HOSTILE_FINGERPRINTS = [
    "",
    "SHA256:",
    FINGERPRINT[:-1],
    FINGERPRINT + "A",
    FINGERPRINT + "=",
    FINGERPRINT + "\n",
    " " + FINGERPRINT,
    FINGERPRINT[:-1] + "B",  # the last character's unused bits are not zero
    FINGERPRINT.replace("+", "-"),  # base64url is not what sshd prints
    FINGERPRINT.replace("SHA256", "sha256"),
    "MD5:ea:95:8f:8a:b5:9b:dd:47:1c:8f:a2:cd:33:b1:9d:33",
    "SHA256:$(id)" + "A" * 38,
    "SHA256:../../../../etc/passwd" + "A" * 21,
    "SHA256:" + "A" * 42 + "%",
    "SHA256:" + "A" * 10_000,
    "ssh-ed25519",
    os.fsdecode(FINGERPRINT[:-1].encode() + b"\xff"),
]


@pytest.fixture
def configured(node: Node, fake: FakeAPI) -> Node:
    """A node whose configuration lists ubuntu, against a fake API that records requests."""
    node.configure(fake.url, {"ubuntu": SECRET})
    return node


@pytest.mark.parametrize("user", HOSTILE_USERS, ids=repr)
def test_a_user_that_is_not_a_plain_user_name_gets_nothing(
    configured: Node, fake: FakeAPI, user: str
) -> None:
    """If USER is not a plain user name, then no line is printed and nothing is asked."""
    run = configured.run(user, FINGERPRINT)
    assert (run.returncode, run.stdout) == (2, "")
    assert "is not a plain user name" in run.stderr
    assert run.outcome == "refused"
    assert fake.requests == []
    assert configured.cache_files() == []


@pytest.mark.parametrize("fingerprint", HOSTILE_FINGERPRINTS, ids=repr)
def test_a_fingerprint_not_as_sshd_prints_it_gets_nothing(
    configured: Node, fake: FakeAPI, fingerprint: str
) -> None:
    """If FINGERPRINT is not SHA256: and 43 base64 characters, then nothing is printed or asked."""
    run = configured.run("ubuntu", fingerprint)
    assert (run.returncode, run.stdout) == (2, "")
    assert "is not SHA256: and 43 base64 characters" in run.stderr
    assert fake.requests == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "got 0 arguments"),
        (("ubuntu", FINGERPRINT, "extra"), "got 3 arguments"),
        (("ubuntu", "SHA256:a", "b", "c"), "got 4 arguments"),
        (("--config",), "--config needs a file"),
        (("--config", "relative.conf", "ubuntu"), "is not an absolute path"),
        (("--config=", "ubuntu"), "is not an absolute path"),
    ],
    ids=repr,
)
def test_a_command_line_sshd_would_not_write_gets_nothing(
    fake: FakeAPI, args: tuple[str, ...], message: str
) -> None:
    """If the command line is malformed, then the command says how, prints nothing, exits 2."""
    run = run_command(*args)
    assert (run.returncode, run.stdout) == (2, "")
    assert message in run.stderr
    assert "usage: gpucloud-authorized-keys [--config FILE] USER [FINGERPRINT]" in run.stderr


def test_a_fingerprint_is_sent_percent_encoded(configured: Node, fake: FakeAPI) -> None:
    """If the arguments are sound, then the API is asked for that user's key, encoded in the URL."""
    run = configured.run("ubuntu", FINGERPRINT)
    assert run.returncode == 0
    (request,) = fake.requests
    assert request.method == "GET"
    assert request.target == (
        "/gpu-cloud/ssh-keys/authorized_keys"
        "?fingerprint=SHA256%3AuMKz2gO%2BNzksYbDdbPxv4GFcUWlvB5ie4fRhCGYxGps"
    )
    assert request.headers["x-api-key"] == SECRET
    assert run.lookup["user"] == "ubuntu"
    assert run.lookup["fingerprint"] == FINGERPRINT


def test_a_user_not_in_the_configuration_gets_nothing(configured: Node, fake: FakeAPI) -> None:
    """If USER is a plain name but not under [users], then nothing is printed or asked (status 0)."""
    run = configured.run("root", FINGERPRINT)
    assert (run.returncode, run.stdout) == (0, "")
    assert run.outcome == "refused"
    assert "user not under [users]" in run.lookup["reason"]
    assert fake.requests == []


def test_help_goes_to_stderr() -> None:
    """If asked for --help, then the usage goes to stderr: stdout is only for key lines."""
    run = run_command("--help")
    assert (run.returncode, run.stdout) == (0, "")
    assert "usage: gpucloud-authorized-keys" in run.stderr
