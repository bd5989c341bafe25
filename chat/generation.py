"""The running generation: a reply's stream from the model, owned by the worker process rather
than by the request that started it.

A generation runs in a task of its own. It asks the model, encodes each event once as a UI message
stream frame, publishes the frame to its channel (`core.hub`) for every listener — the POST that
started it first, then any resume (`GET .../stream`) here or, through Redis, on another host —,
checkpoints the reply while it streams, stamps its heartbeat (`core.liveness`) and saves the reply
once at the end: complete, `error`, or `interrupted` when stopped (the stop endpoint, SIGTERM, or
the starting client leaving with CHAT_ON_DISCONNECT=cancel). A client that merely goes away does
not stop it (CHAT_ON_DISCONNECT=continue)."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing, contextmanager

from django.conf import settings
from django.db import Error as DatabaseFault
from django.db.models import Q
from django.utils import timezone

from attachments.selectors import file_parts, recent_files
from core import adb, liveness, sql
from core.db import run_db
from core.encoders import UIMessageStream
from core.hub import Channel, get_hub
from llm import (
    FilePart,
    LLMError,
    ReasoningDelta,
    Source,
    StreamFinish,
    TextDelta,
    Usage,
    get_provider,
)
from usage.services import usage_record

from .history import history_within_budget
from .models import Message
from .titles import maybe_title
from .turns import Turn

logger = logging.getLogger(__name__)

LIVENESS_KIND = "chat.reply"
#: A final save the database refused is tried again after this long, doubling up to the maximum.
SAVE_RETRY_FIRST_S = 0.05
SAVE_RETRY_MAX_S = 2.0

#: This process's running generations, by reply id (for shutdown, and `cancel` on disconnect).
_running: dict[uuid.UUID, Generation] = {}
#: Replies whose turn is being saved here and whose generation starts next: a resend of the same
#: message, answered between the save and the start, waits for it (not a 409).
_starting: dict[uuid.UUID, asyncio.Future[None]] = {}


class ReplyParts:
    """The reply as it grows: its text, its reasoning, its sources, as UIMessage parts."""

    __slots__ = ("reasoning", "sources", "text")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.sources: list[dict] = []

    @property
    def content(self) -> str:
        return "".join(self.text)

    def as_list(self) -> list[dict]:
        parts: list[dict] = []
        if self.reasoning:
            parts.append({"type": "reasoning", "text": "".join(self.reasoning)})
        if self.text:
            parts.append({"type": "text", "text": self.content})
        parts.extend(self.sources)
        return parts


# Database bursts ---------------------------------------------------------------------------------
#: The reply, while it is still being generated (core.sql: these run on every turn).
STILL_STREAMING = "id = %s AND status = %s"


def checkpoint_reply(*, reply_id: uuid.UUID, content: str, parts: list[dict]) -> None:
    """Save the reply so far while it streams, so a crash loses at most a few seconds of it."""
    sql.update(
        Message,
        {"content": content, "parts": parts, "updated_at": timezone.now()},
        STILL_STREAMING,
        [sql.uuid_param(reply_id), Message.Status.STREAMING],
    )


def reply_save(
    *,
    turn: Turn,
    content: str,
    parts: list[dict],
    status: str,
    finish_reason: str = "",
    model: str = "",
    usage: Usage | None = None,
) -> sql.Step:
    """What stores the reply's final state and its usage. Only a reply still streaming is
    updated, so the first writer (completion, stop, shutdown, the stale sweep) wins, and usage
    is billed once."""
    fields = {
        "content": content,
        "parts": parts,
        "status": status,
        "finish_reason": finish_reason,
        "updated_at": timezone.now(),
    }
    if model:
        fields["model"] = model
    if usage is not None:
        fields.update(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
        )
    still_streaming = [sql.uuid_param(turn.reply_id), Message.Status.STREAMING]
    record = None
    if usage is not None:
        record = usage_record(
            user_id=turn.user_id, endpoint="chat", model=model or turn.model, usage=usage
        )
    if record is None:
        return sql.update_statement(Message, fields, STILL_STREAMING, still_streaming)
    # billed with the update that stores it: once, whoever saves first
    return sql.update_then_insert_step(Message, fields, STILL_STREAMING, still_streaming, record)


async def save_reply(**fields) -> None:
    """`reply_save`, run: on PostgreSQL on the event loop (`core.adb`)."""
    await adb.run_step(reply_save(**fields))


async def save_reply_retrying(**fields) -> None:
    """`save_reply`, tried again while the database refuses it (a failover, a pool that is
    full) for up to STREAM_STALE_S: the reply is still beaten meanwhile, so no sweep takes it.
    Repeating is safe: only a reply still streaming is updated (an attempt that committed before
    its connection broke turns the next into a no-op) and usage is billed with that update.
    Raises the database's last error when the time is up; the stale sweep then keeps the last
    checkpoint."""
    deadline = time.monotonic() + settings.STREAM_STALE_S
    delay = SAVE_RETRY_FIRST_S
    while True:
        try:
            await save_reply(**fields)
            return
        except DatabaseFault:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning(
                "saving reply %s failed; trying again in %.2f s",
                fields["turn"].reply_id,
                delay,
                exc_info=True,
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, SAVE_RETRY_MAX_S)


def beat_replies(ids: list) -> None:
    Message.objects.filter(id__in=ids, status=Message.Status.STREAMING).update(
        heartbeat_at=timezone.now()
    )


def sweep_stale_replies(stale_before) -> int:
    """Replies whose generation stopped reporting (its worker died): interrupted, keeping their
    last checkpoint. A reply that never beat counts from its last update."""
    stale = Q(heartbeat_at__lt=stale_before) | Q(
        heartbeat_at__isnull=True, updated_at__lt=stale_before
    )
    return Message.objects.filter(stale, status=Message.Status.STREAMING).update(
        status=Message.Status.INTERRUPTED, finish_reason="other", updated_at=timezone.now()
    )


async def _load_files(ids: tuple[str, ...], read: dict[str, FilePart]) -> dict[str, FilePart]:
    """The history's files: those the turn's burst read, this process's recent files, and the
    others (a file evicted since, or one too large to keep) read in one burst."""
    found, missing = recent_files.get_many(key for key in ids if key not in read)
    found.update(read)
    if missing:
        found.update(await run_db(file_parts, ids=missing))
    return found


# The generation ----------------------------------------------------------------------------------
class Generation:
    """One reply being generated in this process. Listeners read its channel."""

    def __init__(self, turn: Turn):
        self.turn = turn
        self.key = str(turn.reply_id)
        self.channel: Channel = get_hub().open(self.key)
        #: Resolved once the model answered (None), or with the error that ended it before that.
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task | None = None

    def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def _open(self) -> AsyncIterator:
        """The model's events, once its first one arrived (retries and fallback happen before)."""
        turn = self.turn
        history = await history_within_budget(turn)
        files = await _load_files(history.file_ids, turn.files) if history.file_ids else None
        events = get_provider().stream_chat(
            history.messages(files), model=turn.model, web_search=turn.web_search
        )
        try:
            first = await anext(events)
        except BaseException:
            await events.aclose()
            raise
        return first, events

    async def run(self) -> None:
        turn, channel = self.turn, self.channel
        encoder = UIMessageStream()
        publish = channel.publish
        reply_id = str(turn.reply_id)
        text_id, reasoning_id = f"text-{reply_id}", f"reasoning-{reply_id}"
        parts = ReplyParts()
        open_block: str | None = None  # "text" or "reasoning": the part being streamed
        finish: StreamFinish | None = None
        publish(
            encoder.start(
                reply_id,
                {
                    "conversationId": str(turn.conversation_id),
                    "userMessageId": str(turn.user_message_id),
                },
            )
        )
        channel.on_stop = self.stop

        def close_block() -> bytes:
            nonlocal open_block
            frame = b""
            if open_block == "text":
                frame = encoder.text_end(text_id)
            elif open_block == "reasoning":
                frame = encoder.reasoning_end(reasoning_id)
            open_block = None
            return frame

        save_failed = False

        async def save(status: str, **fields) -> None:
            nonlocal save_failed
            if save_failed:  # refused for STREAM_STALE_S already: the sweep keeps the checkpoint
                return
            try:
                await save_reply_retrying(
                    turn=turn,
                    content=parts.content,
                    parts=parts.as_list(),
                    status=status,
                    **fields,
                )
            except DatabaseFault:
                save_failed = True
                raise

        try:
            with liveness.running(LIVENESS_KIND, turn.reply_id):
                try:
                    first, events = await self._open()
                except LLMError as exc:
                    await save(Message.Status.ERROR, finish_reason="error")
                    publish(
                        encoder.error(exc.safe_message) + encoder.finish("error") + encoder.done()
                    )
                    self.ready.set_exception(exc)
                    return
                self.ready.set_result(None)

                def handle(event) -> None:
                    nonlocal open_block, finish
                    kind = type(event)
                    if kind is TextDelta:
                        if open_block != "text":
                            publish(close_block() + encoder.text_start(text_id))
                            open_block = "text"
                        parts.text.append(event.text)
                        publish(encoder.text_delta(text_id, event.text))
                    elif kind is ReasoningDelta:
                        if open_block != "reasoning":
                            publish(close_block() + encoder.reasoning_start(reasoning_id))
                            open_block = "reasoning"
                        parts.reasoning.append(event.text)
                        publish(encoder.reasoning_delta(reasoning_id, event.text))
                    elif kind is Source:
                        parts.sources.append(
                            {
                                "type": "source-url",
                                "sourceId": event.source_id,
                                "url": event.url,
                                "title": event.title,
                            }
                        )
                        publish(encoder.source_url(event.source_id, event.url, event.title))
                    elif kind is StreamFinish:
                        finish = event

                checkpoint_every = settings.STREAM_CHECKPOINT_S
                next_checkpoint = time.monotonic() + checkpoint_every

                async def checkpoint() -> None:
                    nonlocal next_checkpoint
                    try:
                        await run_db(
                            checkpoint_reply,
                            reply_id=turn.reply_id,
                            content=parts.content,
                            parts=parts.as_list(),
                        )
                    except DatabaseFault:  # the reply goes on: the next save stores its text
                        logger.warning("checkpoint of reply %s failed", reply_id, exc_info=True)
                    next_checkpoint = time.monotonic() + checkpoint_every

                try:
                    async with aclosing(events):
                        handle(first)
                        if time.monotonic() >= next_checkpoint:
                            await checkpoint()
                        async for event in events:  # the hot loop: one frame, one publish
                            handle(event)
                            if time.monotonic() >= next_checkpoint:
                                await checkpoint()
                except LLMError as exc:
                    await save(Message.Status.ERROR, finish_reason="error")
                    publish(
                        close_block()
                        + encoder.error(exc.safe_message)
                        + encoder.finish("error")
                        + encoder.done()
                    )
                    return
                finish = finish or StreamFinish(reason="other", usage=Usage(), model=turn.model)
                await save(
                    Message.Status.COMPLETE,
                    finish_reason=finish.reason,
                    model=finish.model,
                    usage=finish.usage,
                )
                if open_block:
                    publish(close_block())  # the text is whole while its title is written
                title = await maybe_title(turn)
                publish(
                    (encoder.data("title", {"title": title}) if title else b"")
                    + encoder.finish(finish.reason, {"usage": finish.usage.as_dict()})
                    + encoder.done()
                )
        except asyncio.CancelledError:
            # Stopped: by the stop endpoint, SIGTERM, or the client leaving in `cancel` mode.
            try:
                await asyncio.shield(save(Message.Status.INTERRUPTED, finish_reason="other"))
            except DatabaseFault:
                logger.exception("saving stopped reply %s failed", reply_id)
            publish(close_block() + encoder.finish("other") + encoder.done())
            if not self.ready.done():
                self.ready.set_result(None)  # stopped before the model answered: a short stream
            raise
        except Exception as exc:
            logger.exception("generation of reply %s failed", reply_id)
            await asyncio.shield(save(Message.Status.ERROR, finish_reason="error"))
            publish(
                close_block()
                + encoder.error("The reply failed.")
                + encoder.finish("error")
                + encoder.done()
            )
            if not self.ready.done():
                self.ready.set_exception(exc)
        finally:
            channel.close()
            _running.pop(turn.reply_id, None)


async def start_generation(turn: Turn) -> Generation:
    """Start generating `turn`'s reply and wait until the model answered: an error before its first
    token (after the provider's retries and fallback) is raised here, so it can still be a JSON
    error response. The generation's task has a context of its own: it outlives the request."""
    generation = Generation(turn)
    _running[turn.reply_id] = generation
    announced = _starting.pop(turn.reply_id, None)
    if announced is not None and not announced.done():
        announced.set_result(None)
    generation.task = asyncio.get_running_loop().create_task(
        generation.run(), context=contextvars.Context()
    )
    await asyncio.shield(generation.ready)
    return generation


def running_here(reply_id: uuid.UUID) -> Generation | None:
    return _running.get(reply_id)


@contextmanager
def starting(reply_id: uuid.UUID):
    """Around saving a turn whose new reply gets `reply_id`: until its generation starts (or the
    turn ends otherwise), `started_here(reply_id)` waits. Once the save commits, a resend can
    find the reply streaming before the generation's channel is open."""
    future = asyncio.get_running_loop().create_future()
    _starting[reply_id] = future
    try:
        yield
    finally:
        if _starting.get(reply_id) is future:
            del _starting[reply_id]
        if not future.done():
            future.set_result(None)


async def started_here(reply_id: uuid.UUID) -> None:
    """Wait until a generation announced here (`starting`) has started or given up."""
    future = _starting.get(reply_id)
    if future is not None:
        await asyncio.shield(future)


async def stop_all(timeout_s: float = 10.0) -> None:
    """Process shutdown: stop every generation here; each saves its reply `interrupted`."""
    generations = list(_running.values())
    if not generations:
        return
    logger.info("Shutting down: stopping %d running generation(s)", len(generations))
    for generation in generations:
        generation.stop()
    tasks = [g.task for g in generations if g.task is not None]
    await asyncio.wait(tasks, timeout=timeout_s)
