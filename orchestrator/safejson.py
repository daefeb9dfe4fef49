"""What a JSON value from outside must be before anything stores or shows it.

One rule for every way in (the API's parser, the input forms of every workflow, the callback
route): strings without NUL characters or lone surrogates (PostgreSQL cannot store the
first, UTF-8 cannot encode the second), finite numbers only (`1e400` parses to infinity,
which no JSON column takes back), and a nesting depth that cannot exhaust a stack.
"""

from __future__ import annotations

import math
from typing import Any

MAX_JSON_DEPTH = 64


def bad_string(value: str) -> bool:
    """NUL characters and lone surrogates: PostgreSQL cannot store them, UTF-8 cannot render."""
    if "\x00" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_problem(data: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why parsed JSON is refused (too deeply nested, unstorable strings, non-finite
    numbers), or None. Walks iteratively, so no nesting can exhaust the stack here."""
    bad = "JSON strings must not contain NUL characters or lone surrogates"
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if bad_string(value):
                return bad
        elif isinstance(value, float):
            if not math.isfinite(value):
                return "JSON numbers must be finite (no NaN, Infinity or out-of-range values)"
        elif isinstance(value, dict):
            if depth > max_depth:
                return f"JSON nested deeper than {max_depth} levels"
            for key, item in value.items():
                if not isinstance(key, str) or bad_string(key):
                    return bad
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            if depth > max_depth:
                return f"JSON nested deeper than {max_depth} levels"
            stack.extend((item, depth + 1) for item in value)
    return None
