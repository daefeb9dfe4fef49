"""Secrets out of everything a run stores or shows: one mechanism for every path.

A run's secrets (the values of its input `SecretField`s) reach its steps in memory only.
Whatever text is derived from the run — the state a step returns (nested too), an
exception message, a traceback, a callback body, a log line — goes through a `Redactor`
before it is stored, shown or logged, and every occurrence of a secret becomes `MARK`,
also inside a longer string ("refused admin:<password>") and in the quoted forms an error
message or a URL gives it (repr, JSON, percent-encoding).

    redactor = redactor_for(process)          # or Redactor(values) when the values are at hand
    row.message = redactor(message)           # strings, dicts (keys too), lists, tuples
    with redacting(redactor):                 # log records made meanwhile, in this context,
        ...                                   # are redacted by RedactSecretsFilter

Secrets shorter than `MIN_SUBSTRING` characters are replaced only where they stand alone
(not inside a longer word), so a one-letter secret does not shred every message.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from orchestrator.models import Process

MARK = "**redacted**"
MIN_SUBSTRING = 4
_WORD = r"[A-Za-z0-9_]"


def _spellings(secret: str) -> set[str]:
    """The secret as it may appear in text: as is, in a repr, in JSON, percent-encoded."""
    return {
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    }


def _secret_texts(secrets: Any) -> Iterator[str]:
    """Every secret value in `secrets` (a mapping's values, nested ones too), as text."""
    if isinstance(secrets, Mapping):
        secrets = list(secrets.values())
    if isinstance(secrets, str):
        yield secrets
    elif isinstance(secrets, int | float | Decimal) and not isinstance(secrets, bool):
        yield str(secrets)
    elif isinstance(secrets, Iterable):
        for item in secrets:
            yield from _secret_texts(item)


class Redactor:
    """Replaces every occurrence of the given secrets with `MARK`.

    `secrets`: a run's secrets as a mapping (their values count, nested ones too) or any
    iterable of values.
    """

    def __init__(self, secrets: Mapping[str, Any] | Iterable[Any] = ()) -> None:
        self.values = [text for text in _secret_texts(secrets) if text.strip()]
        spellings: set[str] = set()
        for text in self.values:
            spellings |= _spellings(text)
        alternatives = []
        for spelling in sorted(spellings, key=len, reverse=True):  # longest first
            escaped = re.escape(spelling)
            if len(spelling) < MIN_SUBSTRING:
                escaped = f"(?<!{_WORD}){escaped}(?!{_WORD})"
            alternatives.append(escaped)
        self.pattern = re.compile("|".join(alternatives)) if alternatives else None

    def __bool__(self) -> bool:
        return self.pattern is not None

    def also(self, *values: str) -> Redactor:
        """A redactor of these secrets and `values` too (a callback step's token)."""
        return Redactor([*self.values, *values])

    def text(self, value: str) -> str:
        if self.pattern is None:
            return value
        return self.pattern.sub(MARK, value)

    def __call__(self, value: Any) -> Any:
        """`value` with every string in it redacted (dict keys, list and tuple items too)."""
        if self.pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self(key): self(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self(item) for item in value)
        return value


def redactor_for(process: Process, *also: str) -> Redactor:
    """The redactor of one run: its stored (encrypted) secrets, none if they are unreadable,
    and the values in `also` (a callback token, known only to the request that presents it)."""
    from cryptography.fernet import InvalidToken

    from orchestrator.crypto import decrypt_json

    try:
        secrets = decrypt_json(process.secrets)
    except (InvalidToken, ValueError):
        secrets = {}
    return Redactor([*_secret_texts(secrets), *also])


# --- log records ----------------------------------------------------------------------------

_current: contextvars.ContextVar[Redactor | None] = contextvars.ContextVar(
    "orchestrator_redactor", default=None
)


@contextlib.contextmanager
def redacting(redactor: Redactor) -> Iterator[Redactor]:
    """Log records made in this context (thread, task) are redacted with `redactor`."""
    token = _current.set(redactor)
    try:
        yield redactor
    finally:
        _current.reset(token)


def current_redactor() -> Redactor | None:
    """The redactor of this context (`redacting`), if any: what a log record made now must be
    redacted of (a run's secrets, and a callback step's token while that step runs)."""
    return _current.get()


class RedactSecretsFilter(logging.Filter):
    """A handler filter: applies the current context's redactor to a record's text."""

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = current_redactor()
        if not redactor:
            return True
        record.msg, record.args = redactor.text(record.getMessage()), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.text(record.stack_info)
        return True
