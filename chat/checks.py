"""`manage.py check --database default` (and `migrate`): the search indexes serve the configured
`CHAT_SEARCH_CONFIG`."""

from django.conf import settings
from django.core import checks
from django.db import connections

from .search import CONTENT_INDEX, TITLE_INDEX


@checks.register(checks.Tags.database)
def search_indexes_match_config(app_configs=None, databases=None, **kwargs):
    problems = []
    for alias in databases or []:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        config = settings.CHAT_SEARCH_CONFIG
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = %s)",
                [config.rsplit(".", 1)[-1]],
            )
            if not cursor.fetchone()[0]:
                problems.append(
                    checks.Error(
                        f"CHAT_SEARCH_CONFIG={config!r} is not a text search configuration of "
                        "this database: every search would fail.",
                        hint="SELECT cfgname FROM pg_ts_config lists them (english, simple, …).",
                        id="chat.E001",
                    )
                )
                continue
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN (%s, %s)",
                [TITLE_INDEX, CONTENT_INDEX],
            )
            definitions = dict(cursor.fetchall())
        if not definitions:
            continue  # not migrated yet: migration 0004 builds them
        wanted = f"'{settings.CHAT_SEARCH_CONFIG}'::regconfig"
        stale = sorted(
            name for name in (TITLE_INDEX, CONTENT_INDEX) if wanted not in definitions.get(name, "")
        )
        if stale:
            problems.append(
                checks.Warning(
                    f"The search indexes {', '.join(stale)} were not built for "
                    f"CHAT_SEARCH_CONFIG={settings.CHAT_SEARCH_CONFIG!r}: searches do not use "
                    "them (they still work, scanning).",
                    hint="Run `manage.py rebuild_search_indexes`.",
                    id="chat.W001",
                )
            )
    return problems
