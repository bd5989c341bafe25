"""The responses that carry a reply: a new generation's stream, a running one joined (resume, a
resend, a second tab), a stored reply streamed again, or 204 when nothing runs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from django.conf import settings
from django.http import HttpResponse

from core.encoders import SimpleStream, UIMessageStream, streaming_response
from core.hub import get_hub

from .generation import Generation, running_here, start_generation, started_here
from .turns import Turn

_UI = UIMessageStream()
_SIMPLE = SimpleStream()


def web_search_wanted(requested: bool) -> bool:
    """CHAT_WEB_SEARCH: `request` (the body's `webSearch` decides), `always` or `off`."""
    mode = settings.CHAT_WEB_SEARCH
    return mode == "always" or (mode == "request" and requested)


def _response(frames: AsyncIterator[bytes], simple: bool):
    if simple:
        frames = _as_simple(frames)
    return streaming_response(frames, _SIMPLE if simple else _UI)


async def _as_simple(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for frame in frames:
        out = _SIMPLE.from_ui(frame)
        if out:
            yield out


async def _starter_frames(generation: Generation, frames: AsyncIterator[bytes]):
    """The frames for the request that started the generation. If its client leaves, the
    generation goes on (CHAT_ON_DISCONNECT=continue) or is stopped and saved (`cancel`)."""
    try:
        async for frame in frames:
            yield frame
    except (asyncio.CancelledError, GeneratorExit):
        if settings.CHAT_ON_DISCONNECT == "cancel" and generation.task is not None:
            generation.stop()
            await asyncio.shield(asyncio.wait({generation.task}))
        raise


async def generation_response(turn: Turn, *, simple: bool):
    generation = await start_generation(turn)
    frames = await get_hub().listen(generation.key)
    assert frames is not None  # the channel is open until the generation's task ends
    return _response(_starter_frames(generation, frames), simple)


async def listen_response(reply_id: uuid.UUID, *, simple: bool = False):
    """The running reply's stream from its start, or None when it runs nowhere reachable."""
    await started_here(reply_id)  # its turn was just saved here: its channel opens next
    frames = await get_hub().listen(str(reply_id))
    return None if frames is None else _response(frames, simple)


async def _stored_frames(turn: Turn) -> AsyncIterator[bytes]:
    encoder = UIMessageStream()
    reply_id = str(turn.reply_id)
    out = [
        encoder.start(
            reply_id,
            {
                "conversationId": str(turn.conversation_id),
                "userMessageId": str(turn.user_message_id),
            },
        )
    ]
    parts = turn.stored_parts or ({"type": "text", "text": turn.stored_content},)
    for part in parts:
        kind = part.get("type")
        if kind == "reasoning":
            part_id = f"reasoning-{reply_id}"
            out += [
                encoder.reasoning_start(part_id),
                encoder.reasoning_delta(part_id, part["text"]),
                encoder.reasoning_end(part_id),
            ]
        elif kind == "text" and part.get("text"):
            part_id = f"text-{reply_id}"
            out += [
                encoder.text_start(part_id),
                encoder.text_delta(part_id, part["text"]),
                encoder.text_end(part_id),
            ]
        elif kind == "source-url":
            out.append(encoder.source_url(part["sourceId"], part["url"], part.get("title", "")))
    out += [encoder.finish(turn.stored_finish), encoder.done()]
    for frame in out:
        yield frame


def stored_reply_response(turn: Turn, *, simple: bool):
    """A resent message whose reply is complete: that reply again, nothing generated or billed."""
    return _response(_stored_frames(turn), simple)


def nothing_running() -> HttpResponse:
    return HttpResponse(status=204)


async def stop(reply_id: uuid.UUID) -> bool:
    """Stop the reply's generation wherever it runs. Here, this waits until the partial reply is
    saved `interrupted`; elsewhere, the owning process does it on receiving the stop."""
    generation = running_here(reply_id)
    if generation is not None and generation.task is not None:
        generation.stop()
        await asyncio.shield(asyncio.wait({generation.task}, timeout=10))
        return True
    return await get_hub().stop(str(reply_id))
