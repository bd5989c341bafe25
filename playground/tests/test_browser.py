"""The playground in real headless Chromium against a real uvicorn server (see conftest.py).

Every wait is on a condition in the page (Playwright's auto-waiting `expect` or
`wait_for_function`), never a fixed sleep."""

import json
import uuid

import pytest

from tests.require import require

pytestmark = pytest.mark.browser
try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - depends on the machine
    require(
        False,
        "the playwright package is missing: pip install -r requirements-dev.txt, "
        "and install Chromium: apt-get install -y chromium",
    )

LAST_REPLY = "#messages li.assistant:last-child"
PASSWORD = "a-long-test-password-42"


def sign_up(page: Page) -> str:
    username = f"user-{uuid.uuid4().hex[:8]}"
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#whoami")).to_have_text(username)
    expect(page.locator("#chat-view")).to_be_visible()
    return username


def send(page: Page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_label("Message", exact=True).press("Enter")


def wait_for_reply_longer_than(page: Page, length: int) -> int:
    """Waits until the reply, still streaming, holds more than `length` characters; returns its
    length then."""
    page.wait_for_function(
        """([selector, length]) => {
            const reply = document.querySelector(selector);
            return reply?.dataset.status === "streaming"
                && reply.querySelector(".bubble").textContent.length > length;
        }""",
        arg=[LAST_REPLY, length],
    )
    return page.locator(f"{LAST_REPLY} .bubble").evaluate("bubble => bubble.textContent.length")


def conversation_id(page: Page) -> str:
    page.wait_for_function("() => /^#\\/chat\\/[0-9a-f-]{36}$/.test(location.hash)")
    return page.evaluate("() => location.hash.split('/')[2]")


def test_sign_up_and_watch_a_reply_stream_in(page, console_errors, artifacts):
    sign_up(page)

    question = "Tell me about streaming responses."
    send(page, question)

    expect(page.locator("#messages li.user .bubble")).to_have_text(question)
    first = wait_for_reply_longer_than(page, 0)
    second = wait_for_reply_longer_than(page, first)
    wait_for_reply_longer_than(page, second)  # grew twice while still streaming
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete")
    expect(page.locator(f"{LAST_REPLY} .meta")).to_contain_text("tokens")
    expect(page.locator("#conversations li")).to_have_count(1)
    expect(page.get_by_role("button", name="Regenerate")).to_be_visible()
    page.screenshot(path=artifacts / "chat.png", full_page=True)
    assert console_errors == []


def test_stop_keeps_the_partial_reply_as_interrupted(page, console_errors):
    sign_up(page)
    send(page, "Write a long story about a lighthouse keeper.")
    wait_for_reply_longer_than(page, 0)

    page.get_by_role("button", name="Stop").click()

    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "interrupted")
    partial = page.locator(f"{LAST_REPLY} .bubble").text_content()
    assert partial
    # The server saves the partial reply once it notices the disconnect: wait until it has.
    page.wait_for_function(
        """async (id) => {
            const { access } = JSON.parse(localStorage.getItem("playground.tokens"));
            const response = await fetch(`/api/chat/conversations/${id}/messages/`,
                                         { headers: { Authorization: `Bearer ${access}` } });
            const { results } = await response.json();
            return results.at(-1).status === "interrupted";
        }""",
        arg=conversation_id(page),
        polling=200,
    )

    page.reload()

    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "interrupted")
    expect(page.locator(f"{LAST_REPLY} .meta")).to_contain_text("interrupted")
    assert page.locator(f"{LAST_REPLY} .bubble").text_content().startswith(partial[:10])
    assert console_errors == []


def test_regenerate_rename_and_delete_a_conversation(page, console_errors):
    sign_up(page)
    send(page, "Hello!")
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete")
    sidebar = page.locator("#conversations")

    page.get_by_role("button", name="Regenerate").click()  # replaces the reply, server-side too

    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete")
    page.reload()
    expect(page.locator("#messages > li")).to_have_count(2)

    page.get_by_role("button", name="Rename").click()
    page.get_by_label("Conversation title").fill("Renamed in the browser")
    page.get_by_label("Conversation title").press("Enter")

    expect(page.locator("#chat-title")).to_have_text("Renamed in the browser")
    expect(sidebar.get_by_role("link", name="Renamed in the browser")).to_be_visible()
    page.reload()
    expect(page.locator("#chat-title")).to_have_text("Renamed in the browser")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()

    expect(page.locator("#chat-title")).to_have_text("New chat")
    expect(sidebar.locator("li")).to_have_count(0)
    page.reload()
    expect(sidebar.locator("li")).to_have_count(0)
    assert console_errors == []


def test_run_an_agent_and_see_its_steps_then_its_result(page, console_errors, artifacts):
    sign_up(page)
    page.get_by_role("link", name="Agents").click()
    page.get_by_label("Pattern").select_option("tools")
    page.get_by_label("Math problem").fill("What is 12 * (3 + 4)?")

    page.get_by_role("button", name="Run").click()

    steps = page.locator("#steps > li")
    expect(steps.first).to_contain_text("Problem solving")
    expect(page.locator("#steps > li.tool").first).to_contain_text("Tool: calculate")
    expect(page.locator("#result > dl")).to_be_visible()
    expect(page.locator("#run-title")).to_contain_text("finished")
    statuses = steps.evaluate_all("items => items.map(item => item.dataset.status)")
    assert len(statuses) >= 3 and set(statuses) == {"complete"}, statuses
    expect(page.locator("#result")).to_contain_text("Final answer")
    expect(page.locator("#runs > li")).to_have_count(1)
    page.set_viewport_size({"width": 1280, "height": 2000})  # the pane scrolls: show all of it
    page.screenshot(path=artifacts / "agents.png")
    page.set_viewport_size({"width": 1280, "height": 800})

    page.get_by_role("link", name="New run").click()
    expect(page.locator("#run-output")).to_be_hidden()
    page.locator("#runs a").first.click()  # a past run reopens with its steps and its result
    expect(page.locator("#steps > li").first).to_contain_text("Problem solving")
    expect(page.locator("#result")).to_contain_text("Final answer")

    page.get_by_role("link", name="Usage").click()  # the run's tokens are accounted
    expect(page.locator("#usage-rows")).to_contain_text("agents:tools")
    assert console_errors == []


def test_errors_are_explained(page, console_errors):
    """A 429 shows how long to wait and gives the message back; a failure mid-stream marks the
    reply failed; a 401 asks to log in again. (The API's answers are stood in for by routes, to
    make each happen on demand.)"""
    sign_up(page)
    page.route(
        "**/api/chat/stream/",
        lambda route: route.fulfill(
            status=429,
            headers={"Retry-After": "42"},
            json={"error": {"code": "rate_limited", "message": "Rate limit exceeded."}},
        ),
    )
    send(page, "Too fast")

    expect(page.locator("#chat-error")).to_have_text(
        "Too many requests: wait 42 seconds and try again."
    )
    expect(page.get_by_label("Message", exact=True)).to_have_value("Too fast")
    expect(page.locator("#messages > li")).to_have_count(0)

    frames = [
        {"type": "start", "messageId": "m1", "messageMetadata": {"conversationId": None}},
        {"type": "text-start", "id": "t"},
        {"type": "text-delta", "id": "t", "delta": "Half a rep"},
        {"type": "error", "errorText": "The model stopped answering."},
    ]
    body = "".join(f"data: {json.dumps(frame)}\n\n" for frame in frames) + "data: [DONE]\n\n"
    page.unroute("**/api/chat/stream/")
    page.route(
        "**/api/chat/stream/",
        lambda route: route.fulfill(body=body, headers={"Content-Type": "text/event-stream"}),
    )
    page.get_by_label("Message", exact=True).press("Enter")

    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "error")
    expect(page.locator(f"{LAST_REPLY} .bubble")).to_have_text("Half a rep")
    expect(page.locator("#chat-error")).to_have_text(
        "The model failed: The model stopped answering."
    )

    page.unroute("**/api/chat/stream/")
    page.route(
        "**/api/chat/stream/",
        lambda route: route.fulfill(
            status=401,
            json={"error": {"code": "authentication_failed", "message": "Token is invalid."}},
        ),
    )
    send(page, "Still there?")

    expect(page.locator("#auth-view")).to_be_visible()
    expect(page.locator("#auth-error")).to_have_text(
        "Your session has expired: please log in again."
    )
    assert console_errors == [
        f"Failed to load resource: the server responded with a status of {status}"
        for status in ["429 (Too Many Requests)", "401 (Unauthorized)"]
    ]


def test_phone_layout_collapses_the_sidebar(page, console_errors, artifacts):
    page.set_viewport_size({"width": 390, "height": 844})
    sign_up(page)
    send(page, "Hi from a phone")
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete")
    expect(page.locator("#chat-title")).to_have_text("Hi from a phone")  # the server's title
    sidebar = page.locator("#chat-sidebar")
    expect(sidebar).not_to_be_visible()
    page.screenshot(path=artifacts / "chat-phone.png")

    page.get_by_role("button", name="Show list").click()

    expect(sidebar).to_be_visible()
    expect(page.get_by_role("button", name="Show list")).to_have_attribute("aria-expanded", "true")
    page.screenshot(path=artifacts / "chat-phone-sidebar.png")
    sidebar.get_by_role("link", name="Hi from a phone").click()
    expect(sidebar).not_to_be_visible()
    assert console_errors == []
