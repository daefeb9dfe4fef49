"""Lean reads and writes for the hot paths (the runner's claim and step write, a start's
workflow row and its process's INSERT, a blueprint step's completion): SQL written from the
models' metadata once per shape, rows converted as the ORM converts a query's. Building the
same ORM queries again at every step was most of their CPU (bench/load.py,
bench/blueprint_parallel.py), for statements whose shape never changes.

Portable SQL (PostgreSQL and SQLite); only model metadata (quoted names) is formatted into
it, every value is a parameter.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, Model

# What a row is read into: (model, table alias, field names); the instances it makes
# have only these fields loaded (the others load on first use, as with `.only()`).
Part = tuple[type[Model], str, tuple[str, ...]]


@functools.cache
def fields_of(model: type[Model], names: tuple[str, ...]) -> tuple[Field, ...]:
    """The fields `names`, in the model's order (the order `Model.from_db` takes values in)."""
    wanted = {model._meta.get_field(name) for name in names}
    return tuple(field for field in model._meta.concrete_fields if field in wanted)


def quote(name: str) -> str:
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(name)


def table(model: type[Model]) -> str:
    return quote(model._meta.db_table)


def column(alias: str, model: type[Model], name: str) -> str:
    return f"{alias}.{quote(model._meta.get_field(name).column)}"


def param(model: type[Model], name: str, value: Any) -> Any:
    """`value` as a parameter for the column of `model`'s field `name`."""
    return model._meta.get_field(name).get_db_prep_value(value, connections[DEFAULT_DB_ALIAS])


@functools.cache
def select_list(vendor: str, parts: tuple[Part, ...]) -> str:
    return ", ".join(
        f"{alias}.{quote(field.column)}"
        for model, alias, names in parts for field in fields_of(model, names)
    )


@functools.cache
def loader(vendor: str, model: type[Model],
           names: tuple[str, ...]) -> tuple[list[str], list[tuple[int, Any, list[Any]]]]:
    """The attribute names of the fields `names`, and for each column with any, its
    position, its expression and the converters the ORM applies to its values."""
    db = connections[DEFAULT_DB_ALIAS]
    conversions = []
    for index, field in enumerate(fields_of(model, names)):
        col = field.get_col(model._meta.db_table)
        converters = db.ops.get_db_converters(col) + col.get_db_converters(db)
        if converters:
            conversions.append((index, col, converters))
    return [field.attname for field in fields_of(model, names)], conversions


def instance(db: Any, model: type[Model], names: tuple[str, ...],
             values: Sequence[Any]) -> Any:
    """An instance of `model` with the fields `names` loaded from raw column `values`."""
    attnames, conversions = loader(db.vendor, model, names)
    converted = list(values)
    for index, col, converters in conversions:
        for converter in converters:
            converted[index] = converter(converted[index], col, db)
    return model.from_db(db.alias, attnames, converted)


@functools.cache
def concrete_names(model: type[Model]) -> tuple[str, ...]:
    return tuple(field.name for field in model._meta.concrete_fields)


def model_from_row(model: type[Model], row: Sequence[Any]) -> Any:
    """An instance of `model` from all its concrete columns, in the model's order, as the
    driver returned them."""
    return instance(connections[DEFAULT_DB_ALIAS], model, concrete_names(model), row)


def select(parts: tuple[Part, ...], rest: str, params: Sequence[Any],
           lock_of: str | None = None) -> list[tuple[Any, ...]]:
    """`SELECT <parts' columns> <rest>`, each row as one instance per part (None for a
    part whose columns are all NULL: an outer join that found nothing). `lock_of` locks
    the rows of that table alias (FOR UPDATE OF; the whole SELECT where OF is not
    supported; nothing where the database has one writer at a time, like SQLite)."""
    db = connections[DEFAULT_DB_ALIAS]
    sql = f"SELECT {select_list(db.vendor, parts)} {rest}"
    if lock_of is not None and db.features.has_select_for_update:
        sql += " FOR UPDATE" + (f" OF {lock_of}" if db.features.has_select_for_update_of else "")
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    found = []
    for row in rows:
        instances, start = [], 0
        for model, _, names in parts:
            values = row[start:start + len(names)]
            start += len(names)
            empty = all(value is None for value in values)
            instances.append(None if empty else instance(db, model, names, values))
        found.append(tuple(instances))
    return found


@functools.cache
def update_sql(vendor: str, model: type[Model], names: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields_of(model, names))
    return f"UPDATE {table(model)} SET {assignments} WHERE {quote(model._meta.pk.column)} = %s"  # noqa: S608


@functools.cache
def insert_sql(vendor: str, model: type[Model]) -> tuple[str, str]:
    """`INSERT INTO <table> (<every concrete column>) VALUES`, and one row's placeholders."""
    fields = model._meta.concrete_fields
    columns = ", ".join(quote(field.column) for field in fields)
    return (f"INSERT INTO {table(model)} ({columns}) VALUES ",  # noqa: S608
            "(" + ", ".join(["%s"] * len(fields)) + ")")


def insert(objs: Sequence[Model]) -> None:
    """Store new objects of one model in one INSERT (like `bulk_create`, without building
    the ORM's query per call; a run's start stores its process this way). Every concrete
    field is written, `auto_now`/`auto_now_add` set as the ORM sets them, so the primary
    key must be set by the model (a UUID default), not by the database; no signals. One
    statement whatever the count: callers keep it within the database's parameter limit (a
    batch start's 1,000 runs are about 26,000 parameters; PostgreSQL takes 65,535)."""
    if not objs:
        return
    db = connections[DEFAULT_DB_ALIAS]
    model = type(objs[0])
    if model._meta.pk.db_returning:
        raise TypeError(f"{model.__name__}'s key is assigned by the database: use bulk_create")
    fields = model._meta.concrete_fields
    params = [field.get_db_prep_save(field.pre_save(obj, True), db)
              for obj in objs for field in fields]
    prefix, row = insert_sql(db.vendor, model)
    with db.cursor() as cursor:
        cursor.execute(prefix + ", ".join([row] * len(objs)), params)
    for obj in objs:
        obj._state.adding, obj._state.db = False, db.alias


def update(obj: Model, names: Sequence[str]) -> None:
    """Write the fields `names` of `obj` (like `save(update_fields=names)`, without the
    per-call query building and signals; these models have no save logic)."""
    db = connections[DEFAULT_DB_ALIAS]
    names = tuple(names)
    fields = fields_of(type(obj), names)
    params = [field.get_db_prep_save(getattr(obj, field.attname), db) for field in fields]
    params.append(type(obj)._meta.pk.get_db_prep_value(obj.pk, db))
    with db.cursor() as cursor:
        cursor.execute(update_sql(db.vendor, type(obj), names), params)
