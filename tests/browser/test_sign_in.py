"""Signing in and out: the API key lives in sessionStorage and the x-api-key header only."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import ConsoleServer
from tests.browser.pages import ConsolePage
from tests.support import keygen

STORAGE_KEY = "gpucloud.console.apiKey"
UNKNOWN_KEY = "gck_" + "A" * 43


def _stored_key(page: Page) -> str | None:
    value: str | None = page.evaluate(f"sessionStorage.getItem({STORAGE_KEY!r})")
    return value


def test_signed_out_page_asks_for_an_api_key(
    console: ConsolePage, requests_made: list[Request]
) -> None:
    """If nobody has signed in, then the page shows only the labelled API-key form and calls no API."""
    expect(console.signin_heading).to_be_visible()
    expect(console.api_key_input).to_have_attribute("type", "password")
    expect(console.keys_heading).to_be_hidden()
    expect(console.page.get_by_role("button", name="Sign out")).to_be_hidden()
    assert not [r for r in requests_made if "/gpu-cloud/" in r.url]


def test_refused_api_keys_are_explained_next_to_the_field(console: ConsolePage) -> None:
    """If the API refuses the key (403 or 404), then its message shows next to the field."""
    sign_in = console.page.get_by_role("button", name="Sign in")
    sign_in.click()
    expect(console.api_key_error).to_have_text("Enter your API key")

    console.api_key_input.fill("not-a-key")
    sign_in.click()
    expect(console.api_key_error).to_contain_text("API key invalid")
    expect(console.api_key_input).to_have_attribute("aria-invalid", "true")
    expect(console.api_key_input).to_be_focused()

    console.api_key_input.fill(UNKNOWN_KEY)
    sign_in.click()
    expect(console.api_key_error).to_contain_text("API key not found")
    expect(console.keys_heading).to_be_hidden()
    assert _stored_key(console.page) is None


def test_signing_in_shows_the_empty_state(console: ConsolePage, api_key: str) -> None:
    """If an owner with no keys signs in, then the empty state shows, and the focus is on the title."""
    console.sign_in(api_key)
    expect(console.empty_state).to_be_visible()
    expect(console.rows).to_have_count(0)
    expect(console.page.get_by_role("table")).to_be_hidden()
    expect(console.keys_heading).to_be_focused()
    expect(console.status).to_have_text("Signed in. 0 SSH keys.")
    expect(console.page.locator("#session-key-prefix")).to_have_text(api_key[:8] + "…")


def test_api_key_is_kept_in_session_storage_and_sent_as_a_header(
    console: ConsolePage, api_key: str, requests_made: list[Request]
) -> None:
    """If the user signs in, then the key is in sessionStorage and headers only: no URL, cookie or localStorage."""
    console.sign_in(api_key)
    assert _stored_key(console.page) == api_key
    console.page.reload()
    expect(console.keys_heading).to_be_visible()
    expect(console.empty_state).to_be_visible()

    api_calls = [r for r in requests_made if "/gpu-cloud/" in r.url]
    assert len(api_calls) == 2, "one list when signing in, one after the reload"
    assert all(r.headers.get("x-api-key") == api_key for r in api_calls)
    assert not [r.url for r in requests_made if api_key in r.url]
    assert console.page.context.cookies() == []
    assert console.page.evaluate("localStorage.length") == 0


def test_signing_out_forgets_the_key(
    console: ConsolePage, api_key: str, requests_made: list[Request]
) -> None:
    """If the user signs out, then the key is gone from the tab and a reload stays signed out."""
    console.sign_in(api_key)
    console.sign_out()
    expect(console.signin_notice).to_contain_text("You have signed out")
    expect(console.signin_heading).to_be_focused()
    expect(console.rows).to_have_count(0)
    assert _stored_key(console.page) is None
    calls_before = len(requests_made)
    console.page.reload()
    expect(console.signin_heading).to_be_visible()
    assert not [r for r in requests_made[calls_before:] if "/gpu-cloud/" in r.url]


def test_revoked_api_key_returns_to_sign_in(
    console: ConsolePage,
    api_key: str,
    api: httpx.Client,
    console_server: ConsoleServer,
    tmp_path: Path,
) -> None:
    """If the API key is revoked while signed in, then the next action returns to sign-in, saying why."""
    public_key = keygen.generate(tmp_path, "ed25519").public_line
    api.post("/gpu-cloud/ssh-keys", json={"name": "laptop", "publicKey": public_key})
    console.sign_in(api_key)
    console_server.cli("api-keys", "revoke", api_key)

    console.delete("laptop")
    expect(console.signin_heading).to_be_visible()
    expect(console.signin_notice).to_have_text(
        "Your API key was refused (API key invalid). Sign in with a valid API key."
    )
    assert _stored_key(console.page) is None
    expect(console.rows).to_have_count(0)
