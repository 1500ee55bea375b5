"""Browser tests: Debian's Chromium, driven by Playwright, against a real `gpucloud serve`.

Playwright's own browser download does not work here, so the tests launch the system's
`/usr/bin/chromium` (`apt-get install chromium`). Without it they are skipped, with the
reason, unless GPUCLOUD_TEST_REQUIRE_BROWSER=1 (set by .ci/run), which makes them fail.

Playwright's sync API runs an event loop of its own, so the browser lives for this
package only (scope="package"), and closes before the async tests of other packages run.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    ViewportSize,
    sync_playwright,
)

from gpucloud.ca import keys
from tests.browser.pages import ConsolePage
from tests.support import databases
from tests.support.keyfixtures import key_corpus  # re-exported: a session fixture
from tests.support.server import GPUCLOUD, ServerProcess

__all__ = ["key_corpus"]

# Debian's package; GPUCLOUD_TEST_CHROMIUM names another Chromium build if need be.
CHROMIUM = Path(os.environ.get("GPUCLOUD_TEST_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_BROWSER = os.environ.get("GPUCLOUD_TEST_REQUIRE_BROWSER") == "1"
# As this machine needs it: no sandbox (root), no GPU, and none of the background
# connections to Google's hosts, which the closed network refuses. Playwright gives
# every launch a fresh, empty profile (user data dir) of its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
# The tests provoke 4xx answers on purpose; Chromium logs each one as a console error.
_EXPECTED_CONSOLE_ERROR = re.compile(
    r"^Failed to load resource: the server responded with a status of 4\d\d"
)
# Records every CSP violation the page reports, before any of the page's own code runs.
_CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective}: ${event.blockedURI}`);
});
"""


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless; skips (or fails in CI) when it is not installed."""
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM}; install it with: apt-get install chromium"
        if REQUIRE_BROWSER:
            pytest.fail(f"GPUCLOUD_TEST_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@dataclass(frozen=True)
class ConsoleServer:
    """A real `gpucloud serve` process and the database it serves."""

    process: ServerProcess
    database_url: str

    @property
    def url(self) -> str:
        return self.process.url

    def cli(self, *args: str) -> str:
        """Run `gpucloud …` on the server's database; returns its stdout."""
        env = {**os.environ, "GPUCLOUD_DATABASE_URL": self.database_url}
        result = subprocess.run(
            [GPUCLOUD, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, f"gpucloud {' '.join(args)}: {result.stderr}"
        return result.stdout

    def new_api_key(self, owner: str) -> str:
        """The secret of a new API key of `owner`, made by `gpucloud api-keys create`."""
        return self.cli("api-keys", "create", "--owner", owner).strip()


@pytest.fixture(scope="package")
def console_server(
    sqlite_template: databases.SQLiteTemplate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsoleServer]:
    """One server for the package, on an SQLite copy; each test is a new owner on it."""
    directory = tmp_path_factory.mktemp("console-server")
    database_url = sqlite_template.copy_to(directory)
    ca_key_file = directory / "ca" / "ssh_ca"
    keys.init(ca_key_file)
    env = {
        "GPUCLOUD_LOG_FORMAT": "text",
        # The console's "Get certificate" (test_certificates.py); a maximum of 8 h, so
        # that its 24-hour choice shows how a refusal looks.
        "GPUCLOUD_SSH_CA_KEY_FILE": str(ca_key_file),
        "GPUCLOUD_SSH_CERT_MAX_VALIDITY": "8h",
    }
    process = ServerProcess(database_url, directory / "server.log", env=env).start()
    yield ConsoleServer(process, database_url)
    process.stop()


@pytest.fixture
def api_key(console_server: ConsoleServer) -> str:
    """An API key of a new owner, who has no SSH keys yet."""
    return console_server.new_api_key(f"user-{secrets.token_hex(4)}")


@pytest.fixture
def api(console_server: ConsoleServer, api_key: str) -> Iterator[httpx.Client]:
    """An HTTP client with the same API key, to set the scene and to check the results."""
    with httpx.Client(
        base_url=console_server.url, headers={"x-api-key": api_key}, timeout=10
    ) as client:
        yield client


@dataclass
class PageProblems:
    """What went wrong in the page: script errors, console errors, CSP violations."""

    errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not _EXPECTED_CONSOLE_ERROR.match(message.text):
            self.errors.append(f"console error: {message.text}")


@pytest.fixture
def requests_made() -> list[Request]:
    """Every request the page makes, in order (filled by the `page` fixture)."""
    return []


@pytest.fixture
def page(
    chromium: Browser, console_server: ConsoleServer, requests_made: list[Request]
) -> Iterator[Page]:
    """A fresh browser context (empty storage, no cookies) on the server.

    When the test ends, it fails if the page threw, logged an unexpected console error or
    reported a Content-Security-Policy violation.
    """
    context = chromium.new_context(base_url=console_server.url, viewport=VIEWPORT)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    context.add_init_script(_CSP_LISTENER)
    new_page = context.new_page()
    problems = PageProblems()
    new_page.on("console", problems.on_console)
    new_page.on("pageerror", lambda error: problems.errors.append(f"page error: {error}"))
    new_page.on("request", lambda request: requests_made.append(request))
    yield new_page
    if not new_page.is_closed() and new_page.url.startswith(console_server.url):
        violations = new_page.evaluate("window.__cspViolations ?? []")
        problems.errors.extend(f"CSP violation: {v}" for v in violations)
    context.close()
    assert problems.errors == [], "the page reported problems"


@pytest.fixture
def console(page: Page) -> ConsolePage:
    """The console page, opened and signed out."""
    return ConsolePage(page).open()
