"""Filling step parameters from the state by name, and turning results back into JSON."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import functools
import inspect
import json
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class MissingStateKey(Exception):
    def __init__(self, key: str, func_name: str) -> None:
        super().__init__(f"Missing key in state: {key!r} (needed by {func_name})")
        self.key = key


class CoercionError(Exception):
    pass


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """Turn a JSON value into the parameter's annotated type."""
    if annotation is inspect.Parameter.empty or annotation is Any or value is None:
        return value
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        errors = []
        for option in options:
            try:
                return coerce(value, option, key)
            except CoercionError as error:
                errors.append(str(error))
        raise CoercionError("; ".join(errors))
    if origin in (list, tuple, set):
        (item_type, *_) = typing.get_args(annotation) or (Any,)
        return origin(coerce(item, item_type, key) for item in value)
    if origin is dict or origin is not None:
        return value
    try:
        if annotation in (str, int, float, bool, dict, list):
            return value if isinstance(value, annotation) else annotation(value)
        if annotation is uuid.UUID:
            return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        if annotation is datetime.datetime:
            return datetime.datetime.fromisoformat(value) if isinstance(value, str) else value
        if annotation is datetime.date:
            return datetime.date.fromisoformat(value) if isinstance(value, str) else value
        if annotation is decimal.Decimal:
            return decimal.Decimal(str(value))
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            return annotation(value)
        if isinstance(annotation, type) and issubclass(annotation, models.Model):
            if isinstance(value, annotation):
                return value
            return annotation._default_manager.get(pk=value)
        if hasattr(annotation, "from_state"):  # subscription domain models
            return annotation.from_state(value)
        if hasattr(annotation, "model_validate"):  # pydantic models
            return annotation.model_validate(value)
        if dataclasses.is_dataclass(annotation):
            return annotation(**value)
    except Exception as error:  # noqa: BLE001 - reported with the key it concerns
        name = getattr(annotation, "__name__", str(annotation))
        raise CoercionError(f"state key {key!r} is not a valid {name}: {error}") from error
    return value


def call_with_state(func: Callable[..., Any], state: dict[str, Any]) -> Any:
    """Call `func` with its parameters taken from `state` by name, coerced to their types."""
    kwargs: dict[str, Any] = {}
    for name, annotation, default in parameters_of(func):
        if name == "state":
            kwargs[name] = state
        elif name in state:
            kwargs[name] = coerce(state[name], annotation, name)
        elif default is not inspect.Parameter.empty:
            kwargs[name] = default
        else:
            raise MissingStateKey(name, getattr(func, "__name__", repr(func)))
    return func(**kwargs)


def parameters_of(func: Callable[..., Any]) -> tuple[tuple[str, Any, Any], ...]:
    """`(name, annotation, default)` of each parameter of `func` the state may fill, read
    once per function (`inspect.signature` and `get_type_hints` cost more than a short
    step's own code, and a step runs thousands of times); an unhashable callable is read
    at every call."""
    try:
        hash(func)
    except TypeError:
        return _read_parameters(func)
    return _cached_parameters(func)


def _read_parameters(func: Callable[..., Any]) -> tuple[tuple[str, Any, Any], ...]:
    signature = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func) if not isinstance(func, type) else {}
    except NameError as error:  # a hint naming something the function's module lacks
        raise TypeError(f"cannot resolve the type hints of {func!r}: {error}") from error
    return tuple(
        (name, hints.get(name, parameter.annotation), parameter.default)
        for name, parameter in signature.parameters.items()
        if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    )


_cached_parameters = functools.lru_cache(maxsize=4096)(_read_parameters)


class StateEncoder(DjangoJSONEncoder):
    """JSON for what steps return: model instances by pk, pydantic models, dataclasses."""

    def default(self, o: Any) -> Any:
        if isinstance(o, models.Model):
            return o.pk
        if hasattr(o, "model_dump"):
            return o.model_dump(mode="json")
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        if isinstance(o, enum.Enum):
            return o.value
        if isinstance(o, set | frozenset):
            return sorted(o)
        return super().default(o)


def to_json(value: Any) -> Any:
    """A JSON-safe copy of `value`; raises TypeError naming what cannot be stored."""
    return json.loads(json.dumps(value, cls=StateEncoder))
