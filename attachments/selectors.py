"""Reads: an owner's attachment, a signed request's attachment, and the bytes for the model."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from functools import cache
from typing import NamedTuple
from uuid import UUID

import orjson
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import connection

from core import sql
from core.db import run_db
from core.errors import NotFound
from llm.types import FilePart

from .models import Attachment
from .signing import signature_valid

logger = logging.getLogger(__name__)


def attachments_of(*, user):
    return Attachment.objects.filter(user_id=user.pk)


def attachment_of(*, user, attachment_id: UUID | str) -> Attachment:
    """`user`'s attachment; another user's is as unknown as a missing one (404)."""
    attachment = attachments_of(user=user).filter(pk=attachment_id).first()
    if attachment is None:
        raise NotFound("Not found.")
    return attachment


def attachment_for_signature(
    *, attachment_id: UUID | str, timestamp: str, signature: str, viewer_id: int | str | None
) -> Attachment:
    """The attachment a signed content URL names, when its signature is the owner's and recent.
    `viewer_id` is the user of a bearer token sent with the request, if any: another user's token
    is refused even with a valid signature. Every refusal is the same 404."""
    attachment = Attachment.objects.filter(pk=attachment_id).first()
    if (
        attachment is None
        or not signature_valid(
            attachment_id=attachment.pk,
            user_id=attachment.user_id,
            timestamp=timestamp,
            signature=signature,
        )
        or (viewer_id is not None and str(viewer_id) != str(attachment.user_id))
    ):
        raise NotFound("Not found.")
    return attachment


def read_bytes(attachment: Attachment) -> bytes:
    """The stored bytes; `NotFound` if the storage lost them (logged: the row outlived its file)."""
    return _read_stored(attachment.file.storage, attachment.file.name, attachment.pk)


def _read_stored(storage, name: str, pk, size: int | None = None) -> bytes:
    try:
        if size is not None and isinstance(storage, FileSystemStorage):
            return _read_local(storage.path(name), size)
        with storage.open(name, "rb") as stored:
            return stored.read()
    except FileNotFoundError:
        logger.warning("Attachment %s has no stored file %s", pk, name)
        raise NotFound("Not found.") from None


def _read_local(path: str, size: int) -> bytes:
    """A local file of (as its row says) `size` bytes, in three system calls where `open()` and
    a buffered read make seven: each one releases the GIL, and in a database thread of a busy
    server every release is a hand-off to the event loop and back (futex calls, context
    switches), which cost more than the reads themselves."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, size + 1)
        if len(data) <= size:
            return data
        rest = [data]  # the file grew: read it whole all the same
        while chunk := os.read(fd, 1 << 20):
            rest.append(chunk)
        return b"".join(rest)
    finally:
        os.close(fd)


class RecentFiles:
    """The files of recent turns, kept in this process: a conversation sends its files again with
    every later turn, and an attachment's bytes never change (its id names them), so a continued
    turn finds them here without a database read, a storage read or a thread hop. Least recently
    used first out, bounded by `ATTACHMENT_CACHE_BYTES` in all; an entry lives at most
    `ttl_s` (an attachment deleted by another process stops being sent within that time; one
    deleted here is dropped at once).

    Written by hand: Django's cache framework pickles what it stores (the local-memory backend
    too), a copy of every file on every read, which is the cost this avoids."""

    ttl_s = 300.0

    def __init__(self) -> None:
        self._parts: OrderedDict[str, tuple[FilePart, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get_many(self, ids: Iterable[str]) -> tuple[dict[str, FilePart], list[str]]:
        """(the cached parts by id, the ids not cached)."""
        found: dict[str, FilePart] = {}
        missing: list[str] = []
        now = time.monotonic()
        with self._lock:
            for key in ids:
                entry = self._parts.get(key)
                if entry is None or entry[1] < now:
                    missing.append(key)
                else:
                    self._parts.move_to_end(key)
                    found[key] = entry[0]
        return found, missing

    def put(self, part: FilePart) -> None:
        limit = settings.ATTACHMENT_CACHE_BYTES
        size = len(part.data)
        if size > limit // 4:  # one large file would empty the cache for itself
            return
        with self._lock:
            self._drop(part.key)
            self._parts[part.key] = (part, time.monotonic() + self.ttl_s)
            self._bytes += size
            while self._bytes > limit:
                self._drop(next(iter(self._parts)))

    def discard(self, key: str) -> None:
        with self._lock:
            self._drop(key)

    def clear(self) -> None:
        with self._lock:
            self._parts.clear()
            self._bytes = 0

    def _drop(self, key: str) -> None:
        entry = self._parts.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[0].data)


recent_files = RecentFiles()


#: An attachment as a turn reads it to send its file (`read_file_parts`): these columns.
_FILE_COLUMNS = ("id", "media_type", "filename", "file", "size")


@cache
def _file_rows_sql(vendor: str) -> str:
    """The attachments whose ids the one parameter lists: the same statement for any number of
    ids (PostgreSQL: an array; SQLite: a JSON array)."""
    field = Attachment._meta.get_field
    columns = ", ".join(sql.quote(field(name).column) for name in _FILE_COLUMNS)
    match = "= ANY(%s)" if vendor == "postgresql" else "IN (SELECT value FROM json_each(%s))"
    return (
        f"SELECT {columns} FROM {sql.quote(Attachment._meta.db_table)}"
        f" WHERE {sql.quote(field('id').column)} {match}"
    )


_UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


@cache
def file_rows_of_parts_sql(parts: str) -> str:
    """PostgreSQL: a scalar subquery, for a statement that reads messages, giving the rows
    (`_FILE_COLUMNS`) of the attachments that the `file` parts of the jsonb column `parts` name,
    as a JSON array (NULL when there are none): `read_file_parts(orjson.loads(value))` reads
    their files. A turn reads its history's attachments with its history that way, instead of in
    a query of their own (`file_parts`). An `attachmentId` that is not a UUID names nothing."""
    field = Attachment._meta.get_field
    columns = ", ".join(f"a.{sql.quote(field(name).column)}" for name in _FILE_COLUMNS)
    return (
        f"(SELECT jsonb_agg(jsonb_build_array({columns}))"
        f" FROM {sql.quote(Attachment._meta.db_table)} a"
        f" WHERE a.{sql.quote(field('id').column)} IN (SELECT (e->>'attachmentId')::uuid"
        f" FROM jsonb_array_elements(CASE WHEN jsonb_typeof({parts}) = 'array' THEN {parts} END) e"
        f" WHERE e->>'type' = 'file' AND e->>'attachmentId' ~ '{_UUID_PATTERN}'))"
    )


def file_parts(*, ids: Iterable[UUID | str]) -> dict[str, FilePart]:
    """The files to send to the model, keyed by `str(attachment id)` (as `attachmentId` is stored
    in a message's parts). Ids with no attachment (deleted since) or no stored file are left out.
    Sync: it reads the database and the storage; from async code call it through
    `core.db.run_db`, after looking in `recent_files`, which this fills.

    Called in a continued turn's database burst whenever its history's files are not in
    `recent_files`: one query in SQL (`core.sql` says why), its rows read as plain values rather
    than as model instances, which cost ~0.35 ms more for five files."""
    wanted = []
    for value in ids:
        try:
            wanted.append(sql.uuid_param(value if isinstance(value, UUID) else UUID(str(value))))
        except ValueError:
            continue
    if not wanted:
        return {}
    vendor = connection.vendor
    with connection.cursor() as cursor:
        cursor.execute(
            _file_rows_sql(vendor),
            [wanted if vendor == "postgresql" else orjson.dumps(wanted).decode()],
        )
        rows = cursor.fetchall()
    return read_file_parts(rows)


def read_file_parts(rows: Iterable[Sequence]) -> dict[str, FilePart]:
    """The files of these attachment rows (`_FILE_COLUMNS`), read from the storage, keyed by
    `str(attachment id)`, and kept in `recent_files`; a file the storage lost is left out."""
    storage = Attachment._meta.get_field("file").storage
    parts = {}
    for pk, media_type, filename, name, size in rows:
        try:
            data = _read_stored(storage, name, pk, size)
        except NotFound:
            continue
        part = FilePart(
            media_type=media_type, data=data, key=str(sql.as_uuid(pk)), filename=filename
        )
        parts[part.key] = part
        recent_files.put(part)
    return parts


# Reading stored files from the event loop, many turns' in one hop --------------------------------
#: Per event loop: the reads waiting for the next batch, while one is under way.
_queued: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[_QueuedRead]] = (
    weakref.WeakKeyDictionary()
)


_reading: set[asyncio.Task] = set()


class _QueuedRead(NamedTuple):
    rows: list[Sequence]
    done: asyncio.Future[dict[str, FilePart]]


async def aread_file_parts(rows: list[Sequence]) -> dict[str, FilePart]:
    """`read_file_parts` from the event loop. The storage is read in a database thread; the
    reads that concurrent turns ask for while one hop is under way wait for the next and share
    it. Each hop costs far more CPU than reading a few small files (waking a thread, handing
    the GIL over and back), and under load many turns read their histories' files at once."""
    loop = asyncio.get_running_loop()
    read = _QueuedRead(rows, loop.create_future())
    queue = _queued.get(loop)
    if queue is None:
        queue = _queued[loop] = []
        task = loop.create_task(_read_queued(loop, queue))  # its own: no caller's to cancel
        _reading.add(task)
        task.add_done_callback(_reading.discard)
    queue.append(read)
    return await read.done


async def _read_queued(loop: asyncio.AbstractEventLoop, queue: list[_QueuedRead]) -> None:
    try:
        while queue:
            batch = queue[:]
            queue.clear()
            try:
                results = await run_db(_read_each, [read.rows for read in batch])
            except Exception as exc:  # noqa: BLE001 - each caller's to handle
                results = [exc] * len(batch)
            except BaseException:  # cancelled: the loop is closing
                _settle(batch, [None] * len(batch))
                raise
            _settle(batch, results)
    finally:
        if _queued.get(loop) is queue:
            del _queued[loop]
        _settle(queue, [None] * len(queue))


def _read_each(batch: list[list[Sequence]]) -> list[dict[str, FilePart] | Exception]:
    """Each read of the batch, or the error it met (the others still get their files)."""
    results: list[dict[str, FilePart] | Exception] = []
    for rows in batch:
        try:
            results.append(read_file_parts(rows))
        except Exception as exc:  # noqa: BLE001 - handed to its own caller
            results.append(exc)
    return results


def _settle(batch: list[_QueuedRead], results: list) -> None:
    """Each read's result, error, or (None) cancellation."""
    for read, result in zip(batch, results, strict=True):
        if read.done.done():
            continue  # its caller left
        if result is None:
            read.done.cancel()
        elif isinstance(result, Exception):
            read.done.set_exception(result)
        else:
            read.done.set_result(result)
