from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from chat.search import full_text_search, search_indexes


class Command(BaseCommand):
    help = (
        "Rebuilds the GIN indexes of conversation search for the current CHAT_SEARCH_CONFIG "
        "(PostgreSQL only): an index only serves the configuration it was built with. Locks "
        "writes to conversations and messages while it builds."
    )

    def handle(self, *args, **options):
        if not full_text_search(connection):
            raise CommandError("Search indexes exist on PostgreSQL only (this is not).")
        with transaction.atomic(), connection.schema_editor() as editor:
            for model, index in search_indexes():
                editor.execute(f"DROP INDEX IF EXISTS {editor.quote_name(index.name)}")
                editor.add_index(model, index)
                self.stdout.write(f"{index.name}: rebuilt for {settings.CHAT_SEARCH_CONFIG!r}")
