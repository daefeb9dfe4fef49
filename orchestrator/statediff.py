"""What a step changed in a process's state, down to the nested key.

A step that changes one field of a nested object (the subscription) changes that one path:

    >>> state_diff({"sub": {"size": 5, "name": "b"}}, {"sub": {"size": 9, "name": "b"}})
    ({'sub.size': {'old': 5, 'new': 9}}, [])

Paths join object keys with dots and list positions with brackets (`ports[1].speed`); a key
that is not a plain name is quoted (`vars["a.b"]`). Lists of the same length are compared
item by item; a list that grew or shrank, or a value whose JSON type changed (an id that became
an object), is one change of the whole value. Added paths have `old: None`.
"""

from __future__ import annotations

import json
import re
from typing import Any

PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def path_to(parent: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    name = str(key)
    if PLAIN_KEY.match(name):
        return f"{parent}.{name}" if parent else name
    return f"{parent}[{json.dumps(name, ensure_ascii=False)}]"


def same(old: Any, new: Any) -> bool:
    """Equal as JSON values (1, 1.0 and True are three different values)."""
    return type(old) is type(new) and old == new


def state_diff(
    old: dict[str, Any], new: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """(changed: {path: {"old", "new"}}, removed: [path]) from state `old` to state `new`."""
    changed: dict[str, dict[str, Any]] = {}
    removed: list[str] = []
    walk("", old, new, changed, removed)
    return changed, removed


def walk(path: str, old: Any, new: Any, changed: dict, removed: list) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key, value in new.items():
            if key not in old:
                changed[path_to(path, key)] = {"old": None, "new": value}
            else:
                walk(path_to(path, key), old[key], value, changed, removed)
        removed.extend(path_to(path, key) for key in old if key not in new)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            walk(path_to(path, index), before, after, changed, removed)
    elif not same(old, new):
        changed[path] = {"old": old, "new": new}
