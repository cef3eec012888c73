"""The main flow by keyboard alone in Chromium: sign in, add a company, a domain and a contact, open
the contact, reach the composer and the outbox, sign out. Every stop on the way is visible and shows
where focus is, the first Tab stop skips to the content, and Tab and Shift+Tab walk the page in
order without getting stuck."""

from __future__ import annotations

import pytest
from playwright.sync_api import Dialog, Locator, Page, expect

from tests.conftest import Team

pytestmark = pytest.mark.browser

# What the focused element looks like: where it sits in the document (its position among all
# elements, so the order of Tab stops can be compared), whether it is visible, and whether it shows a
# focus indicator (an outline or a box shadow, as keyboard focus draws it under :focus-visible).
FOCUSED = """() => {
  const el = document.activeElement;
  if (el === null || el === document.body) return null;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  return {
    position: Array.prototype.indexOf.call(document.getElementsByTagName("*"), el),
    label: (el.getAttribute("aria-label") || el.textContent || el.getAttribute("name") || el.tagName).trim(),
    visible: el.checkVisibility() && box.width > 0 && box.height > 0
      && box.bottom > 0 && box.right > 0 && box.top < innerHeight && box.left < innerWidth,
    keyboard: el.matches(":focus-visible"),
    indicator: (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0)
      || style.boxShadow !== "none",
  };
}"""
MOST_STOPS = 80


def focused(page: Page) -> dict[str, object] | None:
    result: dict[str, object] | None = page.evaluate(FOCUSED)
    return result


def assert_shown(page: Page) -> dict[str, object]:
    state = focused(page)
    assert state is not None, "focus left the page"
    assert state["visible"], f"{state['label']!r} has focus but cannot be seen"
    assert state["keyboard"], f"{state['label']!r} has focus that does not show as keyboard focus"
    assert state["indicator"], f"{state['label']!r} shows no focus indicator"
    return state


def tab_to(page: Page, target: Locator, key: str = "Tab") -> None:
    """Press Tab (or Shift+Tab) until the target has focus, checking every stop on the way."""
    for _ in range(MOST_STOPS):
        page.keyboard.press(key)
        assert_shown(page)
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{MOST_STOPS} presses of {key} never reached {target}")


def walk(page: Page, key: str) -> list[str]:
    """Every Tab stop from the focus onwards, in the direction of the key, until focus leaves the
    page or wraps round to its other end. Each is visible with a focus indicator and comes after
    (before, with Shift+Tab) the last in the document, so where the walk ends shows that focus was
    never stuck and never jumped back."""
    labels: list[str] = []
    last = focused(page)
    for _ in range(MOST_STOPS):
        page.keyboard.press(key)
        state = focused(page)
        if state is None:
            return labels
        assert_shown(page)
        if last is not None:
            forwards = int(str(state["position"])) > int(str(last["position"]))
            if forwards != (key == "Tab"):
                return labels
        labels.append(str(state["label"]))
        last = state
    raise AssertionError(f"focus stayed on the page after {MOST_STOPS} presses of {key}: {labels[-5:]}")


def test_the_main_flow_by_keyboard_alone(page: Page, live_server: str, team: Team) -> None:
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(f"{live_server}/companies")
    expect(page).to_have_url(f"{live_server}/login?next=/companies")

    # The login page puts focus in its first field; the skip link sits before it.
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    assert_shown(page)
    tab_to(page, page.get_by_label("Email"))
    page.keyboard.type("admin@team-a.example")
    page.keyboard.press("Tab")
    page.keyboard.type("admin-password-123")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Log in")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_server}/companies")

    # The first Tab stop is the skip link, shown when focused; it moves focus to the content.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    assert_shown(page)
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Name or domain")).to_be_focused()

    # The whole page both ways: in order, every stop seen, and out the far end.
    forwards = walk(page, "Tab")
    assert forwards[-1] == "Import", forwards
    backwards = walk(page, "Shift+Tab")
    assert backwards[-1] == "Skip to content", backwards
    assert "Log out" in backwards
    assert "Companies" in backwards

    # A new company: type its name and domain, choose an owner with the arrow keys, press Space.
    page.keyboard.press("Tab")
    form = page.locator("#new-company")
    tab_to(page, form.get_by_label("Name"))
    page.keyboard.type("Keys Limited")
    page.keyboard.press("Tab")
    page.keyboard.type("keys.example")
    page.keyboard.press("Tab")
    owner = form.get_by_label("Account owner")
    expect(owner).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(owner).not_to_have_value("")
    tab_to(page, form.get_by_role("button", name="Create company"))
    page.keyboard.press("Space")
    expect(page.get_by_role("heading", name="Keys Limited", exact=True)).to_be_visible()

    # A domain, sent with Enter from its field.
    tab_to(page, page.get_by_label("Add a domain"))
    page.keyboard.type("keys.co.uk")
    page.keyboard.press("Enter")
    expect(page.locator("#domains")).to_contain_text("keys.co.uk")

    # A contact, added from the company page and opened from its table.
    add = page.locator("#add-contact")
    tab_to(page, add.get_by_label("Email"))
    page.keyboard.type("kim@keys.example")
    page.keyboard.press("Tab")
    page.keyboard.type("Kim Keys")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Contact kim@keys.example added")
    tab_to(page, page.get_by_role("link", name="Kim Keys"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Kim Keys")).to_be_visible()

    # A confirmation is a native dialog, answered from the keyboard; declining keeps the contact.
    questions: list[str] = []

    def decline(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", decline)
    tab_to(page, page.get_by_role("button", name="Delete contact"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Kim Keys")).to_be_visible()
    assert questions == ["Delete the contact kim@keys.example? This cannot be undone."]

    # The composer, then the outbox from the header, going back with Shift+Tab.
    contact_page = page.url
    tab_to(page, page.get_by_role("link", name="Write an email"), key="Shift+Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{contact_page}/compose")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    tab_to(page, page.get_by_role("navigation").get_by_role("link", name="Outbox"), key="Shift+Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_server}/outbox")

    # Out.
    tab_to(page, page.get_by_role("button", name="Log out"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_server}/login")
