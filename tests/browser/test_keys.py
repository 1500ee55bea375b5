"""Managing SSH keys in the browser: add, list, copy, make default, rename, delete, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Request, expect

from gpucloud.pubkey.parse import PRIVATE_KEY_MESSAGE
from tests.browser.pages import ConsolePage
from tests.support import keygen
from tests.support.keygen import KeyCorpus


def _api_keys(api: httpx.Client) -> list[dict[str, Any]]:
    response = api.get("/gpu-cloud/ssh-keys")
    response.raise_for_status()
    keys: list[dict[str, Any]] = response.json()
    return keys


def _add(api: httpx.Client, name: str, public_key: str) -> None:
    response = api.post("/gpu-cloud/ssh-keys", json={"name": name, "publicKey": public_key})
    assert response.status_code == 201, response.text


def _posts(requests: list[Request]) -> list[Request]:
    return [r for r in requests if r.method == "POST" and "/gpu-cloud/" in r.url]


def test_key_added_by_paste_is_listed_with_ssh_keygens_fingerprint(
    console: ConsolePage, api_key: str, api: httpx.Client, tmp_path: Path
) -> None:
    """If a key is pasted and added, then its row shows the type, bits and fingerprint ssh-keygen prints."""
    key = keygen.generate(tmp_path, "ed25519", "alice@laptop")
    bits, fingerprint = keygen.fingerprint(tmp_path, key.public_text, "sha256")
    console.sign_in(api_key)

    console.add_by_paste("laptop", key.public_text)

    expect(console.row("laptop")).to_be_visible()
    assert console.cells_of("laptop")[:3] == ["ED25519", str(bits), fingerprint]
    assert console.default_names() == ["laptop"], "the first key becomes the default"
    expect(console.row("laptop")).to_contain_text("alice@laptop")
    expect(console.status).to_have_text("Added “laptop”. It is your default key.")
    expect(console.name_cell("laptop")).to_be_focused()
    expect(console.name_input).to_have_value("")
    expect(console.key_input).to_have_value("")
    assert [k["fingerprint"] for k in _api_keys(api)] == [fingerprint]


def test_key_added_from_a_pub_file_is_listed(
    console: ConsolePage, api_key: str, api: httpx.Client, tmp_path: Path
) -> None:
    """If a .pub file is chosen, then it fills the form (name from its comment) and adds that key."""
    key = keygen.generate(tmp_path, "ecdsa384", "ci@runner-7")
    bits, fingerprint = keygen.fingerprint(tmp_path, key.public_text, "sha256")
    console.sign_in(api_key)

    console.file_input.set_input_files(key.public_path)
    expect(console.key_input).to_have_value(key.public_line)
    expect(console.name_input).to_have_value("ci@runner-7")
    console.name_input.fill("ci-runner")
    console.add_button.click()

    expect(console.row("ci-runner")).to_be_visible()
    assert console.cells_of("ci-runner")[:3] == ["ECDSA", str(bits), fingerprint]
    assert [k["name"] for k in _api_keys(api)] == ["ci-runner"]


def test_copy_button_copies_the_fingerprint(
    console: ConsolePage, api_key: str, api: httpx.Client, tmp_path: Path
) -> None:
    """If the copy button of a row is pressed, then the clipboard holds that key's fingerprint."""
    key = keygen.generate(tmp_path, "ed25519")
    _, fingerprint = keygen.fingerprint(tmp_path, key.public_text, "sha256")
    _add(api, "laptop", key.public_line)
    console.sign_in(api_key)

    console.page.get_by_role("button", name="Copy fingerprint of laptop").click()

    expect(console.status).to_have_text("Copied the fingerprint of “laptop”")
    assert console.page.evaluate("navigator.clipboard.readText()") == fingerprint


def test_make_default_moves_the_badge(
    console: ConsolePage, api_key: str, api: httpx.Client, key_corpus: KeyCorpus
) -> None:
    """If another key is made the default, then the badge moves to it, and the API agrees."""
    _add(api, "laptop", key_corpus.keys["ed25519"].public_line)
    _add(api, "workstation", key_corpus.keys["rsa2048"].public_line)
    console.sign_in(api_key)
    assert console.default_names() == ["laptop"]
    expect(console.page.get_by_role("button", name="Make laptop the default key")).to_have_count(0)

    console.make_default("workstation")

    expect(console.status).to_have_text("“workstation” is now your default key")
    assert console.default_names() == ["workstation"]
    expect(console.name_cell("workstation")).to_be_focused()
    assert {k["name"]: k["isDefault"] for k in _api_keys(api)} == {
        "laptop": False,
        "workstation": True,
    }


def test_rename_in_a_dialog(
    console: ConsolePage, api_key: str, api: httpx.Client, key_corpus: KeyCorpus
) -> None:
    """If a key is renamed in its dialog, then the row and the API show the new name; a taken name gets the 409."""
    _add(api, "laptop", key_corpus.keys["ed25519"].public_line)
    _add(api, "desktop", key_corpus.keys["ecdsa256"].public_line)
    console.sign_in(api_key)

    console.open_rename("laptop")
    name_field = console.rename_dialog.get_by_label("New name")
    expect(name_field).to_be_focused()
    expect(name_field).to_have_value("laptop")
    console.page.keyboard.press("Escape")
    expect(console.rename_dialog).to_be_hidden()
    expect(console.page.get_by_role("button", name="Rename laptop")).to_be_focused()

    console.rename("laptop", "desktop")
    expect(console.field_error("rename-name")).to_have_text(
        'An SSH key named "desktop" already exists; choose another name'
    )
    expect(name_field).to_have_attribute("aria-invalid", "true")
    expect(console.rename_dialog).to_be_visible()

    name_field.fill("  old laptop  ")
    console.rename_dialog.get_by_role("button", name="Save").click()
    expect(console.rename_dialog).to_be_hidden()
    expect(console.row("old laptop")).to_be_visible()
    expect(console.status).to_have_text("Renamed “laptop” to “old laptop”")
    expect(console.page.get_by_role("button", name="Rename old laptop")).to_be_focused()
    assert sorted(k["name"] for k in _api_keys(api)) == ["desktop", "old laptop"]


def test_delete_asks_for_confirmation(
    console: ConsolePage, api_key: str, api: httpx.Client, key_corpus: KeyCorpus
) -> None:
    """If a key is deleted, then only after confirming; deleting the default moves the badge."""
    _add(api, "laptop", key_corpus.keys["ed25519"].public_line)
    _add(api, "workstation", key_corpus.keys["rsa2048"].public_line)
    _add(api, "ci-runner", key_corpus.keys["ecdsa256"].public_line)
    console.sign_in(api_key)

    console.open_delete("laptop")
    expect(console.delete_dialog).to_contain_text("“laptop”")
    expect(console.delete_dialog).to_contain_text("“ci-runner”, your most recently added key")
    cancel = console.delete_dialog.get_by_role("button", name="Cancel")
    expect(cancel).to_be_focused()
    cancel.click()
    expect(console.delete_dialog).to_be_hidden()
    expect(console.rows).to_have_count(3)
    expect(console.page.get_by_role("button", name="Delete laptop")).to_be_focused()

    console.delete("laptop")

    expect(console.delete_dialog).to_be_hidden()
    expect(console.row("laptop")).to_have_count(0)
    expect(console.rows).to_have_count(2)
    expect(console.status).to_have_text("Deleted “laptop”. “ci-runner” is now your default key.")
    assert console.default_names() == ["ci-runner"]
    expect(console.name_cell("workstation")).to_be_focused()
    assert [k["name"] for k in _api_keys(api)] == ["workstation", "ci-runner"]

    console.delete("workstation")
    console.delete("ci-runner")
    expect(console.empty_state).to_be_visible()
    expect(console.keys_heading).to_be_focused()
    assert _api_keys(api) == []


def test_private_keys_are_refused_before_anything_is_sent(
    console: ConsolePage, api_key: str, key_corpus: KeyCorpus, requests_made: list[Request]
) -> None:
    """If a private key of any format is pasted, then the API's message shows by the field and nothing is sent."""
    console.sign_in(api_key)
    console.name_input.fill("oops")
    for label, private_text in key_corpus.private_keys.items():
        console.key_input.fill(private_text)
        expect(console.field_error("key-text"), label).to_have_text(PRIVATE_KEY_MESSAGE)
        console.add_button.click()
        expect(console.field_error("key-text"), label).to_have_text(PRIVATE_KEY_MESSAGE)
        expect(console.key_input, label).to_be_focused()
        expect(console.key_input, label).to_have_attribute("aria-invalid", "true")
    assert _posts(requests_made) == []

    # Every kind of public key the API accepts passes the same check.
    for kind in keygen.ACCEPTED_KINDS:
        console.key_input.fill(key_corpus.keys[kind].public_text)
        expect(console.field_error("key-text"), kind).to_be_hidden()


def test_private_key_file_is_refused_before_anything_is_sent(
    console: ConsolePage, api_key: str, tmp_path: Path, requests_made: list[Request]
) -> None:
    """If a private key file is chosen, then it is refused by the file field and nothing is sent."""
    key = keygen.generate(tmp_path, "ed25519")
    assert key.private_path is not None
    console.sign_in(api_key)

    console.file_input.set_input_files(key.private_path)

    expect(console.field_error("key-file")).to_have_text(f"id: {PRIVATE_KEY_MESSAGE}")
    expect(console.key_input).to_have_value("")
    expect(console.file_input).to_have_value("")
    console.name_input.fill("oops")
    console.add_button.click()
    expect(console.field_error("key-text")).to_have_text(
        "Paste a public key, or choose a .pub file"
    )
    assert _posts(requests_made) == []


def test_dsa_key_gets_the_api_400_next_to_the_key_field(
    console: ConsolePage,
    api_key: str,
    api: httpx.Client,
    key_corpus: KeyCorpus,
    requests_made: list[Request],
) -> None:
    """If a DSA key is added, then the API's 400 message for publicKey shows next to the key field."""
    console.sign_in(api_key)

    console.add_by_paste("old", key_corpus.keys["dsa"].public_text)

    message = console.field_error("key-text")
    expect(message).to_contain_text("DSA keys are no longer accepted")
    expect(message).to_contain_text("ssh-keygen -t ed25519")
    expect(console.key_input).to_have_attribute("aria-invalid", "true")
    expect(console.key_input).to_be_focused()
    expect(console.field_error("key-name")).to_be_hidden()
    assert len(_posts(requests_made)) == 1
    assert _api_keys(api) == []


@pytest.mark.parametrize(
    ("name", "kind", "field", "message"),
    [
        ("laptop", "ecdsa256", "key-name", 'An SSH key named "laptop" already exists'),
        ("other", "ed25519", "key-text", 'This SSH key is already registered as "laptop"'),
    ],
    ids=["same-name", "same-key"],
)
def test_duplicates_get_the_api_409_next_to_the_field_concerned(
    console: ConsolePage,
    api_key: str,
    api: httpx.Client,
    key_corpus: KeyCorpus,
    name: str,
    kind: str,
    field: str,
    message: str,
) -> None:
    """If a name or key is already registered, then the API's 409 shows next to that field."""
    _add(api, "laptop", key_corpus.keys["ed25519"].public_line)
    console.sign_in(api_key)

    console.add_by_paste(name, key_corpus.keys[kind].public_text)

    expect(console.field_error(field)).to_contain_text(message)
    expect(console.page.locator(f"#{field}")).to_be_focused()
    expect(console.rows).to_have_count(1)


def test_invalid_name_gets_the_api_400_next_to_the_name_field(
    console: ConsolePage, api_key: str, key_corpus: KeyCorpus
) -> None:
    """If the name breaks the API's rules, then its 400 detail for name shows next to the name field."""
    console.sign_in(api_key)

    console.add_by_paste("x" * 129, key_corpus.keys["ed25519"].public_text)

    expect(console.field_error("key-name")).to_have_text(
        "name is 129 characters long; use at most 128"
    )
    expect(console.name_input).to_be_focused()
    expect(console.field_error("key-text")).to_be_hidden()
