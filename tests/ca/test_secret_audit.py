"""The suite's secret audit (tests/support/secret_audit.py) watches the CA's private key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpucloud.ca import CertificateAuthority, keys
from tests.ca.conftest import RunCA
from tests.ca.test_reload import POLICY
from tests.support import secret_audit
from tests.support.keygen import KeyCorpus


def _body_lines(key_file: Path) -> list[str]:
    return [line for line in key_file.read_text().splitlines() if not line.startswith("-----")]


def test_a_ca_key_line_is_found_in_a_body_or_a_database_and_a_certificate_is_not_a_leak(
    key_file: Path, key_corpus: KeyCorpus, tmp_path: Path
) -> None:
    """If the CA key's lines are planted in a success body and in a database file, then
    the audit reports both; the certificates it signs (which embed its public key, at any
    offset) and its trust list are not reported."""
    audit = secret_audit.SecretAudit()
    loaded = keys.load(key_file)
    audit.record_private_key(key_file.read_text(), loaded.trust_list(), "the test's CA key")
    ca = CertificateAuthority(key_file, policy=POLICY)
    for serial in range(30):  # the CA's public key falls at each of the 3 base64 offsets
        issued = ca.certify(key_corpus.keys["ed25519"].public_line, owner="alice", key_id="k")
        body = json.dumps({"certificate": issued.certificate, "serial": str(serial)})
        audit.scan(body, "a certificate", kind="success bodies")
    audit.scan(loaded.trust_list(), "the trust list", kind="success bodies")
    assert audit.leaks() == []

    audit.scan(json.dumps({"echo": key_file.read_text()}), "planted body", kind="success bodies")
    database = tmp_path / "gpucloud.db"
    database.write_bytes(b"SQLite format 3\x00" + key_file.read_bytes() + b"\x00" * 64)
    audit.record_database(database)
    audit.scan_databases()
    found = {leak.found_in.split(" (")[0] for leak in audit.leaks()}
    assert found == {"planted body", f"database file {database}"}


def test_a_key_made_by_ca_rotate_in_a_subprocess_is_recorded(
    request: pytest.FixtureRequest, key_file: Path, run_ca: RunCA
) -> None:
    """If `gpucloud ca rotate --prepare` and `rotate` run as processes, then the lines of
    the keys they made are among the audit's private-key lines."""
    audit = secret_audit.active(request.config)
    if audit is None:
        pytest.skip("tests.support.secret_audit is not in the top conftest's pytest_plugins")
    run_ca("rotate", "--prepare", env={"GPUCLOUD_SSH_CA_KEY_FILE": str(key_file)})
    prepared = _body_lines(keys.next_file(key_file))
    run_ca("rotate", "--key-file", str(key_file))
    assert _body_lines(key_file) == prepared  # the prepared key now signs
    secret_lines = [line for line in prepared if line in audit.private_lines]
    assert len(secret_lines) >= 2, "the prepared key's secret lines were not recorded"
