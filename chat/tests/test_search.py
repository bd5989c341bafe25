"""Searching conversations: `GET /api/chat/conversations/?q=` for their owner, the admin's
changelists. Full-text (PostgreSQL) where the database has it; the `icontains` fallback (SQLite's)
is also run on PostgreSQL by switching `chat.search.full_text_search` off."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import search
from chat.models import Conversation, Message
from tests.require import require

pytestmark = pytest.mark.django_db


def conversation(user, title, *texts):
    made = Conversation.objects.create(user=user, title=title, next_position=len(texts))
    Message.objects.bulk_create(
        Message(
            conversation=made,
            position=i,
            role="user" if i % 2 == 0 else "assistant",
            content=text,
            parts=[{"type": "text", "text": text}],
        )
        for i, text in enumerate(texts)
    )
    return made


@pytest.fixture(params=["database", "icontains"])
def search_kind(request, monkeypatch):
    """Each backend-neutral test twice: with the database's search (full-text on PostgreSQL) and
    with the `icontains` fallback."""
    if request.param == "icontains":
        monkeypatch.setattr(search, "full_text_search", lambda connection=None: False)
    return request.param


@pytest.fixture
def postgres():
    require(connection.vendor == "postgresql", "full-text search needs PostgreSQL (DATABASE_URL)")


def found(api, q, **params):
    response = api.get("/api/chat/conversations/", {"q": q, **params})
    assert response.status_code == 200, response.content
    return response.json()


def titles(body):
    return [c["title"] for c in body["results"]]


def test_title_match_ranks_above_a_mention_and_more_matches_higher(api, user, search_kind):
    conversation(user, "Nothing here", "Weather in Porto", "Sunny.")
    conversation(user, "Gardening", "Tomatoes and basil", "Then python scripts to water them.")
    conversation(user, "Python tips", "How do I sort a list?", "Use sorted().")
    conversation(user, "Snakes", "Is a python venomous?", "No: a python constricts its prey.")

    body = found(api, "python")

    assert titles(body) == ["Python tips", "Snakes", "Gardening"]
    assert body["count"] == 3
    assert [c["message_count"] for c in body["results"]] == [2, 2, 2]


def test_snippet_shows_the_matching_text(api, user, search_kind):
    filler = " ".join(["The long ride along the coast went on."] * 30)
    conversation(
        user, "Holidays", "Where to go?", f"{filler} Then the marathon in Lisbon. {filler}"
    )
    conversation(user, "Marathon training", "Plan?", "Run slowly.")

    results = found(api, "marathon")["results"]

    by_title = {c["title"]: c["snippet"] for c in results}
    assert "marathon in Lisbon" in by_title["Holidays"]
    assert len(by_title["Holidays"]) < 300  # a passage, not the whole message
    assert by_title["Marathon training"] == "Marathon training"  # only the title matched


def test_another_users_conversations_never_appear(api, user, other_user, search_kind):
    conversation(other_user, "Python secrets", "python python python", "python")
    conversation(user, "Mine", "a python question")

    body = found(api, "python")

    assert titles(body) == ["Mine"]
    assert body["count"] == 1


def test_no_match_is_an_empty_page(api, user, search_kind):
    conversation(user, "Cooking", "Pasta recipes")
    assert found(api, "astronomy") == {"count": 0, "next": None, "previous": None, "results": []}


def test_results_are_paginated_as_the_list_is(api, user, search_kind, settings):
    page_size = settings.REST_FRAMEWORK["PAGE_SIZE"]
    Conversation.objects.bulk_create(
        Conversation(user=user, title=f"Python {i}") for i in range(page_size + 2)
    )
    first = found(api, "python")
    assert first["count"] == page_size + 2 and len(first["results"]) == page_size
    second = found(api, "python", page=2)
    assert len(second["results"]) == 2 and second["next"] is None
    seen = {c["id"] for c in first["results"]} | {c["id"] for c in second["results"]}
    assert len(seen) == page_size + 2  # a stable order across pages


def test_search_is_two_queries_whatever_the_number_of_conversations(api, user, search_kind):
    def queries_for_search():
        with CaptureQueriesContext(connection) as queries:
            found(api, "python")
        return len(queries)

    conversation(user, "Python", "python")
    few = queries_for_search()
    for i in range(10):
        conversation(user, f"Python {i}", "python here", "and python there")
    assert queries_for_search() == few <= 3  # the count, the page (and the user)


def test_without_q_the_list_is_unchanged(api, user):
    conversation(user, "Plain", "hello")
    for params in ({}, {"q": ""}, {"q": "   "}):
        results = api.get("/api/chat/conversations/", params).json()["results"]
        assert [set(c) for c in results] == [
            {"id", "title", "created_at", "updated_at", "message_count"}
        ]


def test_overlong_q_is_refused(api, user):
    conversation(user, "Plain", "hello")
    response = api.get("/api/chat/conversations/", {"q": "x" * (search.MAX_QUERY_CHARS + 1)})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "query_too_long"
    ok = api.get("/api/chat/conversations/", {"q": "x" * search.MAX_QUERY_CHARS})
    assert ok.status_code == 200


def test_a_nul_character_is_refused(api, user, search_kind):
    response = api.get("/api/chat/conversations/", {"q": "py\x00thon"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_query"


def test_search_needs_a_token(client):
    assert client.get("/api/chat/conversations/", {"q": "python"}).status_code == 401


# --- PostgreSQL full-text search --------------------------------------------------------------


def test_stemming_finds_other_forms_of_a_word(api, user, postgres):
    conversation(user, "Morning routine", "I run every morning before work.")
    conversation(user, "Unrelated", "Reading a book.")

    results = found(api, "running")["results"]

    assert [(c["title"], c["snippet"]) for c in results] == [
        ("Morning routine", "I run every morning before work.")
    ]


def test_websearch_syntax(api, user, postgres):
    conversation(user, "Snakes", "The python is a snake.")
    conversation(user, "Code", "Python is a language.")
    assert titles(found(api, "python -snake")) == ["Code"]
    assert titles(found(api, '"python is a language"')) == ["Code"]
    assert titles(found(api, "snake or language")) in (["Snakes", "Code"], ["Code", "Snakes"])
    assert titles(found(api, "the")) == []  # only a stop word: matches nothing
    assert titles(found(api, "'&|!:*() <-> \\")) == []  # no syntax error in websearch syntax


def test_search_config_setting_changes_stemming(api, user, postgres, settings):
    conversation(user, "Morning routine", "I run every morning.")
    settings.CHAT_SEARCH_CONFIG = "simple"  # no stemming
    assert titles(found(api, "running")) == []
    assert titles(found(api, "run")) == ["Morning routine"]


def plan(sql, params):
    with connection.cursor() as cursor:
        # Even tiny tables: whether the planner *can* use the index (its expression matches the
        # query's), not whether it would choose it for three rows.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_gin_indexes_serve_the_search_filters(user, postgres):
    conversation(user, "Python tips", "a python question")
    query = search.search_query("python")
    messages = Message.objects.annotate(d=search.content_vector()).filter(d=query).order_by()
    titles_ = Conversation.objects.annotate(d=search.title_vector()).filter(d=query).order_by()

    assert search.CONTENT_INDEX in plan(*messages.values("pk").query.sql_with_params())
    assert search.TITLE_INDEX in plan(*titles_.values("pk").query.sql_with_params())
    # The admin's search, over every user's conversations: both id lists from the indexes. (An
    # owner's search may rather start from their conversations: the planner's choice.)
    everyone = search.matching_conversations(Conversation.objects.all(), "python")
    whole = plan(*everyone.query.sql_with_params())
    assert search.CONTENT_INDEX in whole and search.TITLE_INDEX in whole


def test_rebuilding_the_indexes_for_another_config(user, postgres, settings, capsys):
    conversation(user, "Python tips", "a python question")
    settings.CHAT_SEARCH_CONFIG = "simple"
    messages = (
        Message.objects.annotate(d=search.content_vector())
        .filter(d=search.search_query("python"))
        .order_by()
    )
    sql = messages.values("pk").query.sql_with_params()
    assert search.CONTENT_INDEX not in plan(*sql)  # built for 'english': unusable
    [warning] = _check_warnings()
    assert warning.id == "chat.W001" and "rebuild_search_indexes" in warning.hint

    with connection.cursor() as cursor:  # the rows above: no pending FK checks before DDL
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    call_command("rebuild_search_indexes")  # DDL: rolled back with the test's transaction

    assert "rebuilt for 'simple'" in capsys.readouterr().out
    assert search.CONTENT_INDEX in plan(*sql)
    assert _check_warnings() == []


def _check_warnings():
    from chat.checks import search_indexes_match_config

    return search_indexes_match_config(databases=["default"])


# --- Admin ----------------------------------------------------------------------------------------


def changelist_titles(admin_client, path, q):
    page = admin_client.get(path, {"q": q})
    assert page.status_code == 200
    return [obj.title for obj in page.context["cl"].result_list]


def test_admin_conversation_search_is_ranked(admin_client, user, other_user, search_kind):
    conversation(user, "Gardening", "Tomatoes", "Then python scripts to water them.")
    conversation(other_user, "Python tips", "How do I sort?")
    conversation(user, "Snakes", "Is a python venomous?", "No, a python constricts.")
    conversation(user, "Weather", "Sunny")

    page = admin_client.get("/admin/chat/conversation/", {"q": "python"})

    assert page.status_code == 200
    shown = [c.title for c in page.context["cl"].result_list]
    if search_kind == "database" and connection.vendor == "postgresql":
        assert shown == ["Python tips", "Snakes", "Gardening"]
        assert b"python scripts to water them" in page.content  # the snippet column
    else:
        assert sorted(shown) == ["Gardening", "Python tips", "Snakes"]


def test_admin_conversation_search_finds_a_username(admin_client, user, other_user):
    conversation(user, "Alice's", "hello")
    conversation(other_user, "Mallory's", "hello")
    page = admin_client.get("/admin/chat/conversation/", {"q": "mallory"})
    assert [c.title for c in page.context["cl"].result_list] == ["Mallory's"]
    for path in ("/admin/chat/conversation/", "/admin/chat/message/"):
        assert admin_client.get(path, {"q": "hel\x00lo"}).status_code == 200


def test_admin_message_search_uses_stems_and_ranks(admin_client, user, postgres):
    conversation(user, "Runs", "I ran once.", "Running, runs, run: I run daily.", "No match.")
    page = admin_client.get("/admin/chat/message/", {"q": "running"})
    assert [m.content for m in page.context["cl"].result_list] == [
        "Running, runs, run: I run daily."
    ]
    conversation(user, "More", "run", "a run and then more words around it to lower its rank")
    page = admin_client.get("/admin/chat/message/", {"q": "run"})
    shown = [m.content for m in page.context["cl"].result_list]
    assert shown[0] == "Running, runs, run: I run daily." and len(shown) == 3


def test_an_unknown_search_config_is_a_check_error(postgres, settings):
    settings.CHAT_SEARCH_CONFIG = "klingon"
    [error] = _check_warnings()
    assert error.id == "chat.E001" and "klingon" in error.msg
