"""The README's screenshot of the console: taken by every run, kept only on purpose.

A test run writes the picture to a temporary directory, so that `make test` leaves the
clone as it found it; `make screenshot` sets GPUCLOUD_SCREENSHOT to the tracked
docs/images/console.png to refresh the README's picture.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import VIEWPORT
from tests.browser.pages import ConsolePage
from tests.support import keygen

SCREENSHOT_ENV = "GPUCLOUD_SCREENSHOT"


def test_readme_screenshot_is_regenerated(
    console: ConsolePage, api_key: str, api: httpx.Client, tmp_path: Path
) -> None:
    """If three keys of different types are listed, then the README's screenshot is taken of that page."""
    for name, kind, comment in (
        ("workstation", "rsa4096", "alice@workstation"),
        ("laptop", "ed25519", "alice@laptop"),
        ("ci-runner", "ecdsa256", "deploy@ci-runner"),
    ):
        public_key = keygen.generate(tmp_path, kind, comment).public_line
        response = api.post("/gpu-cloud/ssh-keys", json={"name": name, "publicKey": public_key})
        assert response.status_code == 201
    console.sign_in(api_key)
    page = console.page
    page.get_by_role("button", name="Make laptop the default key").focus()
    page.keyboard.press("Enter")
    expect(console.status).to_have_text("“laptop” is now your default key")
    assert console.default_names() == ["laptop"]
    # No focus ring and no hover: the page as it rests.
    page.evaluate("document.activeElement.blur()")
    page.mouse.move(2, 70)

    screenshot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "console.png")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=screenshot, full_page=True, animations="disabled")

    header = screenshot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert width == VIEWPORT["width"]
    assert height >= 600
