"""The /console page itself: how it is served, and how it holds up on a small screen."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from gpucloud.app import HTML_CSP
from tests.browser.conftest import ConsoleServer
from tests.browser.pages import ConsolePage
from tests.support import keygen

ASSETS = {
    "/console/static/console.js": "text/javascript",
    "/console/static/console.css": "text/css",
}


def test_page_is_served_with_the_strict_csp(console_server: ConsoleServer) -> None:
    """If /console is fetched, then it is HTML under the strict CSP, with no inline script or style."""
    response = httpx.get(f"{console_server.url}/console")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == HTML_CSP
    html = response.text
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, "an inline <script>"
    assert "<style" not in html, "an inline <style> element"
    assert re.search(r"\sstyle=", html) is None, "an inline style attribute"
    assert re.search(r"\son[a-z]+=", html) is None, "an inline event handler"


@pytest.mark.parametrize(("path", "media_type"), ASSETS.items())
def test_static_files_are_served_from_the_package(
    console_server: ConsoleServer, path: str, media_type: str
) -> None:
    """If an asset of the page is fetched, then it comes with its media type, and again costs a 304."""
    response = httpx.get(f"{console_server.url}{path}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["cache-control"] == "no-cache"
    again = httpx.get(
        f"{console_server.url}{path}", headers={"if-none-match": response.headers["etag"]}
    )
    assert again.status_code == 304


def test_console_is_not_in_the_api_document(console_server: ConsoleServer) -> None:
    """If the OpenAPI document is read, then the console's routes are not in it."""
    paths = httpx.get(f"{console_server.url}/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/console")]


def test_loading_state_shows_until_the_list_arrives(
    page: Page, api_key: str, api: httpx.Client, tmp_path: Path
) -> None:
    """If the list is slow to come, then a busy loading state shows until it arrives."""
    public_key = keygen.generate(tmp_path, "ed25519").public_line
    api.post("/gpu-cloud/ssh-keys", json={"name": "x", "publicKey": public_key})
    held: list[Route] = []
    page.add_init_script(f"sessionStorage.setItem('gpucloud.console.apiKey', {api_key!r})")
    page.route("**/gpu-cloud/ssh-keys", lambda route: held.append(route))
    console = ConsolePage(page).open()
    loading = page.get_by_text("Loading SSH keys…")
    expect(loading).to_be_visible()
    expect(page.locator("#keys-card")).to_have_attribute("aria-busy", "true")
    assert len(held) == 1
    held[0].continue_()
    expect(loading).to_be_hidden()
    expect(console.rows).to_have_count(1)
    expect(page.locator("#keys-card")).not_to_have_attribute("aria-busy", "true")


def test_small_screen_shows_each_key_as_a_card(
    page: Page, api_key: str, api: httpx.Client, tmp_path: Path
) -> None:
    """If the window is phone-sized, then nothing scrolls sideways and every action is in view."""
    public_key = keygen.generate(tmp_path, "ed25519").public_line
    api.post("/gpu-cloud/ssh-keys", json={"name": "laptop", "publicKey": public_key})
    page.set_viewport_size({"width": 390, "height": 844})
    console = ConsolePage(page).open()
    console.sign_in(api_key)
    expect(console.rows).to_have_count(1)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    table_region = page.get_by_role("region", name="Your SSH keys")
    assert table_region.evaluate("e => e.scrollWidth <= e.clientWidth")
    for name in ("Copy fingerprint of laptop", "Rename laptop", "Delete laptop"):
        expect(page.get_by_role("button", name=name)).to_be_in_viewport(ratio=1)
    # Restyled as cards, it is still a table to assistive technology.
    expect(page.get_by_role("columnheader", name="Fingerprint (SHA256)")).to_have_count(1)
    expect(page.get_by_role("rowheader")).to_have_count(1)
