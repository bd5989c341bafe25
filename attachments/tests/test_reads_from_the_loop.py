"""`aread_file_parts`: the files of concurrent turns' histories, read from the event loop in
shared database-thread hops."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from attachments import selectors, services
from attachments.models import Attachment
from llm.types import FilePart

from . import files

pytestmark = pytest.mark.django_db(transaction=True)


def row_of(attachment: Attachment) -> list:
    """The attachment's row, as a turn reads it with its history (`_FILE_COLUMNS`)."""
    return [
        str(attachment.id),
        attachment.media_type,
        attachment.filename,
        attachment.file.name,
        attachment.size,
    ]


@pytest.fixture
def stored(user):
    def store(count: int) -> list[Attachment]:
        return [
            services.create_attachment(
                user=user,
                data=files.png() + bytes([i]),
                media_type="image/png",
                filename=f"{i}.png",
            )
            for i in range(count)
        ]

    return sync_to_async(store)


class Hops(list):
    """The database-thread hops `aread_file_parts` makes (how many reads each carries). Close
    `gate` to hold them until it opens; `started` is set when one begins."""

    def __init__(self):
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()


@pytest.fixture
def hops(monkeypatch):
    made = Hops()
    run_db = selectors.run_db

    async def counting(fn, batch):
        made.append(len(batch))
        made.started.set()
        await made.gate.wait()
        return await run_db(fn, batch)

    monkeypatch.setattr(selectors, "run_db", counting)
    return made


async def test_concurrent_reads_share_hops_and_each_gets_its_own_files(stored, hops):
    attachments = await stored(6)

    results = await asyncio.gather(*(selectors.aread_file_parts([row_of(a)]) for a in attachments))

    assert results == [
        {str(a.id): FilePart("image/png", files.png() + bytes([i]), str(a.id), f"{i}.png")}
        for i, a in enumerate(attachments)
    ]
    assert hops == [6]  # one hop for the six turns


async def test_reads_asked_for_during_a_hop_share_the_next(stored, hops):
    first, *others = await stored(4)
    hops.gate.clear()
    reading = asyncio.ensure_future(selectors.aread_file_parts([row_of(first)]))
    await hops.started.wait()  # the first hop is under way
    later = [asyncio.ensure_future(selectors.aread_file_parts([row_of(a)])) for a in others]
    hops.gate.set()

    results = await asyncio.gather(*later)

    assert [list(r) for r in results] == [[str(a.id)] for a in others]
    assert list(await reading) == [str(first.id)]
    assert hops == [1, 3]


async def test_a_read_that_fails_fails_alone(stored, hops, settings):
    good, broken = await stored(2)
    # The storage holds a directory where the broken one's file should be: reading it fails.
    path = settings.MEDIA_ROOT / broken.file.name
    path.unlink()
    path.mkdir()

    results = await asyncio.gather(
        selectors.aread_file_parts([row_of(good)]),
        selectors.aread_file_parts([row_of(broken)]),
        return_exceptions=True,
    )

    assert list(results[0]) == [str(good.id)]
    assert isinstance(results[1], OSError)
    assert hops == [2]


async def test_a_caller_that_leaves_does_not_take_the_others_reads_with_it(stored, hops):
    leaving, staying = await stored(2)
    hops.gate.clear()
    left = asyncio.ensure_future(selectors.aread_file_parts([row_of(leaving)]))
    kept = asyncio.ensure_future(selectors.aread_file_parts([row_of(staying)]))
    await hops.started.wait()  # both are in the hop
    left.cancel()
    hops.gate.set()

    assert list(await kept) == [str(staying.id)]
    with pytest.raises(asyncio.CancelledError):
        await left
    # The next read starts a hop of its own.
    assert list(await selectors.aread_file_parts([row_of(leaving)])) == [str(leaving.id)]
    assert hops == [2, 1]
