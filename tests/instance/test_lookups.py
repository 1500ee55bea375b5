"""Lookups against a real `gpucloud serve`: what is served, cached, dropped and refused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.instance.command import Node, delete, register
from tests.instance.conftest import API
from tests.support.api_keys import revoke_api_key
from tests.support.keygen import GeneratedKey, fingerprint


def fingerprint_of(tmp_path: Path, key: GeneratedKey) -> str:
    """The fingerprint `ssh-keygen -l` prints for the key, as sshd's %f gives it."""
    return fingerprint(tmp_path, key.public_text, "sha256")[1]


def ubuntu_logs_in_with(api: API, node: Node, secret: str, *keys: GeneratedKey) -> None:
    """Register `keys` for the owner of `secret`, and give the node's ubuntu that credential."""
    for number, key in enumerate(keys):
        register(api.url, secret, key.public_line, f"key {number}")
    node.configure(api.url, {"ubuntu": secret})


@pytest.fixture
def alice(shared_api: API) -> str:
    """An API key of a new owner on the shared server."""
    return shared_api.new_owner()


def test_a_full_lookup_prints_the_users_keys_default_first(
    shared_api: API, node: Node, alice: str, laptop: GeneratedKey, desktop: GeneratedKey
) -> None:
    """If the owner has keys, then a lookup without a fingerprint prints them all, default first."""
    ubuntu_logs_in_with(shared_api, node, alice, laptop, desktop)
    run = node.run("ubuntu")
    assert run.returncode == 0, run.stderr
    assert run.lines == [laptop.public_line, desktop.public_line]
    assert (run.outcome, run.lookup["lines"], run.lookup["reason"]) == ("served", "2", "HTTP 200")


def test_a_fingerprint_lookup_prints_only_that_key(
    shared_api: API,
    node: Node,
    alice: str,
    laptop: GeneratedKey,
    desktop: GeneratedKey,
    tmp_path: Path,
) -> None:
    """If sshd asks for one key by fingerprint, then only that key's line is printed."""
    ubuntu_logs_in_with(shared_api, node, alice, laptop, desktop)
    run = node.run("ubuntu", fingerprint_of(tmp_path, desktop))
    assert run.lines == [desktop.public_line]
    assert run.lookup["fingerprint"] == fingerprint_of(tmp_path, desktop)


def test_an_unregistered_or_foreign_key_gets_nothing(
    shared_api: API,
    node: Node,
    alice: str,
    laptop: GeneratedKey,
    desktop: GeneratedKey,
    tmp_path: Path,
) -> None:
    """If the key is not the owner's (unregistered, or another owner's), then nothing is printed."""
    register(shared_api.url, alice, laptop.public_line, "laptop")
    register(shared_api.url, shared_api.new_owner(), desktop.public_line, "bob's")
    node.configure(shared_api.url, {"ubuntu": alice})
    run = node.run("ubuntu", fingerprint_of(tmp_path, desktop))
    assert (run.returncode, run.stdout, run.outcome) == (0, "", "refused")
    assert run.lookup["reason"] == "HTTP 200: no registered key with this fingerprint"
    assert node.cache_files() == []  # an empty answer leaves no file to fill the disk


def test_the_cache_is_private_and_whole(
    shared_api: API, node: Node, alice: str, laptop: GeneratedKey, tmp_path: Path
) -> None:
    """If a lookup is answered, then its cache entry is a 0600 file in a 0700 directory, no leftovers."""
    ubuntu_logs_in_with(shared_api, node, alice, laptop)
    node.run("ubuntu")
    node.run("ubuntu", fingerprint_of(tmp_path, laptop))
    assert stat.S_IMODE(node.cache.stat().st_mode) == 0o700
    files = node.cache_files()
    assert [path.name for path in files] == [
        "ubuntu@SHA256-" + fingerprint_of(tmp_path, laptop)[7:].replace("+", "-").replace("/", "_"),
        "ubuntu@all",
    ]
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)


def test_a_deleted_key_is_gone_at_the_next_lookup_and_from_the_cache(
    shared_api: API, alice: str, node: Node, laptop: GeneratedKey, tmp_path: Path
) -> None:
    """If a key is deleted, then the next lookup refuses it, also later from the cache."""
    key_id = register(shared_api.url, alice, laptop.public_line, "laptop")
    node.configure(shared_api.url, {"ubuntu": alice})
    key = fingerprint_of(tmp_path, laptop)
    assert node.run("ubuntu", key).lines == [laptop.public_line]
    delete(shared_api.url, alice, key_id)
    assert node.run("ubuntu", key).stdout == ""
    node.cut_off()
    run = node.run("ubuntu", key)
    assert (run.stdout, run.outcome) == ("", "refused")
    assert "no cached answer" in run.lookup["reason"]


@pytest.mark.parametrize("how", ["revoked (403)", "unknown (404)"])
def test_a_refused_credential_drops_the_users_cache(
    shared_api: API, node: Node, alice: str, laptop: GeneratedKey, tmp_path: Path, how: str
) -> None:
    """If the API refuses the credential (403 or 404), then nothing is printed and its cache goes."""
    register(shared_api.url, alice, laptop.public_line, "laptop")
    bob = shared_api.new_owner()
    register(shared_api.url, bob, laptop.public_line, "laptop")
    node.configure(shared_api.url, {"ubuntu": alice, "admin": bob})
    key = fingerprint_of(tmp_path, laptop)
    for user in ("ubuntu", "admin"):
        node.run(user)
        node.run(user, key)
    assert len(node.cache_files("ubuntu")) == 2
    if how.startswith("revoked"):
        revoke_api_key(shared_api.database_url, alice)
    else:
        node.credential("ubuntu", "gck_" + "Z" * 43)  # well formed, never issued
    run = node.run("ubuntu", key)
    assert (run.returncode, run.stdout, run.outcome) == (0, "", "refused")
    status = "403: API key invalid" if how.startswith("revoked") else "404: API key not found"
    assert f"the API refused the credential (HTTP {status}); 2 cache files dropped" in run.stderr
    assert node.cache_files("ubuntu") == []
    assert len(node.cache_files("admin")) == 2  # another user's credential, another cache


def test_the_cache_answers_while_younger_than_max_stale(
    own_api: API, node: Node, laptop: GeneratedKey, tmp_path: Path
) -> None:
    """If the API cannot be reached, then the cached answer is used up to max_stale, never after."""
    ubuntu_logs_in_with(own_api, node, own_api.new_owner(), laptop)
    key = fingerprint_of(tmp_path, laptop)
    assert node.run("ubuntu", key).outcome == "served"
    own_api.process.stop()
    node.age_cache(3500)
    run = node.run("ubuntu", key)
    assert (run.returncode, run.lines, run.outcome) == (0, [laptop.public_line], "cached")
    assert "cannot connect to" in run.lookup["reason"]
    node.age_cache(200)
    run = node.run("ubuntu", key)
    assert (run.returncode, run.stdout, run.outcome) == (1, "", "refused")
    assert "max_stale is 3600s" in run.lookup["reason"]
    own_api.process.start()
    run = node.run("ubuntu", key)
    assert (run.lines, run.outcome) == ([laptop.public_line], "served")


def test_max_stale_zero_never_serves_the_cache(
    shared_api: API, alice: str, node: Node, laptop: GeneratedKey
) -> None:
    """If max_stale is 0, then an unreachable API means no lines, however fresh the cache."""
    register(shared_api.url, alice, laptop.public_line, "laptop")
    node.configure(shared_api.url, {"ubuntu": alice}, max_stale="0")
    assert node.run("ubuntu").outcome == "served"
    node.cut_off()
    run = node.run("ubuntu")
    assert (run.returncode, run.stdout, run.outcome) == (1, "", "refused")


def test_a_fingerprint_lookup_uses_only_its_own_cache_entry(
    shared_api: API, alice: str, node: Node, laptop: GeneratedKey, tmp_path: Path
) -> None:
    """If only a full lookup was cached, then a key lookup while the API is down gets nothing."""
    ubuntu_logs_in_with(shared_api, node, alice, laptop)
    assert node.run("ubuntu").lines == [laptop.public_line]
    node.cut_off()
    assert node.run("ubuntu").outcome == "cached"
    assert node.run("ubuntu", fingerprint_of(tmp_path, laptop)).stdout == ""


@pytest.mark.parametrize(
    "damage",
    ["truncated", "a byte changed", "emptied", "its header lost", "readable by others", "a link"],
)
def test_a_damaged_cache_entry_is_treated_as_absent(
    shared_api: API, alice: str, node: Node, laptop: GeneratedKey, tmp_path: Path, damage: str
) -> None:
    """If a cache entry is damaged, truncated or not private, then it is not used."""
    ubuntu_logs_in_with(shared_api, node, alice, laptop)
    node.run("ubuntu")
    node.cut_off()
    (entry,) = node.cache_files()
    data = entry.read_bytes()
    if damage == "truncated":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "a byte changed":
        entry.write_bytes(data[:-10] + bytes([data[-10] ^ 1]) + data[-9:])
    elif damage == "emptied":
        entry.write_bytes(b"")
    elif damage == "its header lost":
        entry.write_bytes(data.partition(b"\n\n")[2])
    elif damage == "readable by others":
        entry.chmod(0o644)
    else:
        target = tmp_path / "elsewhere"
        target.write_bytes(data)
        target.chmod(0o600)
        entry.unlink()
        entry.symlink_to(target)
    run = node.run("ubuntu")
    assert (run.returncode, run.stdout) == (1, "")
    assert "not used" in run.stderr


def test_an_unfinished_write_is_never_read(
    shared_api: API, alice: str, node: Node, laptop: GeneratedKey, desktop: GeneratedKey
) -> None:
    """If a crash left a temporary file in the cache, then no lookup ever reads it."""
    ubuntu_logs_in_with(shared_api, node, alice, laptop)
    node.run("ubuntu")
    (entry,) = node.cache_files()
    # A whole entry, of other keys, under the name an interrupted write would leave.
    other = entry.read_text().replace(laptop.public_line, desktop.public_line)
    leftover = entry.with_name(f".{entry.name}.4242.deadbeef.tmp")
    leftover.write_text(other)
    leftover.chmod(0o600)
    entry.unlink()
    node.cut_off()
    run = node.run("ubuntu")
    assert (run.returncode, run.stdout) == (1, "")


def test_a_cache_directory_open_to_others_is_not_used(
    shared_api: API, node: Node, alice: str, laptop: GeneratedKey
) -> None:
    """If the cache directory is open to other users, then answers are served but never cached."""
    ubuntu_logs_in_with(shared_api, node, alice, laptop)
    node.cache.mkdir(mode=0o755)
    node.cache.chmod(0o755)
    run = node.run("ubuntu")
    assert (run.returncode, run.lines) == (0, [laptop.public_line])
    assert "is open to other users (mode 0755); running without a cache" in run.stderr
    assert node.cache_files() == []
