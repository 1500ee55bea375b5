"""The console with the keyboard alone: every task reachable, the focus where the task ends."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.browser.pages import ConsolePage, tab_to
from tests.support.keygen import KeyCorpus


def test_every_task_can_be_done_with_the_keyboard_alone(
    console: ConsolePage, api_key: str, api: httpx.Client, key_corpus: KeyCorpus
) -> None:
    """If only the keyboard is used, then sign-in, add, make default, rename, delete and sign-out all work."""
    for name, kind in (("laptop", "ed25519"), ("workstation", "rsa2048")):
        response = api.post(
            "/gpu-cloud/ssh-keys",
            json={"name": name, "publicKey": key_corpus.keys[kind].public_line},
        )
        assert response.status_code == 201
    page = console.page
    keyboard = page.keyboard

    keyboard.press("Tab")
    skip_link = page.get_by_role("link", name="Skip to content")
    expect(skip_link).to_be_focused()
    expect(skip_link).to_be_in_viewport()

    tab_to(page, console.api_key_input)
    keyboard.type(api_key)
    keyboard.press("Enter")
    expect(console.keys_heading).to_be_focused()
    expect(console.rows).to_have_count(2)

    # Add a key: the name, the pasted key, Enter on the button.
    tab_to(page, console.name_input)
    keyboard.type("ci-runner")
    tab_to(page, console.key_input)
    keyboard.insert_text(key_corpus.keys["ecdsa256"].public_line)
    tab_to(page, console.add_button)
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "a focused button shows a focus ring"
    keyboard.press("Enter")
    expect(console.name_cell("ci-runner")).to_be_focused()
    expect(console.rows).to_have_count(3)

    # Make another key the default: back up the table to its button.
    tab_to(
        page, page.get_by_role("button", name="Make workstation the default key"), backwards=True
    )
    keyboard.press("Enter")
    expect(console.name_cell("workstation")).to_be_focused()
    assert console.default_names() == ["workstation"]

    # Rename in the dialog: the name is selected, so typing replaces it.
    tab_to(page, page.get_by_role("button", name="Rename workstation"))
    keyboard.press("Enter")
    expect(console.rename_dialog.get_by_label("New name")).to_be_focused()
    keyboard.type("big-box")
    keyboard.press("Enter")
    expect(console.rename_dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Rename big-box")).to_be_focused()

    # Delete: Escape cancels and gives the focus back; then confirm.
    delete_button = page.get_by_role("button", name="Delete big-box")
    tab_to(page, delete_button)
    keyboard.press("Enter")
    expect(console.delete_dialog.get_by_role("button", name="Cancel")).to_be_focused()
    keyboard.press("Escape")
    expect(console.delete_dialog).to_be_hidden()
    expect(delete_button).to_be_focused()
    keyboard.press("Enter")
    tab_to(page, console.delete_dialog.get_by_role("button", name="Delete key"))
    keyboard.press("Enter")
    expect(console.row("big-box")).to_have_count(0)
    expect(console.name_cell("ci-runner")).to_be_focused()
    assert sorted(k["name"] for k in api.get("/gpu-cloud/ssh-keys").json()) == [
        "ci-runner",
        "laptop",
    ]

    tab_to(page, page.get_by_role("button", name="Sign out"), backwards=True)
    keyboard.press("Enter")
    expect(console.signin_heading).to_be_focused()
