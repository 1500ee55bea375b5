"""The operator's tools around the command: the sshd drop-in, and the cold-start figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gpucloud.node.coldstart import measure
from tests.instance.command import register
from tests.instance.conftest import API
from tests.support import sshd
from tests.support.keygen import GeneratedKey, fingerprint
from tests.support.server import GPUCLOUD


def gpucloud(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GPUCLOUD, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_drop_in_wires_in_the_command() -> None:
    """If an operator asks for the sshd drop-in, then it runs the command with %u %f as its user."""
    result = gpucloud("node", "sshd-config")
    assert result.returncode == 0, result.stderr
    settings = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    assert settings == [
        "AuthorizedKeysCommand /usr/local/bin/gpucloud-authorized-keys %u %f",
        "AuthorizedKeysCommandUser gpucloud-keys",
    ]


def test_the_drop_in_takes_its_paths_and_user(tmp_path: Path) -> None:
    """If the command, its user or its configuration are elsewhere, then the drop-in says so, and sshd takes it."""
    result = gpucloud(
        "node", "sshd-config", "--command", "/opt/gpucloud/bin/gpucloud-authorized-keys",
        "--user", "keys", "--config", "/etc/gpucloud/other.conf",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        "AuthorizedKeysCommand /opt/gpucloud/bin/gpucloud-authorized-keys "
        "--config /etc/gpucloud/other.conf %u %f"
    ) in result.stdout.splitlines()
    assert "AuthorizedKeysCommandUser keys" in result.stdout.splitlines()
    if Path(sshd.SSHD).exists():
        host_key = tmp_path / "host"
        subprocess.run([sshd.SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)  # fmt: skip
        config = tmp_path / "sshd_config"
        config.write_text(f"HostKey {host_key}\nUsePAM no\n{result.stdout}")
        checked = subprocess.run([str(sshd.SSHD), "-t", "-f", str(config)], capture_output=True, text=True, check=False)  # fmt: skip
        assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--command", "gpucloud-authorized-keys"), "Invalid value for --command"),
        (("--command", "/opt/my keys/cmd"), "Invalid value for --command"),
        (("--command", "/opt/%u/cmd"), "Invalid value for --command"),
        (("--config", "/etc/a b.conf"), "Invalid value for --config"),
        (("--user", "root;id"), "Invalid value for --user"),
    ],
)
def test_the_drop_in_refuses_what_sshd_would_split(args: tuple[str, ...], message: str) -> None:
    """If a path has a space or a %, or the user is not a plain name, then no drop-in is printed."""
    result = gpucloud("node", "sshd-config", *args)
    assert (result.returncode, result.stdout) == (2, "")
    assert message in result.stderr


def test_the_cold_start_is_measured_on_real_lookups(
    shared_api: API, laptop: GeneratedKey, tmp_path: Path
) -> None:
    """If the cold start is measured, then every run was a whole lookup that printed the key."""
    alice = shared_api.new_owner()
    register(shared_api.url, alice, laptop.public_line, "laptop")
    key = fingerprint(tmp_path, laptop.public_text, "sha256")[1]
    result = measure(url=shared_api.url, api_key=alice, runs=5, fingerprint=key, warmup=1)
    assert (result.runs, result.lines) == (5, 1)
    assert 0 < result.min_ms <= result.median_ms <= result.p90_ms <= result.max_ms
    api_key_file = tmp_path / "key"
    api_key_file.write_text(alice)
    printed = subprocess.run(
        [sys.executable, "-m", "gpucloud.node.coldstart", "--url", shared_api.url,
         "--api-key-file", str(api_key_file), "--runs", "3"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert json.loads(printed.stdout)["runs"] == 3


def test_the_cold_start_refuses_to_time_failures(shared_api: API) -> None:
    """If the lookups fail (no key registered), then there is no figure, but an error."""
    with pytest.raises(RuntimeError, match="with no lines"):
        measure(url=shared_api.url, api_key=shared_api.new_owner(), runs=2, warmup=0)


def test_the_certificate_lines_trust_the_ca_file_and_name_principals(tmp_path: Path) -> None:
    """If an operator asks for --certificates, then the drop-in adds TrustedUserCAKeys and
    AuthorizedPrincipalsFile (alone with --no-lookups), and sshd takes it."""
    both = gpucloud("node", "sshd-config", "--certificates")
    assert both.returncode == 0, both.stderr
    settings = [line for line in both.stdout.splitlines() if not line.startswith("#")]
    assert settings[2:] == [
        "TrustedUserCAKeys /etc/ssh/gpucloud_ca.pub",
        "AuthorizedPrincipalsFile /etc/ssh/gpucloud_principals/%u",
    ]
    alone = gpucloud(
        "node", "sshd-config", "--certificates", "--no-lookups",
        "--ca-file", "/etc/ssh/ca.pub", "--principals-file", "%h/.ssh/principals",
    )  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    assert [line for line in alone.stdout.splitlines() if not line.startswith("#")] == [
        "TrustedUserCAKeys /etc/ssh/ca.pub",
        "AuthorizedPrincipalsFile %h/.ssh/principals",
    ]
    if Path(sshd.SSHD).exists():
        host_key = tmp_path / "host"
        subprocess.run([sshd.SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)  # fmt: skip
        config = tmp_path / "sshd_config"
        config.write_text(f"HostKey {host_key}\nUsePAM no\n{both.stdout}")
        checked = subprocess.run([str(sshd.SSHD), "-t", "-f", str(config)], capture_output=True, text=True, check=False)  # fmt: skip
        assert checked.returncode == 0, checked.stderr
    for args in (
        ("--principals-file", "/etc/%x/p"),
        ("--principals-file", "relative/p"),
        ("--ca-file", "/etc/my ca.pub"),
    ):
        refused = gpucloud("node", "sshd-config", "--certificates", *args)
        assert (refused.returncode, refused.stdout) == (2, ""), args
    nothing = gpucloud("node", "sshd-config", "--no-lookups")
    assert nothing.returncode == 2 and "--certificates" in nothing.stderr
