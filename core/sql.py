"""Statements that run on every chat turn, without the ORM's per-query work.

Where PostgreSQL can do two of them in one statement (a data-modifying `WITH`), they are sent as
one: a round trip costs ~0.1 ms of CPU in the worker (sending, waiting, taking the GIL back), and
a statement on its own is atomic, so no BEGIN and COMMIT of a transaction (two more round trips).
SQLite runs the same two statements in a transaction.

Building a query with the ORM (cloning querysets, resolving lookups, compiling SQL, making model
instances) costs 0.3-1 ms of CPU a statement under load, more than the database spends running
it; a turn runs six of them. The few statements of the turn's hot path are therefore written in
SQL against the models' own table and column names, and their values go through the fields' own
conversions (`get_db_prep_save`), so they read and write exactly what the ORM would, on
PostgreSQL and on SQLite. Everything else uses the ORM.

On PostgreSQL a statement's rows and values go as one JSON parameter, which the database turns
into the columns' types (`jsonb_populate_recordset`): psycopg quotes each parameter of a
client-side statement in Python (a timestamp ~5 µs, a jsonb ~8 µs), and a continued turn's
INSERT and UPDATE had 53 of them, ~5 % of its CPU in the served benchmark. One JSON document
(orjson) and one quoted string cost a few µs. What a value is stored as does not change: it is
the field's own Python conversion (`get_prep_value`, what `get_db_prep_save` starts from), read
by PostgreSQL's input function for the column's type, as the quoted parameter was. A value with
no JSON form (a lone surrogate, a Decimal) makes the statement bind its parameters as before.

A statement is built as a `Statement` (its SQL and parameters) and run by whoever holds the
connection: `execute` here, through Django's connection (in a database thread, or in the ORM's
transaction), or `core.adb.execute`, on the event loop. Code that runs several, deciding between
them, is written once as a generator of steps (a `Statement`, or a `Call` of sync ORM code) and
driven by `run` here or by `core.adb.run` on the loop: the way psycopg itself writes its protocol
once, as generators, for its sync and async connections."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TypeVar

import orjson
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Model, UUIDField


@cache
def db():
    """The database's wrapper that statements are built with (names quoted, values converted by
    its `ops`); it never connects: they run through `connection` (`execute`) or `core.adb`.

    Not `django.db.connection`: that is one wrapper per thread and, on the event loop, one per
    task (asgiref's `Local`); each look-up through it costs a few µs, and each new task (every
    request, every generation) makes a wrapper of its own on first use: ~0.3 ms of a turn's CPU
    on the loop. The conversions do not depend on which wrapper makes them."""
    return connections.create_connection(DEFAULT_DB_ALIAS)


def quote(name: str) -> str:
    return db().ops.quote_name(name)


def as_uuid(value) -> uuid.UUID:
    """A UUID column's value as read (PostgreSQL: a UUID; SQLite: its hex)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


_UUID = UUIDField()


def uuid_param(value: uuid.UUID | str):
    """A UUID as a query parameter for this database (SQLite stores its hex)."""
    return _UUID.get_db_prep_value(value, db())


@cache
def _insert_sql(
    model: type[Model], vendor: str, rows: int, *, select: bool = False
) -> tuple[str, tuple]:
    """`INSERT INTO table (columns) VALUES (%s, …), …` for `rows` rows, or with `select` (one
    row) `… SELECT %s, …`, for a `FROM` to follow; and the fields, in the columns' order."""
    fields = _concrete_fields(model)
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    values = (
        f"SELECT {placeholders}" if select else "VALUES " + ", ".join([f"({placeholders})"] * rows)
    )
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) {values}", fields


def _insert_params(objects: Sequence[Model], fields: tuple) -> list:
    """Each object's values as `bulk_create` stores them: `pre_save` (auto_now), then
    `get_db_prep_save`."""
    wrapper = db()
    return [
        field.get_db_prep_save(field.pre_save(obj, True), wrapper)
        for obj in objects
        for field in fields
    ]


def _concrete_fields(model: type[Model]) -> tuple:
    """The fields an INSERT writes: all but an auto-increment primary key (the database's)."""
    return tuple(f for f in model._meta.concrete_fields if f is not model._meta.auto_field)


@cache
def _insert_json_sql(model: type[Model]) -> tuple[str, tuple]:
    """PostgreSQL: `INSERT INTO table (columns) SELECT columns FROM` the rows of one JSON
    parameter (an array of objects by column name), each value read as its column's type; and
    the fields. A `WHERE` may follow."""
    fields = _concrete_fields(model)
    columns = ", ".join(quote(f.column) for f in fields)
    table = quote(model._meta.db_table)
    rows = f"jsonb_populate_recordset(NULL::{table}, %s::jsonb)"
    return f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {rows}", fields


@cache
def _update_json_sql(model: type[Model], names: tuple[str, ...], where: str):
    """PostgreSQL: `UPDATE table SET (columns) = (…) WHERE where`, the new values from one JSON
    parameter (an object by column name), each read as its column's type; and the fields."""
    fields = tuple(model._meta.get_field(name) for name in names)
    columns = ", ".join(quote(f.column) for f in fields)
    table = quote(model._meta.db_table)
    new = f"SELECT {columns} FROM jsonb_populate_record(NULL::{table}, %s::jsonb)"
    return f"UPDATE {table} SET ({columns}) = ({new}) WHERE {where}", fields


def _prep(field, value):
    """`value` as `field.get_db_prep_save` starts from it (its Python conversion); a JSONField
    with an encoder of its own, as that encoder writes it."""
    value = field.get_prep_value(value)
    if value is not None and getattr(field, "encoder", None) is not None:
        return orjson.Fragment(json.dumps(value, cls=field.encoder))
    return value


def _json(value) -> str | None:
    """`value` as JSON text (orjson); None when it has none (the statement binds parameters)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return None


def _rows_json(objects: Sequence[Model], fields: tuple) -> str | None:
    """The objects' rows for `_insert_json_sql`: `pre_save` (auto_now), then `_prep`."""
    return _json([{f.column: _prep(f, f.pre_save(obj, True)) for f in fields} for obj in objects])


def _values_json(fields: tuple, values: dict[str, object]) -> str | None:
    """The new values for `_update_json_sql`."""
    pairs = zip(fields, values.values(), strict=True)
    return _json({f.column: _prep(f, value) for f, value in pairs})


def _postgresql() -> bool:
    return db().vendor == "postgresql"


R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement and its parameters. Run (`execute`, `core.adb.execute`): its rows when it
    `fetch`es, else the number of rows it changed."""

    sql: str
    params: Sequence = ()
    fetch: bool = False


@dataclass(frozen=True, slots=True)
class Call:
    """Sync code a sequence of steps needs (the ORM, a transaction): called as it is by `run`,
    in a database thread by `core.adb.run`."""

    fn: Callable
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def __call__(self):
        return self.fn(*self.args, **self.kwargs)


Step = Statement | Call
#: Code that runs statements, written once for both drivers: a generator that yields each step
#: and is sent what it gave (or thrown what it raised), and returns its result.
Steps = Generator[Step, object, R]


def execute(statement: Statement):
    """Run `statement` through Django's connection (this thread's, in its transaction if any)."""
    with connection.cursor() as cursor:
        cursor.execute(statement.sql, statement.params)
        return cursor.fetchall() if statement.fetch else cursor.rowcount


def run_step(step: Step):
    return execute(step) if type(step) is Statement else step()


def advance(steps: Steps, sent=None, error: Exception | None = None) -> tuple[bool, object]:
    """Send `steps` what their last step gave, or throw them what it raised (they may handle
    it): (True, their result) once they returned, else (False, their next step)."""
    try:
        return False, steps.send(sent) if error is None else steps.throw(error)
    except StopIteration as done:
        return True, done.value


def run(steps: Steps[R]) -> R:
    """Drive `steps` in this thread: each statement through Django's connection, each call
    called."""
    done, step = advance(steps)
    while not done:
        try:
            result = run_step(step)
        except Exception as exc:  # noqa: BLE001 - the steps' to handle
            done, step = advance(steps, error=exc)
        else:
            done, step = advance(steps, result)
    return step


def insert_statement(objects: Sequence[Model]) -> Statement:
    """INSERT `objects` (of one model) in one statement, as `bulk_create` would store them. An
    auto-increment key is not read back."""
    model = type(objects[0])
    if _postgresql():
        statement, fields = _insert_json_sql(model)
        if (rows := _rows_json(objects, fields)) is not None:
            return Statement(statement, [rows])
    statement, fields = _insert_sql(model, db().vendor, len(objects))
    return Statement(statement, _insert_params(objects, fields))


def insert(objects: Sequence[Model]) -> None:
    execute(insert_statement(objects))


@cache
def _update_sql(model: type[Model], vendor: str, names: tuple[str, ...], where: str):
    fields = tuple(model._meta.get_field(name) for name in names)
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    return f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {where}", fields


def _update_params(fields: tuple, values: dict[str, object]) -> list:
    pairs = zip(fields, values.values(), strict=True)
    wrapper = db()
    return [field.get_db_prep_save(value, wrapper) for field, value in pairs]


def update_statement(
    model: type[Model], values: dict[str, object], where: str, params: Sequence
) -> Statement:
    """UPDATE `model`'s rows matching `where` (SQL over its columns, `%s` for `params`) to
    `values` (by field name, through each field's `get_db_prep_save`); run, the number of
    rows."""
    if _postgresql():
        statement, fields = _update_json_sql(model, tuple(values), where)
        if (new := _values_json(fields, values)) is not None:
            return Statement(statement, [new, *params])
    statement, fields = _update_sql(model, db().vendor, tuple(values), where)
    return Statement(statement, [*_update_params(fields, values), *params])


def update(model: type[Model], values: dict[str, object], where: str, params: Sequence) -> int:
    return execute(update_statement(model, values, where, params))


def update_then_insert_step(
    model: type[Model], values: dict[str, object], where: str, params: Sequence, obj: Model
) -> Step:
    """`update(model, values, where, params)` and, only if it matched a row, `insert([obj])`:
    one statement on PostgreSQL, a transaction elsewhere (a `Call`). `where` must match one row
    at most."""
    if not _postgresql():
        return Call(_update_then_insert_in_transaction, (model, values, where, params, obj))
    update_sql, update_fields = _update_json_sql(model, tuple(values), where)
    insert_sql, insert_fields = _insert_json_sql(type(obj))
    new, rows = _values_json(update_fields, values), _rows_json([obj], insert_fields)
    if new is not None and rows is not None:
        return Statement(
            f"WITH updated AS ({update_sql} RETURNING 1)"
            f" {insert_sql} WHERE EXISTS (SELECT FROM updated)",
            [new, *params, rows],
        )
    update_sql, update_fields = _update_sql(model, "postgresql", tuple(values), where)
    insert_sql, insert_fields = _insert_sql(type(obj), "postgresql", 1, select=True)
    return Statement(
        f"WITH updated AS ({update_sql} RETURNING 1) {insert_sql} FROM updated",
        [
            *_update_params(update_fields, values),
            *params,
            *_insert_params([obj], insert_fields),
        ],
    )


def _update_then_insert_in_transaction(model, values, where, params, obj) -> None:
    with transaction.atomic():
        if update(model, values, where, params):
            insert([obj])


def insert_then_update_step(
    objects: Sequence[Model],
    model: type[Model],
    values: dict[str, object],
    where: str,
    params: Sequence,
) -> Step:
    """`insert(objects)`, then `update(model, values, where, params)`: one statement on
    PostgreSQL, a transaction elsewhere (a `Call`; the caller's transaction, when it has one).
    Run, the number of rows updated."""
    if not _postgresql():
        return Call(_insert_then_update_in_transaction, (objects, model, values, where, params))
    insert_sql, insert_fields = _insert_json_sql(type(objects[0]))
    update_sql, update_fields = _update_json_sql(model, tuple(values), where)
    rows, new = _rows_json(objects, insert_fields), _values_json(update_fields, values)
    if rows is not None and new is not None:
        return Statement(f"WITH inserted AS ({insert_sql}) {update_sql}", [rows, new, *params])
    insert_sql, insert_fields = _insert_sql(type(objects[0]), "postgresql", len(objects))
    update_sql, update_fields = _update_sql(model, "postgresql", tuple(values), where)
    return Statement(
        f"WITH inserted AS ({insert_sql}) {update_sql}",
        [
            *_insert_params(objects, insert_fields),
            *_update_params(update_fields, values),
            *params,
        ],
    )


def _insert_then_update_in_transaction(objects, model, values, where, params) -> int:
    with transaction.atomic(savepoint=False):
        insert(objects)
        return update(model, values, where, params)


def insert_if_statement(objects: Sequence[Model], where: str, params: Sequence) -> Statement:
    """PostgreSQL: INSERT `objects` (a row each, in order, as `insert` stores them; a row may
    refer to an earlier one) in one statement, and only if `where` holds (a condition on no
    table, `%s` for `params`); run, the number of rows the last INSERT made (0: none was). All
    or none: the statement is atomic by itself."""
    inserts = [_insert_json_sql(type(obj)) for obj in objects]
    rows = [_rows_json([obj], fields) for obj, (_sql, fields) in zip(objects, inserts, strict=True)]
    if None not in rows:
        (first_sql, _fields), *rest_sql = inserts
        if not rest_sql:
            return Statement(f"{first_sql} WHERE {where}", [rows[0], *params])
        statement = [f"WITH i0 AS ({first_sql} WHERE {where} RETURNING 1)"]
        for n, (obj_sql, _fields) in enumerate(rest_sql, 1):
            then = f"{obj_sql} WHERE EXISTS (SELECT FROM i0)"
            statement.append(f" {then}" if n == len(rest_sql) else f", i{n} AS ({then})")
        return Statement("".join(statement), [rows[0], *params, *rows[1:]])
    first, *rest = objects
    first_sql, first_fields = _insert_sql(type(first), "postgresql", 1, select=True)
    params = [*_insert_params([first], first_fields), *params]
    if not rest:
        statement = f"{first_sql} WHERE {where}"
    else:
        inserts = [f"WITH i0 AS ({first_sql} WHERE {where} RETURNING 1)"]
        for n, obj in enumerate(rest, 1):
            obj_sql, obj_fields = _insert_sql(type(obj), "postgresql", 1, select=True)
            params += _insert_params([obj], obj_fields)
            last = n == len(rest)
            inserts.append(f" {obj_sql} FROM i0" if last else f", i{n} AS ({obj_sql} FROM i0)")
        statement = "".join(inserts)
    return Statement(statement, params)
