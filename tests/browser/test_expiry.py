"""Expiry and last use in the browser: chosen when adding, shown in the list."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser.pages import ConsolePage
from tests.support import keygen


def _keys(api: httpx.Client) -> list[dict[str, Any]]:
    response = api.get("/gpu-cloud/ssh-keys")
    response.raise_for_status()
    keys: list[dict[str, Any]] = response.json()
    return keys


def test_an_expiry_chosen_when_adding_is_sent_and_shown(
    console: ConsolePage, api_key: str, api: httpx.Client, tmp_path: Path
) -> None:
    """If a key is added with "In 90 days", then the API stores an expiry 90 days ahead,
    the row shows it, the status says when it expires, and the form is back to Never."""
    key = keygen.generate(tmp_path, "ed25519", "alice@laptop")
    console.sign_in(api_key)
    console.name_input.fill("laptop")
    console.key_input.fill(key.public_text)
    console.expiry_select.select_option(label="In 90 days")
    before = dt.datetime.now(dt.UTC)
    console.add_button.click()

    expect(console.row("laptop")).to_be_visible()
    [stored] = _keys(api)
    expires = dt.datetime.fromisoformat(stored["expiresAt"])
    assert (
        dt.timedelta(days=90) - dt.timedelta(minutes=1)
        < expires - before
        < dt.timedelta(days=90, minutes=1)
    )
    expect(console.status).to_contain_text("It expires")
    shown = console.row("laptop").locator("td.expires time")
    expect(shown).to_have_attribute("datetime", stored["expiresAt"])
    assert "Expired" not in console.expiry_of("laptop")
    assert console.last_use_of("laptop") == "Never"
    expect(console.expiry_select).to_have_value("")


def test_a_key_without_expiry_says_never_and_an_expired_one_is_marked(
    console: ConsolePage, api_key: str, api: httpx.Client, tmp_path: Path
) -> None:
    """If one key never expires and another has expired, then the list shows Never for the
    first, an Expired badge for the second, and the last use once a login looked it up."""
    forever = keygen.generate(tmp_path, "ed25519", "a@host").public_line
    short = keygen.generate(tmp_path, "ed25519", "b@host").public_line
    api.post("/gpu-cloud/ssh-keys", json={"name": "forever", "publicKey": forever})
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=300)).isoformat()
    created = api.post(
        "/gpu-cloud/ssh-keys", json={"name": "short", "publicKey": short, "expiresAt": soon}
    )
    assert created.status_code == 201, created.text
    lookup = api.get(
        "/gpu-cloud/ssh-keys/authorized_keys", params={"fingerprint": _keys(api)[0]["fingerprint"]}
    )
    assert lookup.text.strip() == forever
    time.sleep(0.4)
    console.sign_in(api_key)

    assert console.expiry_of("forever") == "Never"
    expect(console.row("short").locator("td.expires .badge")).to_have_text("Expired")
    used = _keys(api)[0]["lastUsedAt"]
    expect(console.row("forever").locator("td.last-used time")).to_have_attribute("datetime", used)
    assert console.last_use_of("short") == "Never"
