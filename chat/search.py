"""Searching conversations: PostgreSQL full-text search, `icontains` elsewhere (SQLite).

On PostgreSQL a conversation matches when its title or one of its messages matches the query
(websearch syntax: `"exact phrase"`, `or`, `-word`), in the text search configuration
`CHAT_SEARCH_CONFIG` (stemming: "running" finds "run"). It is ranked by its title (weight A) plus
the sum of its matching messages' ranks (weight B): a title match outranks one mention in a
message, and more matches rank higher. Its `snippet` is `ts_headline` of its best matching
message (or its title when only the title matches).

The two GIN indexes below serve the `@@` filters, so their expressions are built by the same
functions as the queries' (`title_vector`, `content_vector`): PostgreSQL only uses an expression
index for the very same expression, configuration included. Changing `CHAT_SEARCH_CONFIG` thus
leaves them unused (searches still work, scanning) until `manage.py rebuild_search_indexes`
rebuilds them; `manage.py check --database default` (and `migrate`) warn about it.

Elsewhere (SQLite) a conversation matches when the query is part of its title or of a message
(case-insensitive for ASCII); ranked by a title match (1) plus 0.4 a matching message, with a
snippet cut around the first match."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import (
    SearchHeadline,
    SearchQuery,
    SearchRank,
    SearchVector,
)
from django.db import connection as default_connection
from django.db.models import (
    Case,
    Count,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest, Lower, StrIndex, Substr

from .models import Conversation, Message

#: Longer queries are refused (400): they cost the database more than they can find.
MAX_QUERY_CHARS = 200
TITLE_INDEX = "chat_conversation_title_fts"
CONTENT_INDEX = "chat_message_content_fts"
#: Snippets: ts_headline's length in words; elsewhere, characters around the first match.
SNIPPET_WORDS = (15, 35)
SNIPPET_CHARS_BEFORE, SNIPPET_CHARS = 60, 200


def full_text_search(connection=default_connection) -> bool:
    return connection.vendor == "postgresql"


def title_vector() -> SearchVector:
    """`setweight(to_tsvector(<config>, COALESCE(title, '')), 'A')`: queries and index alike."""
    return SearchVector("title", config=settings.CHAT_SEARCH_CONFIG, weight="A")


def content_vector() -> SearchVector:
    return SearchVector("content", config=settings.CHAT_SEARCH_CONFIG, weight="B")


def search_query(q: str) -> SearchQuery:
    return SearchQuery(q, search_type="websearch", config=settings.CHAT_SEARCH_CONFIG)


def search_indexes() -> list[tuple[type, GinIndex]]:
    """The GIN indexes of the current `CHAT_SEARCH_CONFIG`, with the models they belong to."""
    return [
        (Conversation, GinIndex(title_vector(), name=TITLE_INDEX)),
        (Message, GinIndex(content_vector(), name=CONTENT_INDEX)),
    ]


def matching_conversations(
    conversations: QuerySet[Conversation], q: str, *, user=None, also: Q | None = None
) -> QuerySet[Conversation]:
    """`conversations` that match `q` (or the condition `also`, ranked 0), annotated with
    `search_rank` and `snippet` (not ordered). With `user`, the database looks only at that
    user's titles and messages."""
    titles, messages = Conversation.objects.all(), Message.objects.all()
    if user is not None:
        titles, messages = titles.filter(user=user), messages.filter(conversation__user=user)
    if full_text_search():
        found, matches = _full_text(conversations, titles, messages, q)
    else:
        found, matches = _contains(conversations, titles, messages, q)
    return found.filter(matches | also if also is not None else matches)


def search_conversations(*, user, q: str) -> QuerySet[Conversation]:
    """The user's conversations matching `q`, best first, each with `snippet`, `search_rank` and
    `message_count`: one query (and DRF's count)."""
    own = Conversation.objects.filter(user=user)
    found = matching_conversations(own, q, user=user)
    count = (
        Message.objects.filter(conversation=OuterRef("pk"))
        .order_by()
        .values("conversation")
        .annotate(n=Count("*"))
        .values("n")
    )
    return found.annotate(message_count=Coalesce(Subquery(count), 0)).order_by(
        "-search_rank", "-updated_at", "pk"
    )


def _full_text(conversations, titles, messages, q: str):
    query = search_query(q)
    title_rank = SearchRank(title_vector(), query)
    # Filters by matching conversation ids, not by EXISTS per conversation: each id list comes
    # from one GIN index scan (a "hashed SubPlan"), whatever the number of conversations.
    matching_messages = messages.annotate(document=content_vector()).filter(document=query)
    titled = titles.annotate(document=title_vector()).filter(document=query)
    of_conversation = (
        Message.objects.annotate(document=content_vector())
        .filter(document=query, conversation=OuterRef("pk"))
        .order_by()
    )
    body_rank = (
        of_conversation.values("conversation")
        .annotate(rank=Sum(SearchRank(content_vector(), query)))
        .values("rank")
    )
    best_message = of_conversation.annotate(rank=SearchRank(content_vector(), query)).order_by(
        "-rank", "position"
    )
    headline = SearchHeadline(
        "content",
        query,
        config=settings.CHAT_SEARCH_CONFIG,
        start_sel="",
        stop_sel="",
        min_words=SNIPPET_WORDS[0],
        max_words=SNIPPET_WORDS[1],
    )
    matches = Q(pk__in=titled.values("pk")) | Q(pk__in=matching_messages.values("conversation_id"))
    ranked = conversations.annotate(
        search_rank=title_rank + Coalesce(Subquery(body_rank), Value(0.0)),
        snippet=Coalesce(
            Subquery(best_message.values(snippet=headline)[:1]),
            F("title"),
            output_field=TextField(),
        ),
    )
    return ranked, matches


def _contains(conversations, titles, messages, q: str):
    matching_messages = messages.filter(content__icontains=q)
    of_conversation = Message.objects.filter(
        content__icontains=q, conversation=OuterRef("pk")
    ).order_by()
    count = of_conversation.values("conversation").annotate(n=Count("*")).values("n")
    first_match = StrIndex(Lower("content"), Value(q.lower()))
    around = Substr(
        "content", Greatest(first_match - SNIPPET_CHARS_BEFORE, Value(1)), SNIPPET_CHARS
    )
    first_message = of_conversation.order_by("position").values(snippet=around)[:1]
    matches = Q(pk__in=titles.filter(title__icontains=q).values("pk")) | Q(
        pk__in=matching_messages.values("conversation_id")
    )
    ranked = conversations.annotate(
        search_rank=Case(
            When(title__icontains=q, then=Value(1.0)), default=Value(0.0), output_field=FloatField()
        )
        + 0.4 * Coalesce(Subquery(count), 0),
        snippet=Coalesce(Subquery(first_message), F("title"), output_field=TextField()),
    )
    return ranked, matches


def search_messages(messages: QuerySet[Message], q: str) -> QuerySet[Message]:
    """`messages` whose text matches `q`, annotated with `search_rank` (not ordered)."""
    if not full_text_search():
        return messages.filter(content__icontains=q).annotate(
            search_rank=Value(0.0, output_field=FloatField())
        )
    query = search_query(q)
    return (
        messages.annotate(document=content_vector())
        .filter(document=query)
        .annotate(search_rank=SearchRank(content_vector(), query))
    )
