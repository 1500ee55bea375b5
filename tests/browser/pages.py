"""The console as a user sees it: found by role and label, as a screen reader finds it."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Locator, Page, expect


class ConsolePage:
    """Actions and parts of the /console page."""

    def __init__(self, page: Page) -> None:
        self.page = page

    def open(self) -> ConsolePage:
        self.page.goto("/console")
        return self

    # Signing in and out

    @property
    def api_key_input(self) -> Locator:
        return self.page.get_by_label("API key", exact=True)

    @property
    def api_key_error(self) -> Locator:
        return self.page.locator("#api-key-error")

    @property
    def signin_heading(self) -> Locator:
        return self.page.get_by_role("heading", name="Sign in to the console", level=1)

    @property
    def signin_notice(self) -> Locator:
        return self.page.locator("#signin-notice")

    @property
    def keys_heading(self) -> Locator:
        return self.page.get_by_role("heading", name="SSH keys", level=1)

    def sign_in(self, api_key: str) -> None:
        """Sign in and wait for the list of keys."""
        self.api_key_input.fill(api_key)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.keys_heading).to_be_visible()
        expect(self.page.locator("#keys-loading")).to_be_hidden()

    def sign_out(self) -> None:
        self.page.get_by_role("button", name="Sign out").click()
        expect(self.signin_heading).to_be_visible()

    # The list

    @property
    def status(self) -> Locator:
        return self.page.get_by_role("status")

    @property
    def rows(self) -> Locator:
        return self.page.locator("#keys-body tr")

    @property
    def empty_state(self) -> Locator:
        return self.page.get_by_text("No SSH keys yet")

    def _name(self, name: str) -> Locator:
        return self.page.locator(".key-name", has_text=re.compile(rf"^{re.escape(name)}$"))

    def row(self, name: str) -> Locator:
        """The table row of the key named exactly `name`."""
        return self.rows.filter(has=self._name(name))

    def name_cell(self, name: str) -> Locator:
        """The name of the key, in its row (it takes the focus after an action)."""
        return self.row(name).locator(".key-name")

    def fingerprint_of(self, name: str) -> str:
        return self.row(name).locator(".fingerprint").inner_text()

    def cells_of(self, name: str) -> list[str]:
        """Type, bits, fingerprint and created, as shown."""
        return [cell.strip() for cell in self.row(name).locator("td").all_inner_texts()[:4]]

    def default_names(self) -> list[str]:
        """The names of the rows that show the Default badge."""
        return [
            row.locator(".key-name").inner_text()
            for row in self.rows.filter(has=self.page.locator(".badge", has_text="Default")).all()
        ]

    # Adding a key

    @property
    def name_input(self) -> Locator:
        return self.page.get_by_label("Name", exact=True)

    @property
    def key_input(self) -> Locator:
        return self.page.get_by_label("Public key", exact=True)

    @property
    def expiry_select(self) -> Locator:
        return self.page.get_by_label("Expires", exact=True)

    def expiry_of(self, name: str) -> str:
        """The Expires cell of the key's row, as shown."""
        return self.row(name).locator("td.expires").inner_text().strip()

    def last_use_of(self, name: str) -> str:
        """The Last used cell of the key's row, as shown."""
        return self.row(name).locator("td.last-used").inner_text().strip()

    @property
    def file_input(self) -> Locator:
        return self.page.get_by_label("Or choose a .pub file")

    @property
    def add_button(self) -> Locator:
        return self.page.get_by_role("button", name="Add key", exact=True)

    def field_error(self, input_id: str) -> Locator:
        """The message shown under the input with this id."""
        return self.page.locator(f"#{input_id}-error")

    def add_by_paste(self, name: str, public_text: str) -> None:
        self.name_input.fill(name)
        self.key_input.fill(public_text)
        self.add_button.click()

    def add_from_file(self, path: Path, name: str | None = None) -> None:
        if name is not None:
            self.name_input.fill(name)
        self.file_input.set_input_files(path)
        self.add_button.click()

    # Row actions and their dialogs

    def make_default(self, name: str) -> None:
        self.page.get_by_role("button", name=f"Make {name} the default key").click()

    @property
    def rename_dialog(self) -> Locator:
        return self.page.get_by_role("dialog", name="Rename SSH key")

    @property
    def delete_dialog(self) -> Locator:
        return self.page.get_by_role("dialog", name="Delete SSH key?")

    def open_rename(self, name: str) -> None:
        self.page.get_by_role("button", name=f"Rename {name}", exact=True).click()
        expect(self.rename_dialog).to_be_visible()

    def rename(self, name: str, new_name: str) -> None:
        self.open_rename(name)
        self.rename_dialog.get_by_label("New name").fill(new_name)
        self.rename_dialog.get_by_role("button", name="Save").click()

    def open_delete(self, name: str) -> None:
        self.page.get_by_role("button", name=f"Delete {name}", exact=True).click()
        expect(self.delete_dialog).to_be_visible()

    def delete(self, name: str) -> None:
        self.open_delete(name)
        self.delete_dialog.get_by_role("button", name="Delete key").click()


def is_focused(locator: Locator) -> bool:
    result: bool = locator.evaluate("element => element === document.activeElement")
    return result


def tab_to(page: Page, target: Locator, *, limit: int = 40, backwards: bool = False) -> None:
    """Press Tab (or Shift+Tab) until `target` has the focus; fails after `limit` presses."""
    key = "Shift+Tab" if backwards else "Tab"
    for _ in range(limit):
        if is_focused(target):
            return
        page.keyboard.press(key)
    assert is_focused(target), f"{target} was not reached with {limit} presses of {key}"
