"""`gpucloud ssh-keys …` as a real process against a real server: each command's happy
path, its errors, and the JSON output read back. Set-up and checks go through the Python
client, so that only the command under test pays for a process."""

from __future__ import annotations

import datetime as dt
import json
import socket
import stat
import subprocess
from pathlib import Path

from gpucloud.client import Client, SSHKey
from tests.cli.conftest import RunCLI, ssh_key
from tests.support import keygen
from tests.support.bulk_keys import ed25519_public_line

UNKNOWN_SECRET = "gck_" + "A" * 43


def one_error_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """Assert the command failed with exit 1 and one `error:` line holding `words`."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """Assert the command succeeded; return it."""
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result


def add(api: Client, name: str, line: str | None = None) -> SSHKey:
    """Register a key through the client (set-up, not under test)."""
    return api.create_ssh_key(name=name, public_key=line or ed25519_public_line())


def names(api: Client) -> list[tuple[str, bool]]:
    """(name, is default) of the owner's keys, oldest first."""
    return [(key.name, key.is_default) for key in api.list_ssh_keys()]


def test_add_without_a_file_takes_the_default_key_named_after_its_comment(
    run: RunCLI, api: Client, home: Path, tmp_path: Path
) -> None:
    """If add names no file, then ~/.ssh/id_ed25519.pub is added, named by its comment."""
    key = ssh_key(tmp_path, "ada@laptop")
    (home / ".ssh" / "id_ed25519.pub").write_text(key.public_text)
    (home / ".ssh" / "id_rsa.pub").write_text(ed25519_public_line("not@me"))
    result = ok(run("ssh-keys", "add"))
    assert result.stdout.startswith('Added SSH key "ada@laptop" (SHA256:')
    assert "it is your default key" in result.stdout
    [added] = api.list_ssh_keys()
    bits, fingerprint = keygen.fingerprint(tmp_path, key.public_text, "sha256")
    assert (added.name, added.fingerprint, added.key_bits) == ("ada@laptop", fingerprint, bits)
    assert added.public_key == key.public_line and added.is_default


def test_add_a_named_file_or_stdin_and_name_it(run: RunCLI, api: Client, tmp_path: Path) -> None:
    """If add gets a file or -, with --name or without a comment, then the names are as told."""
    ok(run("ssh-keys", "add", str(ssh_key(tmp_path).public_path), "--name", "laptop"))
    ok(run("ssh-keys", "add", "-", input=ed25519_public_line()))
    result = ok(run("ssh-keys", "add", "-", "-n", "ci", "-o", "json", input=ed25519_public_line()))
    created = json.loads(result.stdout)
    assert created == api.get_ssh_key(created["_id"]).to_wire()
    assert names(api) == [("laptop", True), (socket.gethostname(), False), ("ci", False)]


def test_list_shows_a_table_for_people_and_the_apis_objects_for_scripts(
    run: RunCLI, api: Client
) -> None:
    """If keys are listed, then rows have name, fingerprint, type, * and date; JSON is the API's."""
    laptop, desktop = add(api, "laptop"), add(api, "desktop")
    table = ok(run("ssh-keys", "list")).stdout
    header, first, second = [line for line in table.splitlines() if "│" in line or "┃" in line]
    for word in ("name", "fingerprint", "type", "default", "created (UTC)"):
        assert word in header
    assert laptop.fingerprint is not None and desktop.fingerprint is not None
    assert laptop.fingerprint in first and "ssh-ed25519" in first and "*" in first
    assert laptop.created_at.strftime("%Y-%m-%d %H:%M") in first
    assert desktop.fingerprint in second and "*" not in second
    assert json.loads(ok(run("ssh-keys", "list", "-o", "json")).stdout) == [
        laptop.to_wire(),
        desktop.to_wire(),
    ]


def test_a_name_holding_rich_markup_is_listed_exactly_as_typed(run: RunCLI, api: Client) -> None:
    """If a key's name looks like rich markup, then list prints the name as typed, once."""
    for name in ("[red]", "[bold]ci[/bold]", "a\\[b]"):
        add(api, name)
    table = ok(run("ssh-keys", "list")).stdout
    cells = [line.split("│")[1].strip() for line in table.splitlines() if "│" in line]
    assert cells == ["[red]", "[bold]ci[/bold]", "a\\[b]"]


def test_an_empty_list_says_how_to_add_a_key(run: RunCLI) -> None:
    """If the owner has no key, then the table says how to add one."""
    assert "gpucloud ssh-keys add" in ok(run("ssh-keys", "list")).stdout


def test_a_private_key_is_refused_and_never_sent(run: RunCLI, api: Client, tmp_path: Path) -> None:
    """If add or import is given a private key, then exit 1, advice, and nothing registered."""
    key = ssh_key(tmp_path)
    line = one_error_line(run("ssh-keys", "add", str(key.private_path)), "private key")
    assert "nothing was sent" in line and f"{key.private_path}.pub instead" in line
    one_error_line(run("ssh-keys", "import", "-", input=key.private_text), "private key")
    assert api.list_ssh_keys() == []


def test_bad_key_files_are_refused_with_a_reason(run: RunCLI, api: Client, tmp_path: Path) -> None:
    """If there is no default key, or the file is not an acceptable key, then exit 1 with why."""
    one_error_line(run("ssh-keys", "add"), "No public key found", "ssh-keygen -t ed25519")
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("hello world\n")
    one_error_line(run("ssh-keys", "add", str(garbage)), str(garbage))
    dsa = keygen.generate(tmp_path, "dsa")
    one_error_line(run("ssh-keys", "add", str(dsa.public_path)), "DSA", "ssh-keygen -t ed25519")
    assert api.list_ssh_keys() == []


def test_a_duplicate_key_is_refused_naming_the_registered_one(run: RunCLI, api: Client) -> None:
    """If the key is already registered, then exit 1 names the key it is registered as."""
    line = ed25519_public_line()
    add(api, "laptop", line)
    one_error_line(run("ssh-keys", "add", "-", "-n", "other", input=line), '"laptop"')


def test_show_finds_a_key_by_name_id_or_fingerprint(run: RunCLI, api: Client) -> None:
    """If show names a key by name, id or MD5 fingerprint, then it shows that key."""
    key = add(api, "laptop")
    add(api, "desktop")
    text = ok(run("ssh-keys", "show", "laptop")).stdout
    for value in (key.id, key.fingerprint, key.fingerprint_md5, key.public_key, "256 bits"):
        assert value is not None and value in text
    by_id = json.loads(ok(run("ssh-keys", "show", key.id, "-o", "json")).stdout)
    assert by_id == key.to_wire()
    assert key.fingerprint_md5 is not None
    by_md5 = json.loads(
        ok(run("ssh-keys", "show", key.fingerprint_md5.upper(), "-o", "json")).stdout
    )
    assert by_md5["_id"] == key.id


def test_an_unknown_key_is_one_clear_error(run: RunCLI) -> None:
    """If a command names a key that does not exist, then exit 1 says there is none."""
    one_error_line(run("ssh-keys", "show", "nope"), 'no SSH key named "nope"', "ssh-keys list")
    one_error_line(run("ssh-keys", "delete", "0" * 24, "--yes"), "no SSH key named")


def test_rename_and_make_default(run: RunCLI, api: Client) -> None:
    """If a key is renamed and made default, then the name changes and the default moves."""
    add(api, "laptop")
    desktop = add(api, "desktop")
    assert ok(run("ssh-keys", "rename", "desktop", "workstation")).stdout == (
        'Renamed SSH key "desktop" to "workstation".\n'
    )
    one_error_line(run("ssh-keys", "rename", "workstation", "laptop"), "already exists")
    made = json.loads(ok(run("ssh-keys", "make-default", desktop.id, "-o", "json")).stdout)
    assert (made["name"], made["isDefault"]) == ("workstation", True)
    assert names(api) == [("laptop", False), ("workstation", True)]


def test_delete_asks_first_unless_yes(run: RunCLI, api: Client) -> None:
    """If delete is not confirmed, then nothing is deleted; y or --yes deletes it."""
    add(api, "laptop")
    add(api, "desktop")
    add(api, "ci")
    declined = run("ssh-keys", "delete", "laptop", input="n\n")
    assert declined.returncode == 1
    assert 'Delete SSH key "laptop"' in declined.stderr
    assert "Nothing was deleted" in declined.stderr
    ok(run("ssh-keys", "delete", "desktop", input="y\n"))
    assert names(api) == [("laptop", True), ("ci", False)]
    deleted = ok(run("ssh-keys", "delete", "laptop", "--yes"))
    assert deleted.stdout == 'Deleted SSH key "laptop". "ci" is now your default SSH key.\n'
    assert names(api) == [("ci", True)]


def test_import_adds_skips_and_refuses_with_a_summary(
    run: RunCLI, api: Client, tmp_path: Path
) -> None:
    """If an authorized_keys file is imported, then new keys are added and the rest explained."""
    laptop = ed25519_public_line("a@l")
    add(api, "laptop", laptop)
    twin_a, twin_b = ed25519_public_line("ci@x"), ed25519_public_line("ci@x")
    plain = ed25519_public_line()
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(
        "# team keys\n"
        f"{twin_a}\n"
        f"{laptop}\n"
        "\n"
        f'command="backup" {ed25519_public_line()}\n'
        f"{twin_b}\n"
        f"{plain}\n"
        f"{twin_a}\n"
        "ssh-dss AAAAB3NzaC1kc3M= old\n"
    )
    result = run("ssh-keys", "import", str(authorized))
    assert result.returncode == 1  # some lines were refused
    lines = result.stdout.splitlines()
    assert lines[0] == f"Imported {authorized}: 3 added, 2 skipped, 2 refused."
    assert '  skipped  line 3: already registered as "laptop"' in lines
    assert '  skipped  line 8: already registered as "ci@x"' in lines
    assert any(line.startswith("  refused  line 5: ") and "command=" in line for line in lines)
    assert any(line.startswith("  refused  line 9: ") and "DSA" in line for line in lines)
    assert [name for name, _ in names(api)] == [
        "laptop",
        "ci@x",
        "ci@x (2)",
        "authorized_keys line 7",
    ]

    again = run("ssh-keys", "import", "-", "-o", "json", input=f"{twin_a}\n{plain}\n")
    report = json.loads(ok(again).stdout)
    assert report["added"] == [] and report["refused"] == []
    assert [skipped["line"] for skipped in report["skipped"]] == [1, 2]


def test_export_writes_an_authorized_keys_file_default_first(
    run: RunCLI, api: Client, tmp_path: Path
) -> None:
    """If keys are exported, then the default comes first, the file is 0600, never clobbered."""
    one, two = add(api, "one"), add(api, "two")
    api.make_default_ssh_key(two.id)
    expected = f"{two.public_key}\n{one.public_key}\n"
    assert ok(run("ssh-keys", "export")).stdout == expected

    target = tmp_path / "authorized_keys"
    assert ok(run("ssh-keys", "export", str(target))).stdout == f"Wrote 2 SSH keys to {target}.\n"
    assert target.read_text() == expected
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    target.write_text("keep me\n")
    one_error_line(run("ssh-keys", "export", str(target)), "exists", "--force")
    assert target.read_text() == "keep me\n"
    ok(run("ssh-keys", "export", str(target), "--force"))
    assert target.read_text() == expected


def test_a_wrong_api_key_is_one_clear_error(run: RunCLI) -> None:
    """If the API key is unknown or malformed, then exit 1 with the API's words and its source."""
    one_error_line(
        run("ssh-keys", "list", "--api-key", UNKNOWN_SECRET),
        "API key not found",
        "--api-key",
        "gpucloud login",
    )
    one_error_line(
        run("ssh-keys", "list", env={"GPUCLOUD_API_KEY": "nonsense"}),
        "API key invalid",
        "GPUCLOUD_API_KEY",
    )


def test_an_unreachable_server_is_one_clear_error(run: RunCLI) -> None:
    """If nothing listens at the API URL, then exit 1 says it could not connect, and where."""
    one_error_line(
        run("ssh-keys", "list", "--api-url", "http://127.0.0.1:9"),
        "Could not connect to http://127.0.0.1:9",
    )


def test_add_with_expires_in_sets_an_expiry_that_list_and_show_display(
    run: RunCLI, api: Client
) -> None:
    """If add gets --expires-in 90d, then the key expires in 90 days, and list and show
    display the expiry and "never" for a last use; an unreadable duration exits 2 and
    sends nothing."""
    before = dt.datetime.now(dt.UTC)
    result = ok(
        run(
            "ssh-keys",
            "add",
            "-",
            "-n",
            "laptop",
            "--expires-in",
            "90d",
            input=ed25519_public_line(),
        )
    )
    [key] = api.list_ssh_keys()
    assert key.expires_at is not None
    assert dt.timedelta(days=90) <= key.expires_at - before < dt.timedelta(days=90, minutes=1)
    assert "it expires " + key.expires_at.strftime("%Y-%m-%d %H:%M:%S UTC") in result.stdout
    table = ok(run("ssh-keys", "list")).stdout
    assert "expires" in table and "last used" in table
    assert key.expires_at.strftime("%Y-%m-%d %H:%M") in table and "never" in table
    shown = ok(run("ssh-keys", "show", "laptop")).stdout
    assert f"expires:     {key.expires_at:%Y-%m-%d %H:%M:%S} UTC" in shown
    assert "last used:   never" in shown
    bad = run(
        "ssh-keys", "add", "-", "-n", "x", "--expires-in", "soon", input=ed25519_public_line()
    )
    assert bad.returncode == 2 and "90d" in bad.stderr
    assert len(api.list_ssh_keys()) == 1


def test_show_displays_the_last_use_after_a_login_lookup(run: RunCLI, api: Client) -> None:
    """If a key was looked up for a login, then show displays its last use, to the minute."""
    key = add(api, "laptop")
    assert key.fingerprint is not None
    api.get_authorized_keys(fingerprint=key.fingerprint)
    used = api.get_ssh_key(key.id).last_used_at
    assert used is not None
    assert (
        f"last used:   {used:%Y-%m-%d %H:%M}:00 UTC" in ok(run("ssh-keys", "show", "laptop")).stdout
    )


def test_expire_sets_and_removes_an_expiry(run: RunCLI, api: Client) -> None:
    """If expire gets --in 30d, then the key expires in 30 days; --never removes it; neither
    or both of the options exit 2 and change nothing."""
    key = add(api, "laptop")
    before = dt.datetime.now(dt.UTC)
    result = ok(run("ssh-keys", "expire", "laptop", "--in", "30d"))
    expires = api.get_ssh_key(key.id).expires_at
    assert expires is not None
    assert dt.timedelta(days=30) <= expires - before < dt.timedelta(days=30, minutes=1)
    assert f"expires {expires:%Y-%m-%d %H:%M:%S} UTC" in result.stdout
    for wrong in ((), ("--in", "1d", "--never")):
        assert run("ssh-keys", "expire", "laptop", *wrong).returncode == 2
    assert api.get_ssh_key(key.id).expires_at == expires
    cleared = json.loads(ok(run("ssh-keys", "expire", "laptop", "--never", "-o", "json")).stdout)
    assert cleared["expiresAt"] is None and api.get_ssh_key(key.id).expires_at is None
