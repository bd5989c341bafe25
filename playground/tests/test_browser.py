"""The playground in real headless Chromium against a real uvicorn server (see conftest.py).

Every wait is on a condition in the page (Playwright's auto-waiting `expect` or
`wait_for_function`), never a fixed sleep."""

import base64
import json
import struct
import uuid
import zlib

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


def stored_messages(page: Page, conversation: str) -> list[dict]:
    """The conversation's messages as the API returns them (with the page's own token)."""
    return page.evaluate(
        """async (id) => {
            const { access } = JSON.parse(localStorage.getItem("playground.tokens"));
            const response = await fetch(`/api/chat/conversations/${id}/messages/?page_size=500`,
                                         { headers: { Authorization: `Bearer ${access}` } });
            return (await response.json()).results;
        }""",
        conversation,
    )


def png(width: int = 24, height: int = 16, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A valid PNG of one colour, made here (no image library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def image_loaded(page: Page, selector: str) -> None:
    """Waits until the image at `selector` has loaded (a broken image has no natural width)."""
    page.wait_for_function(
        "(selector) => document.querySelector(selector)?.complete"
        " && document.querySelector(selector).naturalWidth > 0",
        arg=selector,
    )


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


def test_stop_keeps_the_partial_reply_as_interrupted(slow_page, console_errors):
    """Stop asks the server to stop the reply (closing the page's own stream alone would not:
    the reply outlives its request), and the partial reply stays, interrupted, after a reload."""
    page = slow_page
    sign_up(page)
    send(page, "Write a long story about a lighthouse keeper.")
    wait_for_reply_longer_than(page, 0)

    with page.expect_response("**/stop/") as stop:
        page.get_by_role("button", name="Stop").click()

    assert stop.value.request.method == "POST"
    assert (stop.value.status, stop.value.json()) == (200, {"stopped": True})
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "interrupted")
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    partial = page.locator(f"{LAST_REPLY} .bubble").text_content()
    assert partial
    conversation = conversation_id(page)
    # The server saves the partial reply as it stops the generation: wait until it has.
    page.wait_for_function(
        """async (id) => {
            const { access } = JSON.parse(localStorage.getItem("playground.tokens"));
            const response = await fetch(`/api/chat/conversations/${id}/messages/`,
                                         { headers: { Authorization: `Bearer ${access}` } });
            const { results } = await response.json();
            return results.at(-1).status === "interrupted";
        }""",
        arg=conversation,
        polling=200,
    )

    page.reload()

    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "interrupted")
    expect(page.locator(f"{LAST_REPLY} .meta")).to_contain_text("interrupted")
    stored = stored_messages(page, conversation)[-1]["content"]
    assert stored.startswith(partial[:10])
    expect(page.locator(f"{LAST_REPLY} .bubble")).to_have_text(stored)
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()  # nothing to resume
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
    title = "Offline title for: Hi from a phone"  # written by the (offline) model
    expect(page.locator("#chat-title")).to_have_text(title)
    sidebar = page.locator("#chat-sidebar")
    expect(sidebar).not_to_be_visible()
    page.screenshot(path=artifacts / "chat-phone.png")

    page.get_by_role("button", name="Show list").click()

    expect(sidebar).to_be_visible()
    expect(page.get_by_role("button", name="Show list")).to_have_attribute("aria-expanded", "true")
    page.screenshot(path=artifacts / "chat-phone-sidebar.png")
    sidebar.get_by_role("link", name=title).click()
    expect(sidebar).not_to_be_visible()
    assert console_errors == []


# Rich turns ---------------------------------------------------------------------------------------


def test_attach_an_image_and_a_text_file_and_see_them_answered(page, console_errors, artifacts):
    """An image chosen with the Attach button and a text file dropped on the message box are
    uploaded, shown in the conversation (a thumbnail, a name with its type), and the offline
    model acknowledges each; the conversation shows them again after a reload."""
    sign_up(page)
    image = png()
    with page.expect_response("**/api/chat/attachments/") as uploaded:
        page.get_by_label("Attach").set_input_files(
            {"name": "red.png", "mimeType": "image/png", "buffer": image}
        )
    assert uploaded.value.status == 201
    page.evaluate(
        """() => {
            const file = new File(["one line of notes\\n"], "notes.txt", { type: "text/plain" });
            const files = new DataTransfer();
            files.items.add(file);
            const drop = new DragEvent("drop", { dataTransfer: files, bubbles: true,
                                                 cancelable: true });
            document.querySelector("#composer").dispatchEvent(drop);
        }"""
    )
    pending = page.locator("#pending-files li")
    expect(pending).to_have_count(2)
    expect(page.locator("#pending-files li.uploaded")).to_have_count(2)
    page.screenshot(path=artifacts / "chat-attachments-pending.png")

    with page.expect_request("**/api/chat/stream/") as sent:
        send(page, "What do these files hold?")

    files = sent.value.post_data_json["files"]
    assert [(f["type"], f["mediaType"], f["filename"]) for f in files] == [
        ("file", "image/png", "red.png"),
        ("file", "text/plain", "notes.txt"),
    ]
    expect(pending).to_have_count(0)
    user = page.locator("#messages li.user").last
    thumbnail = "#messages li.user .attachments img"  # one message in this conversation
    expect(page.locator(thumbnail)).to_have_attribute("alt", "red.png")
    image_loaded(page, thumbnail)  # the signed URL serves the picture to its owner
    expect(user.locator(".attachment.file")).to_contain_text("notes.txt")
    expect(user.locator(".attachment.file .chip")).to_have_text("text/plain")
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete")
    reply = page.locator(f"{LAST_REPLY} .bubble")
    expect(reply).to_contain_text("image/png")
    expect(reply).to_contain_text(str(len(image)))
    expect(reply).to_contain_text("text/plain")
    page.screenshot(path=artifacts / "chat-attachments.png")

    page.reload()

    image_loaded(page, thumbnail)
    expect(page.locator("#messages li.user .attachment.file")).to_contain_text("notes.txt")
    assert console_errors == []


def test_paste_an_image_into_the_message_box(page, console_errors):
    sign_up(page)
    picture = base64.b64encode(png(rgb=(40, 90, 200))).decode()

    page.evaluate(
        """(picture) => {
            const bytes = Uint8Array.from(atob(picture), (char) => char.charCodeAt(0));
            const clipboard = new DataTransfer();
            clipboard.items.add(new File([bytes], "pasted.png", { type: "image/png" }));
            const paste = new ClipboardEvent("paste", { clipboardData: clipboard, bubbles: true,
                                                        cancelable: true });
            document.querySelector("#prompt").dispatchEvent(paste);
        }""",
        picture,
    )

    expect(page.locator("#pending-files li.uploaded")).to_have_count(1)
    expect(page.locator("#pending-files li")).to_contain_text("pasted.png")
    expect(page.get_by_label("Message", exact=True)).to_have_value("")  # no text was pasted
    assert console_errors == []


def test_reasoning_is_folded_until_clicked(page, console_errors, artifacts):
    sign_up(page)
    send(page, "Think about how tides work.")
    wait_for_reply_longer_than(page, 0)
    # While the answer streams, its thinking (streamed before it) is already there, folded.
    thinking = page.locator(f"{LAST_REPLY} details.reasoning")
    assert thinking.evaluate(
        "details => !details.hidden && !details.open && details.textContent.length > 20"
    )
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete")

    for attempt in ("live", "stored"):
        thinking = page.locator(f"{LAST_REPLY} details.reasoning")
        expect(thinking, attempt).to_be_visible()
        expect(thinking, attempt).not_to_have_attribute("open", "")
        expect(thinking.locator(".reasoning-text"), attempt).to_be_hidden()

        thinking.get_by_text("Thinking").click()

        expect(thinking.locator(".reasoning-text"), attempt).to_be_visible()
        text = thinking.locator(".reasoning-text").text_content()
        assert text.strip(), attempt
        bubble = page.locator(f"{LAST_REPLY} .bubble").text_content()
        assert text.strip() not in bubble, attempt  # reasoning is never part of the answer
        if attempt == "live":
            page.screenshot(path=artifacts / "chat-reasoning.png")
            page.reload()
    assert console_errors == []


def test_sources_are_listed_when_web_search_is_on(page, console_errors, artifacts):
    sign_up(page)
    with page.expect_request("**/api/chat/stream/") as plain:
        send(page, "What is the tallest mountain?")
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete")
    assert "webSearch" not in plain.value.post_data_json
    expect(page.locator(f"{LAST_REPLY} .sources")).to_be_hidden()

    page.get_by_label("Web search").check()
    with page.expect_request("**/api/chat/stream/") as searched:
        send(page, "And the deepest lake?")

    assert searched.value.post_data_json["webSearch"] is True
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete")
    links = page.locator(f"{LAST_REPLY} .sources a")
    expect(links.first).to_be_visible()
    hrefs = links.evaluate_all("links => links.map(link => link.href)")
    assert hrefs and all(href.startswith(("https://", "http://")) for href in hrefs), hrefs
    expect(links.first).to_have_attribute("target", "_blank")
    page.screenshot(path=artifacts / "chat-sources.png")

    page.reload()

    expect(page.locator(f"{LAST_REPLY} .sources a")).to_have_count(len(hrefs))
    expect(page.locator("#messages li.assistant").first.locator(".sources")).to_be_hidden()
    assert console_errors == []


def test_markdown_is_rendered_and_no_script_in_a_reply_runs(page, console_errors, artifacts):
    """The offline model repeats the start of the message: a reply holding an image with an
    onerror handler, a script and a javascript: link renders as markdown with none of them
    alive."""
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_up(page)

    send(
        page,
        "**bold** <img src=x onerror=alert(1)> <script>alert(2)</script> "
        "[click](javascript:alert(3)) `code`",
    )

    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete")
    for attempt in ("live", "stored"):
        bubble = page.locator(f"{LAST_REPLY} .bubble")
        expect(bubble.locator("strong"), attempt).to_have_text("bold")
        expect(bubble.locator("code"), attempt).to_have_text("code")
        link = bubble.get_by_text("click")
        expect(link, attempt).to_be_visible()
        assert link.get_attribute("href") is None, attempt  # the javascript: URL is gone
        link.click()
        assert page.locator("#messages img, #messages script, [onerror]").count() == 0, attempt
        assert page.evaluate("() => document.querySelectorAll('[onerror]').length") == 0
        if attempt == "live":
            page.screenshot(path=artifacts / "chat-markdown.png")
            page.reload()
    user = page.locator("#messages li.user .bubble")  # the user's own text is shown as text
    expect(user).to_contain_text("<img src=x onerror=alert(1)>")
    assert dialogs == []
    assert console_errors == []


# Replies that outlive the page -------------------------------------------------------------------


def test_reload_mid_reply_and_see_it_complete(slow_page, console_errors):
    page = slow_page
    sign_up(page)
    send(page, "Tell me a story that takes a while.")
    partial = wait_for_reply_longer_than(page, 0)
    conversation = conversation_id(page)

    page.reload()

    # The reply, still running on the server, is joined: it is seen streaming, then complete.
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "streaming")
    wait_for_reply_longer_than(page, partial)
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(page.locator("#messages > li")).to_have_count(2)  # the same reply, not a second one
    stored = stored_messages(page, conversation)[-1]
    assert stored["status"] == "complete"
    expect(page.locator(f"{LAST_REPLY} .bubble")).to_have_text(stored["content"])
    assert console_errors == []


def test_two_tabs_see_the_same_reply(slow_page, console_errors, artifacts):
    first = slow_page
    sign_up(first)
    send(first, "Explain the water cycle, slowly.")
    wait_for_reply_longer_than(first, 0)
    conversation = conversation_id(first)

    second = first.context.new_page()  # same browser profile: already signed in
    second.goto(f"/#/chat/{conversation}")

    expect(second.locator("#messages li.user .bubble")).to_have_text(
        "Explain the water cycle, slowly."
    )
    expect(second.locator(LAST_REPLY)).to_have_attribute("data-status", "streaming")
    wait_for_reply_longer_than(second, 0)
    for tab in (first, second):
        expect(tab.locator(LAST_REPLY)).to_have_attribute("data-status", "complete", timeout=30_000)
    stored = stored_messages(first, conversation)[-1]["content"]
    for tab in (first, second):
        expect(tab.locator(f"{LAST_REPLY} .bubble")).to_have_text(stored)
    second.screenshot(path=artifacts / "chat-second-tab.png")
    assert console_errors == []


def test_stop_in_one_tab_interrupts_the_reply_in_the_other(slow_page, console_errors):
    first = slow_page
    sign_up(first)
    send(first, "Describe every planet in turn.")
    wait_for_reply_longer_than(first, 0)
    second = first.context.new_page()
    second.goto(f"/#/chat/{conversation_id(first)}")
    wait_for_reply_longer_than(second, 0)

    second.get_by_role("button", name="Stop").click()

    for tab in (second, first):
        expect(tab.locator(LAST_REPLY)).to_have_attribute("data-status", "interrupted")
        expect(tab.locator(f"{LAST_REPLY} .meta")).to_contain_text("interrupted")
        expect(tab.get_by_role("button", name="Send")).to_be_visible()
    assert console_errors == []


def test_a_file_that_is_not_what_it_claims_is_refused(page, console_errors):
    sign_up(page)

    with page.expect_response("**/api/chat/attachments/") as uploaded:
        page.get_by_label("Attach").set_input_files(
            {"name": "fake.png", "mimeType": "image/png", "buffer": b"not a picture at all"}
        )

    assert uploaded.value.status == 400
    expect(page.locator("#chat-error")).to_contain_text("fake.png: ")
    expect(page.locator("#pending-files li")).to_have_count(0)
    send(page, "Hello without files")
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete")
    expect(page.locator("#messages .attachments")).to_have_count(0)
    assert console_errors == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]


def test_a_message_sent_while_another_tab_s_reply_runs_waits(slow_page, console_errors):
    """One reply at a time per conversation: a tab that sends while another tab's reply is running
    gets its text back, and is shown the running reply instead (the server's 409)."""
    first = slow_page
    sign_up(first)
    send(first, "First question.")
    expect(first.locator(LAST_REPLY)).to_have_attribute("data-status", "complete", timeout=30_000)
    second = first.context.new_page()
    second.goto(f"/#/chat/{conversation_id(first)}")
    expect(second.locator(LAST_REPLY)).to_have_attribute("data-status", "complete")
    send(first, "Second question, from the first tab.")
    wait_for_reply_longer_than(first, 0)

    send(second, "A question from the second tab.")

    expect(second.locator("#chat-error")).to_have_text(
        "A reply is being generated in this conversation; wait for it or stop it."
    )
    expect(second.get_by_label("Message", exact=True)).to_have_value(
        "A question from the second tab."
    )
    expect(second.locator("#messages li.user .bubble").last).to_have_text(
        "Second question, from the first tab."
    )
    expect(second.locator(LAST_REPLY)).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(second.locator("#messages > li")).to_have_count(4)
    assert console_errors == [
        "Failed to load resource: the server responded with a status of 409 (Conflict)"
    ]


def test_a_tab_shown_again_catches_up_with_the_other_tab(slow_page, console_errors):
    """A tab left open on a conversation, when shown again, shows the message another tab sent
    meanwhile and joins its running reply."""
    first = slow_page
    sign_up(first)
    send(first, "First question.")
    expect(first.locator(LAST_REPLY)).to_have_attribute("data-status", "complete", timeout=30_000)
    second = first.context.new_page()
    second.goto(f"/#/chat/{conversation_id(first)}")
    expect(second.locator(LAST_REPLY)).to_have_attribute("data-status", "complete")
    send(first, "Second question, while the other tab is hidden.")
    wait_for_reply_longer_than(first, 0)

    # What the browser does when the user switches back to the tab.
    second.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")

    expect(second.locator("#messages li.user .bubble").last).to_have_text(
        "Second question, while the other tab is hidden."
    )
    wait_for_reply_longer_than(second, 0)
    for tab in (first, second):
        expect(tab.locator(LAST_REPLY)).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(second.locator(f"{LAST_REPLY} .bubble")).to_have_text(
        first.locator(f"{LAST_REPLY} .bubble").text_content()
    )
    assert console_errors == []


def test_thumbs_down_with_a_comment_is_stored_and_shown_again(page, console_errors, artifacts):
    """A reply's thumbs: down with a comment goes to the API and is shown again after a reload;
    the same thumb again withdraws it. The new chat's title, written by the model after the
    first reply, replaces the first message's in the header and the list."""
    sign_up(page)
    send(page, "Plan three days in Lisbon")
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete")
    conversation = conversation_id(page)
    model_title = "Offline title for: Plan three days in Lisbon"
    expect(page.locator("#chat-title")).to_have_text(model_title)
    expect(page.locator("#conversations").get_by_role("link", name=model_title)).to_be_visible()
    reply = page.locator(LAST_REPLY)
    thumbs_down = reply.get_by_role("button", name="Bad reply")
    expect(reply.get_by_label("Comment on this reply")).to_be_hidden()  # no rating yet

    with page.expect_response("**/feedback/") as rated:
        thumbs_down.click()
    assert (rated.value.request.method, rated.value.status) == ("PUT", 201)
    expect(thumbs_down).to_have_attribute("aria-pressed", "true")
    thumbs_up = reply.get_by_role("button", name="Good reply")
    expect(thumbs_up).to_have_attribute("aria-pressed", "false")
    reply.get_by_label("Comment on this reply").fill("The second day is in Porto, not Lisbon.")
    with page.expect_response("**/feedback/") as commented:
        reply.get_by_role("button", name="Save comment").click()
    assert commented.value.status == 200

    stored = stored_messages(page, conversation)[-1]["metadata"]["feedback"]
    assert (stored["rating"], stored["comment"]) == (
        "down",
        "The second day is in Porto, not Lisbon.",
    )

    page.reload()
    reply = page.locator(LAST_REPLY)
    expect(reply.get_by_role("button", name="Bad reply")).to_have_attribute("aria-pressed", "true")
    expect(reply.get_by_label("Comment on this reply")).to_have_value(
        "The second day is in Porto, not Lisbon."
    )
    expect(page.locator("#chat-title")).to_have_text(model_title)
    page.screenshot(path=artifacts / "feedback.png")

    with page.expect_response("**/feedback/") as withdrawn:
        reply.get_by_role("button", name="Bad reply").click()
    assert (withdrawn.value.request.method, withdrawn.value.status) == ("DELETE", 204)
    expect(reply.get_by_role("button", name="Bad reply")).to_have_attribute("aria-pressed", "false")
    assert stored_messages(page, conversation)[-1]["metadata"] == {"feedback": None}
    assert console_errors == []
