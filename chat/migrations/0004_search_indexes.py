"""GIN indexes of conversation search, on PostgreSQL only (SQLite searches with `icontains`).

Built for the `CHAT_SEARCH_CONFIG` of the database migrated: `chat.search` makes the indexes'
expressions with the queries' own functions, so that they match. After changing the setting:
`manage.py rebuild_search_indexes`."""

from django.db import migrations


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from chat.search import search_indexes

    for model, index in search_indexes():
        schema_editor.add_index(apps.get_model("chat", model.__name__), index)


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from chat.search import CONTENT_INDEX, TITLE_INDEX

    for name in (TITLE_INDEX, CONTENT_INDEX):
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


class Migration(migrations.Migration):
    dependencies = [("chat", "0003_review_feedback_and_title_source")]

    operations = [migrations.RunPython(create_indexes, drop_indexes, elidable=False)]
