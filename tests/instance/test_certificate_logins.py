"""Logins through a real sshd that trusts gpucloud's SSH CA (SPEC 11).

sshd is configured with the lines `gpucloud node sshd-config --certificates` prints:
`TrustedUserCAKeys` holds what `GET /gpu-cloud/ssh-ca` answers, and the login user's
`AuthorizedPrincipalsFile` names one owner, alice. sshd has no other way in
(`AuthorizedKeysFile none`, no AuthorizedKeysCommand), so a login proves the certificate.
Certificates come from a real `gpucloud serve` with a CA key file, on SQLite and
PostgreSQL; keys from ssh-keygen. sshd reads both files at every login, so the tests
change them without restarting it.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gpucloud.ca import keys
from gpucloud.cli.node import sshd_certificate_lines
from tests.instance.command import register
from tests.support import sshd
from tests.support.api_keys import create_api_key
from tests.support.keygen import GeneratedKey, generate
from tests.support.server import GPUCLOUD, ServerProcess
from tests.support.sshd import login

pytestmark = pytest.mark.slow

OWNER = "alice"


@dataclass
class CAMachine:
    """An sshd trusting the CA file in `root`, with alice as the login user's principal."""

    login_user: str
    root: Path
    sshd: sshd.Sshd

    @property
    def ca_file(self) -> Path:
        return self.root / "gpucloud_ca.pub"

    def trust(self, text: str) -> None:
        """Replace the TrustedUserCAKeys file, as an instance's boot-time fetch would."""
        temporary = self.ca_file.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.chmod(0o644)
        temporary.replace(self.ca_file)

    def login(self, key: GeneratedKey) -> bool:
        """Whether `ssh -i KEY` (which offers KEY-cert.pub beside it) logs in."""
        assert key.private_path is not None
        return login(user=self.login_user, key=key.private_path, port=self.sshd.port).ok


@pytest.fixture(scope="session")
def ca_machine(
    sshd_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CAMachine]:
    """A login user and an sshd with the certificate lines of `gpucloud node sshd-config`."""
    login_user = sshd.create_user("gck-cert-", login=True)
    root = sshd.RootDirectory("gpucloud-ca-sshd-")
    server = None
    try:
        # sshd (StrictModes) wants the principals file in root's directories only.
        principals = root.path / "principals"
        principals.mkdir(mode=0o755)
        (principals / login_user).write_text(f"# owners whose certificates open it\n{OWNER}\n")
        (principals / login_user).chmod(0o644)
        (root.path / "gpucloud_ca.pub").write_text("")
        lines = sshd_certificate_lines(
            ca_file=str(root.path / "gpucloud_ca.pub"),
            principals_file=str(principals / "%u"),
        )
        server = sshd.Sshd(tmp_path_factory.mktemp("ca-sshd"), extra=lines).start()
        yield CAMachine(login_user, root.path, server)
    finally:
        if server is not None:
            server.stop()
        root.remove()
        sshd.delete_user(login_user)


@dataclass
class CAServer:
    """A `gpucloud serve` with its own CA key file, and its database."""

    process: ServerProcess
    database_url: str
    key_file: Path

    def trust_list(self) -> str:
        response = httpx.get(f"{self.process.url}/gpu-cloud/ssh-ca", timeout=10)
        assert response.status_code == 200, response.text
        return response.text

    def certify(self, api_key: str, key: GeneratedKey, valid_for: str = "1h") -> dict[str, str]:
        """Register `key`, certify it, and write the certificate beside it as ssh expects."""
        key_id = register(self.process.url, api_key, key.public_line, key.public_path.parent.name)
        return self.certify_again(api_key, key, key_id, valid_for)

    def certify_again(
        self, api_key: str, key: GeneratedKey, key_id: str, valid_for: str = "1h"
    ) -> dict[str, str]:
        response = httpx.post(
            f"{self.process.url}/gpu-cloud/ssh-keys/{key_id}/certificate",
            headers={"x-api-key": api_key},
            json={"validFor": valid_for},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        body: dict[str, str] = response.json()
        assert key.private_path is not None
        cert_path(key).write_text(body["certificate"] + "\n")
        return body

    def ca(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`gpucloud ca …` on this server's key file, as the operator runs it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")}
        env["GPUCLOUD_SSH_CA_KEY_FILE"] = str(self.key_file)
        result = subprocess.run(
            [GPUCLOUD, "ca", *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result


def cert_path(key: GeneratedKey) -> Path:
    assert key.private_path is not None
    return key.private_path.with_name(key.private_path.name + "-cert.pub")


@pytest.fixture
def ca_server(database_url: str, tmp_path: Path) -> Iterator[CAServer]:
    """This test's server, with a new CA."""
    key_file = tmp_path / "ca" / "ssh_ca"
    keys.init(key_file)
    process = ServerProcess(
        database_url,
        tmp_path / "server.log",
        env={"GPUCLOUD_SSH_CA_KEY_FILE": str(key_file)},
    ).start()
    yield CAServer(process, database_url, key_file)
    process.stop()


@pytest.fixture
def trusted(ca_machine: CAMachine, ca_server: CAServer) -> CAMachine:
    """The machine, trusting this test's CA (fetched from the server, as at boot)."""
    ca_machine.trust(ca_server.trust_list())
    return ca_machine


def test_a_certificate_from_the_api_logs_in_and_the_bare_key_does_not(
    trusted: CAMachine, ca_server: CAServer, tmp_path: Path
) -> None:
    """If alice's key is certified, then it logs in with its certificate; the same key
    without the certificate does not."""
    key = generate(tmp_path, "ed25519", "alice@laptop")
    alice = create_api_key(ca_server.database_url, OWNER)
    ca_server.certify(alice, key)
    assert trusted.login(key)
    cert_path(key).unlink()
    assert not trusted.login(key)


def test_another_owners_certificate_does_not_open_the_user(
    trusted: CAMachine, ca_server: CAServer, tmp_path: Path
) -> None:
    """If bob (not in the user's principals file) gets a certificate, then it does not
    log in, although the same CA signed it."""
    key = generate(tmp_path, "ed25519", "bob@laptop")
    bob = create_api_key(ca_server.database_url, "bob")
    ca_server.certify(bob, key)
    assert not trusted.login(key)


def test_a_certificate_of_another_ca_does_not_log_in(
    ca_machine: CAMachine, ca_server: CAServer, tmp_path: Path
) -> None:
    """If the machine trusts another CA, then alice's certificate does not log in."""
    other = tmp_path / "other" / "ssh_ca"
    ca_machine.trust(keys.init(other).trust_list())
    key = generate(tmp_path, "ed25519", "alice@laptop")
    ca_server.certify(create_api_key(ca_server.database_url, OWNER), key)
    assert not ca_machine.login(key)


@pytest.mark.parametrize("backend", ["sqlite"])  # the database plays no part in expiry
def test_a_30_second_certificate_logs_in_then_is_refused_once_expired(
    trusted: CAMachine, ca_server: CAServer, tmp_path: Path
) -> None:
    """If a certificate is valid for 30 s, then it logs in at once, and not after its
    validBefore has passed."""
    key = generate(tmp_path, "ed25519", "alice@laptop")
    body = ca_server.certify(create_api_key(ca_server.database_url, OWNER), key, "30s")
    assert trusted.login(key)
    until = dt.datetime.strptime(body["validBefore"], "%Y-%m-%dT%H:%M:%S.%fZ")
    valid_before = until.replace(tzinfo=dt.UTC).timestamp()
    assert 25 <= valid_before - time.time() <= 31
    time.sleep(valid_before - time.time() + 1.5)
    assert not trusted.login(key)


def test_after_rotate_both_certificates_log_in_and_after_retire_only_the_new(
    trusted: CAMachine, ca_server: CAServer, tmp_path: Path
) -> None:
    """If the CA is rotated, then certificates of the old and the new key both log in
    (sshd trusting both); once the old key is retired and the trust list fetched again,
    only the new key's certificates do."""
    alice = create_api_key(ca_server.database_url, OWNER)
    old_key = generate(tmp_path, "ed25519", "alice@old")
    new_key = generate(tmp_path, "ed25519", "alice@new")
    ca_server.certify(alice, old_key)
    old_signer = keys.load(ca_server.key_file).signing.fingerprint
    ca_server.ca("rotate")
    trust = ca_server.trust_list()
    assert len(trust.splitlines()) == 2
    trusted.trust(trust)
    ca_server.certify(alice, new_key)
    assert trusted.login(old_key)
    assert trusted.login(new_key)
    ca_server.ca("retire", old_signer)
    trusted.trust(ca_server.trust_list())
    assert not trusted.login(old_key)
    assert trusted.login(new_key)


def test_the_cli_writes_the_certificate_where_ssh_finds_it(
    trusted: CAMachine, ca_server: CAServer, tmp_path: Path
) -> None:
    """If `gpucloud ssh-keys certify` runs with the key in ~/.ssh, then a plain
    `ssh -i ~/.ssh/id_ed25519` logs in with the certificate it wrote."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    private = home / ".ssh" / "id_ed25519"
    subprocess.run(
        [sshd.SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "alice@cli", "-f", str(private)],
        check=True,
    )
    alice = create_api_key(ca_server.database_url, OWNER)
    register(ca_server.process.url, alice, private.with_suffix(".pub").read_text(), "cli")
    assert not login(user=trusted.login_user, key=private, port=trusted.sshd.port).ok
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPUCLOUD_", "SESTERCE_"))}
    env.update(HOME=str(home), GPUCLOUD_API_URL=ca_server.process.url, GPUCLOUD_API_KEY=alice)
    result = subprocess.run(
        [GPUCLOUD, "ssh-keys", "certify", "cli", "--valid-for", "5m"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (home / ".ssh" / "id_ed25519-cert.pub").exists()
    assert login(user=trusted.login_user, key=private, port=trusted.sshd.port).ok
