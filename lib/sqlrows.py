"""Hand-written SELECTs that keep the ORM's value conversion: quoting, ``IN`` lists, rows, models.

A small library for the few statements on the socket hot paths that the QuerySet API makes
too slow (docs/benchmarks.md: the table of session 3's changes under the run of
2026-11-26 18:44 UTC): building a QuerySet per call (query
compilation, one parameter at a time) and turning rows into objects (``RawQuerySet`` resolves
its columns on every query) cost several times what the database takes to run them. These
helpers keep Django's conversion — each column goes through the converters the ORM applies
for its field on this database — and build model instances through ``Model.from_db``, the
documented hook the ORM itself uses.

Only for statements over models' own tables, written with ``table`` / ``column`` (quoted
names, so the same SQL runs on SQLite and PostgreSQL), on the default database. The
statements themselves live in the app that owns the data (``accounts.queries``,
``channels_app.access``), each with a test that compares its rows with the ORM query it
replaces. Not a query builder: anything that is not a hot path uses the ORM.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Field, ForeignObjectRel, Model

M = TypeVar("M", bound=Model)

_Converter = tuple[Any, list[Callable]]
_converters: dict[tuple[str, Field], _Converter] = {}


def table(model: type[Model]) -> str:
    """``model``'s table name, quoted for the default database."""
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[Model], name: str) -> str:
    """The column of ``model``'s field ``name`` (``"user"`` gives ``user_id``), quoted."""
    return connection.ops.quote_name(column_name(model._meta.get_field(name)))


def column_name(field: Field | ForeignObjectRel) -> str:
    """The column of a field, unquoted; ``ValueError`` for a field without one of its own (a
    reverse relation)."""
    if not isinstance(field, Field) or field.column is None:
        raise ValueError(f"{field!r} has no column of its own")
    return field.column


#: Values per statement in an ``IN (…)`` list (well under SQLite's bound-parameter limit).
IN_LIST_MAX = 500


def chunks(values: Sequence[Any], size: int = IN_LIST_MAX) -> Iterator[Sequence[Any]]:
    """``values`` in slices of at most ``size``: one ``IN (…)`` statement each."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def placeholders(count: int) -> str:
    """``%s, %s, …`` for an ``IN (…)`` list of ``count`` values."""
    return ", ".join(["%s"] * count)


def db_values(field: Field, values: Sequence[Any]) -> list[Any]:
    """``values`` as parameters for a comparison with ``field`` (a UUID becomes SQLite's hex
    text, and so on)."""
    return [field.get_db_prep_value(value, connection) for value in values]


def _converter(field: Field) -> _Converter:
    key = (connection.vendor, field)
    found = _converters.get(key)
    if found is None:
        expression = field.get_col(field.model._meta.db_table)
        found = _converters[key] = (
            expression,
            connection.ops.get_db_converters(expression) + expression.get_db_converters(connection),
        )
    return found


def select(sql: str, params: Sequence[Any], fields: Sequence[Field]) -> list[list[Any]]:
    """Run ``sql``; each row with its columns converted as the ORM would for ``fields`` (one
    field per selected column, in order)."""
    db = connections[DEFAULT_DB_ALIAS]  # the wrapper itself: ``connection`` is a proxy
    converters = [
        (index, expression, functions)
        for index, (expression, functions) in enumerate(map(_converter, fields))
        if functions
    ]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    converted = []
    for row in rows:
        values = list(row)
        for index, expression, functions in converters:
            value = values[index]
            for function in functions:
                value = function(value, expression, db)
            values[index] = value
        converted.append(values)
    return converted


def load(model: type[M], where: str, params: Sequence[Any]) -> list[M]:
    """Instances of ``model`` from ``SELECT <every concrete column> FROM <its table> WHERE
    <where>``, built like the ORM builds them (``Model.from_db``)."""
    fields = model._meta.concrete_fields
    names = [field.attname for field in fields]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column_name(f)) for f in fields)
    sql = f"SELECT {columns} FROM {table(model)} WHERE {where}"
    return [model.from_db(DEFAULT_DB_ALIAS, names, row) for row in select(sql, params, fields)]
