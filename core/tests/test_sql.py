"""The hot path's hand-written statements (`core.sql`) store exactly what the ORM stores; on
PostgreSQL their rows and values go as one JSON parameter each."""

import datetime
import decimal
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models import JSONField

from chat.models import Conversation, Message
from core import sql
from tests.require import require
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

#: Text that quoting gets wrong when it is done wrong: quotes, a backslash, a newline, accents,
#: an emoji, a JSON-looking string and SQL.
AWKWARD = 'It\'s "quoted" \\ back\nslash: é, 😀, {"a": 1}, \'); DROP TABLE x; --'


@pytest.fixture(autouse=True)
def _postgres():
    require(
        connection.vendor == "postgresql",
        "needs PostgreSQL (DATABASE_URL=postgres://...): elsewhere the statements bind parameters",
    )


@pytest.fixture
def conversation():
    user = get_user_model().objects.create_user("sql", password="pw-123456789")
    return Conversation.objects.create(user=user, title="t", next_position=10)


def message(conversation, position: int, **fields) -> Message:
    fields.setdefault("status", Message.Status.COMPLETE)
    return Message(
        conversation=conversation,
        position=position,
        role=Message.Role.ASSISTANT,
        content=AWKWARD,
        parts=[{"type": "text", "text": AWKWARD}, {"type": "source-url", "n": 1.5, "x": None}],
        model="gemini-2.5-flash",
        input_tokens=12,
        output_tokens=None,
        client_message_id=None,
        heartbeat_at=datetime.datetime(2026, 12, 7, 16, 5, 4, 321, tzinfo=datetime.UTC),
        **fields,
    )


def stored(pk) -> dict:
    """The row as the ORM reads it, and its jsonb as PostgreSQL prints it."""
    row = Message.objects.filter(pk=pk).values().get()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT parts::text FROM {Message._meta.db_table} WHERE id = %s", [pk])
        row["parts_text"] = cursor.fetchone()[0]
    for name in ("id", "position", "created_at", "updated_at"):
        row.pop(name)
    return row


def test_an_insert_stores_the_row_the_orm_stores(conversation):
    by_orm, by_sql = message(conversation, 0), message(conversation, 1)
    Message.objects.bulk_create([by_orm])

    statement = sql.insert_statement([by_sql])
    sql.execute(statement)

    assert len(statement.params) == 1  # one JSON document, however many columns
    assert stored(by_sql.pk) == stored(by_orm.pk)
    assert stored(by_sql.pk)["content"] == AWKWARD


def test_several_rows_go_in_one_parameter(conversation):
    statement = sql.insert_statement([message(conversation, 0), message(conversation, 1)])

    assert sql.execute(statement) == 2
    assert len(statement.params) == 1
    assert conversation.messages.count() == 2


def test_an_update_stores_what_the_orm_stores(conversation):
    by_orm, by_sql = message(conversation, 0), message(conversation, 1)
    Message.objects.bulk_create([by_orm, by_sql])
    values = {
        "content": AWKWARD + "!",
        "parts": {"nested": [AWKWARD, {"k": True}]},
        "status": Message.Status.INTERRUPTED,
        "output_tokens": 7,
        "heartbeat_at": None,
    }
    Message.objects.filter(pk=by_orm.pk).update(**values)

    statement = sql.update_statement(Message, values, "id = %s", [by_sql.pk])

    assert sql.execute(statement) == 1
    assert statement.params == [statement.params[0], by_sql.pk]  # the values: one parameter
    assert stored(by_sql.pk) == stored(by_orm.pk)


def test_a_value_json_cannot_carry_is_bound_as_a_parameter(conversation):
    """orjson refuses an integer beyond 64 bits (json.dumps and jsonb take it): the statement
    binds its parameters, and stores what the ORM stores."""
    huge = {"n": 2**70}
    by_orm = message(conversation, 0, finish_reason="stop")
    by_orm.parts = huge
    by_sql = message(conversation, 1, finish_reason="stop")
    by_sql.parts = huge
    Message.objects.bulk_create([by_orm])

    statement = sql.insert_statement([by_sql])
    sql.execute(statement)

    assert len(statement.params) > 1
    assert stored(by_sql.pk) == stored(by_orm.pk)
    assert stored(by_sql.pk)["parts"] == huge


def test_update_then_insert_inserts_only_when_the_update_matched(conversation):
    """The reply's save bills its usage in the same statement, once: only the writer whose
    UPDATE found the reply still streaming inserts the usage row."""
    reply = message(conversation, 0, status=Message.Status.STREAMING)
    Message.objects.bulk_create([reply])

    def save():
        record = UsageRecord(
            user_id=conversation.user_id,
            endpoint="chat",
            model="m",
            input_tokens=1,
            output_tokens=2,
            total_tokens=3,
        )
        step = sql.update_then_insert_step(
            Message,
            {"status": Message.Status.COMPLETE},
            "id = %s AND status = %s",
            [reply.pk, Message.Status.STREAMING],
            record,
        )
        assert len(step.params) == 4  # the new values, the two conditions, the new row
        return sql.execute(step)

    assert save() == 1
    assert save() == 0
    assert list(UsageRecord.objects.values_list("total_tokens", "endpoint")) == [(3, "chat")]
    assert Message.objects.get(pk=reply.pk).status == Message.Status.COMPLETE


def test_insert_then_update_moves_the_conversation_on(conversation):
    step = sql.insert_then_update_step(
        [message(conversation, 10), message(conversation, 11)],
        Conversation,
        {"next_position": 12},
        "id = %s",
        [conversation.pk],
    )

    assert sql.execute(step) == 1
    assert len(step.params) == 3
    assert Conversation.objects.get(pk=conversation.pk).next_position == 12
    assert list(conversation.messages.values_list("position", flat=True)) == [10, 11]


def test_insert_if_inserts_all_or_nothing(conversation):
    user_id = conversation.user_id

    def insert(active: bool) -> int:
        new = Conversation(user_id=user_id, title=AWKWARD[:200], next_position=2)
        rows = [new, message(new, 0), message(new, 1)]
        statement = sql.insert_if_statement(rows, "%s", [active])
        assert len(statement.params) == 4  # a row each, and the condition's
        return sql.execute(statement)

    assert insert(False) == 0
    assert Conversation.objects.filter(title=AWKWARD[:200]).count() == 0
    assert insert(True) == 1
    (new,) = Conversation.objects.filter(title=AWKWARD[:200])
    assert new.messages.count() == 2


def test_a_json_field_with_an_encoder_is_written_by_it():
    """As the ORM writes it: a Decimal through DjangoJSONEncoder is a string."""
    field = JSONField(encoder=DjangoJSONEncoder)
    field.set_attributes_from_name("data")

    written = sql._json({"data": sql._prep(field, {"d": decimal.Decimal("1.50")})})

    assert written == '{"data":{"d": "1.50"}}'  # json.dumps's spacing, inside orjson's


def test_a_uuid_and_a_time_are_read_as_their_columns_types(conversation):
    reply = message(conversation, 0, id=uuid.UUID(int=7))
    sql.execute(sql.insert_statement([reply]))

    row = Message.objects.get(pk=uuid.UUID(int=7))
    assert row.heartbeat_at == datetime.datetime(2026, 12, 7, 16, 5, 4, 321, tzinfo=datetime.UTC)
    assert row.conversation_id == conversation.pk
