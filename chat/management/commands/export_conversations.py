import datetime as dt
import sys
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime

from chat.export import BATCH_SIZE, FORMATS, ConversationExport, selection


def _since(value: str) -> dt.date | dt.datetime:
    parsed = parse_datetime(value) or parse_date(value)
    if parsed is None:
        raise CommandError(f"--since {value!r}: expected a date (2026-12-01) or a datetime.")
    return parsed


class Command(BaseCommand):
    help = (
        "Exports conversations (messages as UIMessage parts, feedback, usage) as JSON Lines (one "
        "conversation a line) or CSV (one message a row), in batches: memory stays constant."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=sorted(FORMATS), default="jsonl")
        parser.add_argument(
            "--user", action="append", default=[], metavar="USERNAME", help="repeatable"
        )
        parser.add_argument("--since", type=_since, help="created on or after (date or datetime)")
        parser.add_argument("--ids", nargs="+", default=[], metavar="ID")
        parser.add_argument("--output", default="-", help="a file path, or - for stdout")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)

    def handle(self, *args, format, user, since, ids, output, batch_size, **options):
        for value in ids:
            try:
                uuid.UUID(value)
            except ValueError:
                raise CommandError(f"--ids: {value!r} is not a conversation id.") from None
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        export = ConversationExport(
            selection(usernames=user, since=since, ids=ids), format, batch_size=batch_size
        )
        out = sys.stdout.buffer if output == "-" else open(output, "wb")
        try:
            for chunk in export.chunks():
                out.write(chunk)
            out.flush()
        finally:
            if out is not sys.stdout.buffer:
                out.close()
        self.stderr.write(
            f"Exported {export.conversations} conversations, {export.messages} messages "
            f"({format}) to {output}."
        )
