"""`gpucloud ca init | rotate | retire | show`, run as real processes."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from gpucloud.ca import keys
from tests.ca.conftest import RunCA, public_key_of

# The body lines of an OpenSSH private key are 70 base64 characters.
PRIVATE_LINE = re.compile(r"[A-Za-z0-9+/=]{60,}")


def private_lines(key_file: Path) -> list[str]:
    return [line for line in key_file.read_text().splitlines() if PRIVATE_LINE.fullmatch(line)]


def assert_no_private_line(key_file: Path, *outputs: str) -> None:
    lines = private_lines(key_file)
    assert lines, "the key file should have body lines to look for"
    for text in outputs:
        assert not any(line in text for line in lines), "a private-key line was printed"


@pytest.mark.slow
def test_init_with_the_environment_variable_makes_the_key_and_says_where(
    run_ca: RunCA, tmp_path: Path
) -> None:
    """If GPUCLOUD_SSH_CA_KEY_FILE names a new file, then init makes it 0600 and says so on stderr."""
    key_file = tmp_path / "etc" / "ssh_ca"
    made = run_ca("init", env={"GPUCLOUD_SSH_CA_KEY_FILE": str(key_file)})
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    fingerprint = keys.load(key_file).signing.fingerprint
    assert made.stdout == ""
    assert str(key_file) in made.stderr and fingerprint in made.stderr
    assert_no_private_line(key_file, made.stdout, made.stderr)


@pytest.mark.slow
def test_init_refuses_an_existing_file_and_exits_1(run_ca: RunCA, key_file: Path) -> None:
    """If the key file exists, then init exits 1 with the reason and the file is unchanged."""
    before = key_file.read_bytes()
    refused = run_ca("init", "--key-file", str(key_file), check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ") and "gpucloud ca rotate" in refused.stderr
    assert key_file.read_bytes() == before


@pytest.mark.slow
def test_the_option_overrides_the_environment_variable(run_ca: RunCA, tmp_path: Path) -> None:
    """If both --key-file and the variable are given, then the option's file is used."""
    chosen = tmp_path / "chosen"
    run_ca(
        "init", "--key-file", str(chosen), env={"GPUCLOUD_SSH_CA_KEY_FILE": str(tmp_path / "env")}
    )
    assert chosen.exists() and not (tmp_path / "env").exists()


@pytest.mark.slow
def test_without_a_key_file_the_commands_say_how_to_name_one(run_ca: RunCA) -> None:
    """If neither --key-file nor the variable is set, then the command exits 2 and names both."""
    refused = run_ca("show", check=False)
    assert refused.returncode == 2
    assert "GPUCLOUD_SSH_CA_KEY_FILE" in refused.stderr and "--key-file" in refused.stderr


@pytest.mark.slow
def test_rotate_show_and_retire_as_an_operator_runs_them(run_ca: RunCA, key_file: Path) -> None:
    """If an operator rotates, shows and retires, then each step prints what to do next."""
    env = {"GPUCLOUD_SSH_CA_KEY_FILE": str(key_file)}
    old = keys.load(key_file).signing.fingerprint
    rotated = run_ca("rotate", env=env)
    new = keys.load(key_file).signing.fingerprint
    assert f"gpucloud ca retire {old}" in rotated.stderr and new in rotated.stderr
    assert "refuse the certificates" in rotated.stderr and "--prepare" in rotated.stderr

    table = run_ca("show", env=env).stdout
    rows = [line for line in table.splitlines() if "SHA256:" in line]
    assert new in rows[0] and "signing" in rows[0]
    assert old in rows[1] and "previous" in rows[1]

    listed = json.loads(run_ca("show", "--output", "json", env=env).stdout)
    assert [(k["fingerprint"], k["role"]) for k in listed] == [(new, "signing"), (old, "previous")]
    lines = run_ca("show", "--output", "lines", env=env).stdout
    assert lines == keys.load(key_file).trust_list()
    assert lines.splitlines()[0].startswith(public_key_of(key_file) + " ")

    refused = run_ca("retire", new, env=env, check=False)
    assert refused.returncode == 1 and "gpucloud ca rotate" in refused.stderr
    retired = run_ca("retire", old, env=env)
    assert old in retired.stderr
    assert [
        k["fingerprint"] for k in json.loads(run_ca("show", "--output", "json", env=env).stdout)
    ] == [new]
    assert_no_private_line(key_file, rotated.stderr, table, lines, retired.stderr)


@pytest.mark.slow
def test_show_refuses_a_key_file_readable_by_others(run_ca: RunCA, key_file: Path) -> None:
    """If the key file is 0644, then show exits 1 and the message says chmod 600."""
    key_file.chmod(0o644)
    refused = run_ca("show", "--key-file", str(key_file), check=False)
    assert refused.returncode == 1
    assert f"chmod 600 {key_file}" in refused.stderr
    assert_no_private_line(key_file, refused.stdout, refused.stderr)


@pytest.mark.slow
def test_a_rotation_in_two_steps_announces_the_next_key_before_it_signs(
    run_ca: RunCA, key_file: Path
) -> None:
    """If an operator runs rotate --prepare then rotate, then the key shown as next is the one that signs."""
    env = {"GPUCLOUD_SSH_CA_KEY_FILE": str(key_file)}
    old = keys.load(key_file).signing.fingerprint
    prepared = run_ca("rotate", "--prepare", env=env)
    listed = json.loads(run_ca("show", "--output", "json", env=env).stdout)
    assert [k["role"] for k in listed] == ["signing", "next"]
    assert listed[0]["fingerprint"] == old
    upcoming = listed[1]["fingerprint"]
    assert upcoming in prepared.stderr and "signs nothing yet" in prepared.stderr

    again = run_ca("rotate", "--prepare", env=env, check=False)
    assert again.returncode == 1 and upcoming in again.stderr

    rotated = run_ca("rotate", env=env)
    assert "refuse" not in rotated.stderr
    listed = json.loads(run_ca("show", "--output", "json", env=env).stdout)
    assert [(k["fingerprint"], k["role"]) for k in listed] == [
        (upcoming, "signing"),
        (old, "previous"),
    ]
    assert_no_private_line(key_file, prepared.stderr, rotated.stderr)
