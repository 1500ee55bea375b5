"""A running process picks up changes to the CA key files at its next call, unrestarted."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpucloud.ca import (
    CANotConfiguredError,
    CAUnavailableError,
    CertificateAuthority,
    ValidityPolicy,
    keys,
)
from gpucloud.ca.errors import CAKeyFileError
from tests.ca.conftest import RunCA, read_certificate
from tests.support.keygen import KeyCorpus

POLICY = ValidityPolicy.parse("8h", "24h")

# A stand-in for a server process: it builds one CertificateAuthority, as `serve` will,
# and answers each line of stdin with what the CA says now, as JSON.
_SERVER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from gpucloud.ca import CertificateAuthority, ValidityPolicy
    from gpucloud.errors import GpuCloudError

    ca = CertificateAuthority(Path(sys.argv[1]), policy=ValidityPolicy.parse("8h", "24h"))
    for line in sys.stdin:
        try:
            if line.strip() == "trust":
                answer = {"trust": ca.trust_list()}
            else:
                answer = {"certificate": ca.certify(line.strip(), owner="alice", key_id="k").certificate}
        except GpuCloudError as exc:
            answer = {"error": type(exc).__name__, "message": exc.message,
                      "cause": getattr(exc.__cause__, "message", None)}
        print(json.dumps(answer), flush=True)
    """
)


class OtherProcess:
    """A separate Python process holding a CertificateAuthority of `key_file`."""

    def __init__(self, key_file: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(key_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, request: str) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(request + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self.process.stdout.readline())
        return answer

    def trusted(self) -> list[str]:
        answer = self.ask("trust")
        assert "trust" in answer, answer
        return [line.split()[1] for line in answer["trust"].splitlines()]

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)
        self.process.stdout.close()


@pytest.fixture
def other_process(key_file: Path) -> Iterator[OtherProcess]:
    process = OtherProcess(key_file)
    yield process
    process.close()


def blob(key: keys.CAPublicKey) -> str:
    return key.line.split()[1]


@pytest.mark.slow
def test_another_process_sees_rotate_and_retire_without_a_restart(
    key_file: Path,
    other_process: OtherProcess,
    run_ca: RunCA,
    key_corpus: KeyCorpus,
    tmp_path: Path,
) -> None:
    """If `ca rotate`, `retire` and `rotate --prepare` run, then a running process follows at once."""
    first = keys.load(key_file).signing
    assert other_process.trusted() == [blob(first)]

    run_ca("rotate", "--key-file", str(key_file))
    second = keys.load(key_file).signing
    assert other_process.trusted() == [blob(second), blob(first)]
    certificate = other_process.ask(key_corpus.keys["ed25519"].public_line)["certificate"]
    assert read_certificate(tmp_path, certificate).signing_ca == second.fingerprint

    run_ca("retire", first.fingerprint, "--key-file", str(key_file))
    assert other_process.trusted() == [blob(second)]

    run_ca("rotate", "--prepare", "--key-file", str(key_file))
    third = keys.load(key_file).next
    assert third is not None
    assert other_process.trusted() == [blob(second), blob(third)]
    certificate = other_process.ask(key_corpus.keys["ed25519"].public_line)["certificate"]
    assert read_certificate(tmp_path, certificate).signing_ca == second.fingerprint


@pytest.mark.slow
def test_a_running_process_stops_using_a_key_made_readable_by_others(
    key_file: Path, other_process: OtherProcess, key_corpus: KeyCorpus
) -> None:
    """If the key file becomes 0644, then signing stops with a clear error until it is 0600 again."""
    line = key_corpus.keys["ed25519"].public_line
    assert "certificate" in other_process.ask(line)
    key_file.chmod(0o644)
    refused = other_process.ask(line)
    assert refused["error"] == "CAUnavailableError"
    assert "operator" in refused["message"] and str(key_file) not in refused["message"]
    assert f"chmod 600 {key_file}" in refused["cause"]  # what the server's log shows
    key_file.chmod(0o600)
    assert "certificate" in other_process.ask(line)


def test_a_server_without_a_key_file_answers_not_configured(key_corpus: KeyCorpus) -> None:
    """If no key file is configured, then both operations raise a clear not-configured error."""
    ca = CertificateAuthority(None, policy=POLICY)
    assert not ca.configured
    with pytest.raises(CANotConfiguredError, match=r"GPUCLOUD_SSH_CA_KEY_FILE.*gpucloud ca init"):
        ca.trust_list()
    with pytest.raises(CANotConfiguredError):
        ca.certify(key_corpus.keys["ed25519"].public_line, owner="alice", key_id="k")


def test_a_missing_key_file_is_unavailable_and_its_cause_names_the_file(tmp_path: Path) -> None:
    """If the configured file does not exist, then callers get a generic error, the log the path."""
    ca = CertificateAuthority(tmp_path / "missing", policy=POLICY)
    with pytest.raises(CAUnavailableError) as refused:
        ca.trust_list()
    assert str(tmp_path) not in refused.value.message
    assert isinstance(refused.value.__cause__, CAKeyFileError)
    assert "gpucloud ca init" in refused.value.__cause__.message
    keys.init(tmp_path / "missing")  # made later: the same CA object starts working
    assert ca.trust_list() == keys.load(tmp_path / "missing").trust_list()


def test_a_key_file_replaced_in_place_is_read_again(key_file: Path, tmp_path: Path) -> None:
    """If another replica's key file is copied over this one, then the next call uses it."""
    ca = CertificateAuthority(key_file, policy=POLICY)
    before = ca.trust_list()
    other = tmp_path / "other" / "ssh_ca"
    keys.init(other)
    # A copy onto the same inode (as `cp` does), not a rename: the sizes are equal, so
    # the modification time tells; file times move in clock ticks of a few milliseconds.
    time.sleep(0.05)
    key_file.write_bytes(other.read_bytes())
    assert ca.trust_list() != before
    assert ca.trust_list() == keys.load(other).trust_list()
