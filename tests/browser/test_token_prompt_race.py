"""A refusal that arrives after the token was entered does not ask for it again.

The dashboard's first requests (``/api/info``, the live events) go out without a
token; each 401 shares one prompt.  One whose 401 came back after the prompt had closed
opened the dialog a second time, over a page that had the token already, and left the
page inert under it (seen once in a
fresh clone's suite: the footer said "token ops (admin)" under an open dialog)."""

from __future__ import annotations

import hashlib

from conftest import EXPECTED_REFUSALS  # type: ignore[import-not-found]
from playwright.sync_api import expect


def test_a_late_refusal_is_retried_with_the_token_entered_meanwhile(make_daemon, open_page) -> None:  # type: ignore[no-untyped-def]
    digest = hashlib.sha256(b"adm-1").hexdigest()
    tokens = f'[[daemon.tokens]]\nname = "ops"\nsha256 = "{digest}"\nscopes = ["admin"]\n'
    daemon = make_daemon('[tasks.t]\ncommand = "true"\n', daemon_extra=tokens)
    page, _ = open_page("about:blank", allow=EXPECTED_REFUSALS)
    held = []

    def hold_the_first_without_a_token(route) -> None:  # type: ignore[no-untyped-def]
        if "authorization" not in route.request.headers and not held:
            held.append(route)  # answered later, once the token is in
        else:
            route.continue_()

    page.route("**/api/events*", hold_the_first_without_a_token)
    page.goto(daemon.url + "/")
    dialog = page.get_by_role("dialog", name="API token")
    expect(dialog).to_be_visible()
    for _ in range(200):  # the live events are asked for with /api/info: poll for it
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the live events were not asked for before the token"
    dialog.get_by_label("Token").fill("adm-1")
    dialog.get_by_role("button", name="Use token").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#who")).to_contain_text("token ops (admin)")

    held[0].continue_()  # its 401 arrives now, after the prompt closed
    expect(page.locator('tr[data-task="t"]')).to_be_visible()
    expect(dialog).to_be_hidden()
