"""A reviewer works through the review queue in real headless Chromium: logs in to the admin,
filters thumbs-down replies, marks one reviewed with a note, and sees it leave the open queue.
The server is uvicorn in a thread sharing the test's database (`live_server_url`); every wait is
on the page (Playwright's auto-waiting), never a fixed sleep."""

import pytest

from playground.tests.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, browser_missing
from tests.require import require

from .conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    require(False, browser_missing() or "")


@pytest.fixture
def console_errors() -> list[str]:
    return []


@pytest.fixture
def artifacts():
    """test-artifacts/ at the repository root (gitignored), for screenshots."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def report_console_error(message, errors: list[str]) -> None:
    # Chromium asks every site for /favicon.ico; the admin links none, so its 404 is no fault.
    if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
        errors.append(f"{message.text} at {message.location['url']}")


@pytest.fixture
def page(reviewer, queue, live_server_url, console_errors):
    """Chromium on the live server, started after the test's rows are written and stopped before
    they are flushed: Playwright's sync API keeps an event loop current in this thread while it
    runs, and Django refuses database calls from a thread with a running loop."""
    require(browser_missing() is None, browser_missing() or "")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(
            base_url=live_server_url, viewport={"width": 1400, "height": 900}
        )
        context.set_default_timeout(15_000)
        context.on("console", lambda m: report_console_error(m, console_errors))
        context.on("weberror", lambda error: console_errors.append(str(error.error)))
        context.on(
            "response",
            lambda r: r.status >= 400 and console_errors.append(f"{r.status} {r.url}"),
        )
        yield context.new_page()
        browser.close()


def test_a_reviewer_filters_thumbs_down_and_marks_a_reply_reviewed(
    page, reviewer, queue, console_errors, artifacts
):
    page.goto("/admin/review/reply/")
    page.get_by_label("Username").fill(reviewer.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(6)  # the open replies
    expect(page.locator("#changelist-filter")).to_contain_text("open (6)")

    page.get_by_role("link", name="thumbs-down (1)").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Lisbon is the capital of Spain.")
    expect(rows.first).to_contain_text("Wrong country")
    page.screenshot(path=artifacts / "review-queue-thumbs-down.png", full_page=True)

    rows.first.get_by_role("link", name="Lisbon is the capital of Spain.").click()
    expect(page.locator("body")).to_contain_text("Q: Lisbon is the capital of Spain.")
    # The reply's text is shown, not offered for editing.
    expect(page.locator("textarea[name=content], input[name=content]")).to_have_count(0)
    page.get_by_role("textbox", name="Note").fill("Wrong country: checked against the source.")
    page.screenshot(path=artifacts / "review-reply.png", full_page=True)
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    # Back on the open thumbs-down replies: none left (the counts are within thumbs-down).
    expect(page.locator("#changelist-filter")).to_contain_text("open (0)")
    expect(rows).to_have_count(0)
    page.get_by_role("link", name="reviewed (2)").click()
    reviewed = rows.filter(has_text="Lisbon is the capital of Spain.")
    expect(reviewed).to_contain_text(f"reviewed by {reviewer.username} on")
    expect(reviewed).to_contain_text("Wrong country: checked against the source.")
    assert console_errors == []
