"""The console's "Get certificate": a short-lived SSH certificate of a key, shown and copied."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.sync_api import expect

from tests.browser.pages import ConsolePage
from tests.ca.conftest import read_certificate
from tests.support import keygen


def _add(api: httpx.Client, name: str, public_key: str) -> str:
    response = api.post("/gpu-cloud/ssh-keys", json={"name": name, "publicKey": public_key})
    assert response.status_code == 201, response.text
    key_id: str = response.json()["_id"]
    return key_id


def test_get_certificate_shows_it_with_its_validity_and_copies_it(
    console: ConsolePage, api_key: str, api: httpx.Client, tmp_path: Path
) -> None:
    """If "Get certificate" is used on a key with 1 hour chosen, then the dialog shows a
    certificate that ssh-keygen reads as that key's, its validity and serial, the copy
    button puts the certificate on the clipboard, and the key's "Last used" is set."""
    key = keygen.generate(tmp_path, "ed25519", "alice@laptop")
    _add(api, "laptop", key.public_text)
    console.sign_in(api_key)
    page = console.page
    page.get_by_role("button", name="Get a certificate for laptop").click()
    dialog = page.get_by_role("dialog", name="SSH certificate for “laptop”")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Valid for").select_option("1h")
    dialog.get_by_role("button", name="Get certificate").click()
    text = dialog.get_by_label("Certificate", exact=True)
    expect(text).to_have_value(re.compile(r"^ssh-ed25519-cert-v01@openssh\.com \S+ alice@laptop$"))
    certificate = text.input_value()
    read = read_certificate(tmp_path, certificate)
    assert read.public_key.split()[1] == keygen.fingerprint(tmp_path, key.public_text, "sha256")[1]
    expect(dialog.locator("#cert-serial")).to_have_text(read.serial)
    expect(dialog.locator("#cert-principal")).to_have_text(read.principals[0])
    valid_before = dialog.locator("#cert-valid-before")
    assert valid_before.get_attribute("datetime") == read.valid_to + ".000Z"
    assert dialog.locator("#cert-valid-after").get_attribute("datetime") == (
        read.valid_from + ".000Z"
    )
    expect(dialog.locator("#cert-validity")).to_contain_text("Valid from")
    expect(console.status).to_contain_text("valid until")
    dialog.get_by_role("button", name="Copy certificate").click()
    expect(dialog.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == certificate
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Get a certificate for laptop")).to_be_focused()
    # A certificate is a use of the key: the list, drawn again, says so.
    expect(console.row("laptop").locator('[data-label="Last used"]')).not_to_have_text("Never")


def test_a_refused_validity_is_shown_beside_the_choice(
    console: ConsolePage, api_key: str, api: httpx.Client, tmp_path: Path
) -> None:
    """If the server's maximum is 8 h and 24 hours are chosen, then the dialog shows the
    server's reason beside "Valid for", and no certificate."""
    key = keygen.generate(tmp_path, "ed25519", "alice@desktop")
    _add(api, "desktop", key.public_text)
    console.sign_in(api_key)
    page = console.page
    page.get_by_role("button", name="Get a certificate for desktop").click()
    dialog = page.get_by_role("dialog", name="SSH certificate for “desktop”")
    dialog.get_by_label("Valid for").select_option("24h")
    dialog.get_by_role("button", name="Get certificate").click()
    expect(dialog.locator("#cert-valid-for-error")).to_contain_text("from 30s to 8h")
    expect(dialog.get_by_label("Valid for")).to_have_attribute("aria-invalid", "true")
    expect(dialog.locator("#cert-result")).to_be_hidden()
