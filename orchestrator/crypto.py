"""Encryption for values that must be stored but never shown (input secrets)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings


def _fernet() -> Fernet:
    digest = hashlib.sha256(f"orchestrator-secrets:{settings.SECRET_KEY}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_json(value: dict[str, Any]) -> str:
    if not value:
        return ""
    return _fernet().encrypt(json.dumps(value).encode()).decode()


def decrypt_json(token: str) -> dict[str, Any]:
    if not token:
        return {}
    return json.loads(_fernet().decrypt(token.encode()))


def token_digest(token: str) -> str:
    """What is stored of a callback token: its hash, so a read of the row can't replay it."""
    return hashlib.sha256(token.encode()).hexdigest()


def redact(value: Any, secret_values: set[str]) -> Any:
    """Replace any string equal to a secret with a marker, wherever it sits in `value`."""
    if not secret_values:
        return value
    if isinstance(value, str):
        return "**redacted**" if value in secret_values else value
    if isinstance(value, dict):
        return {key: redact(item, secret_values) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item, secret_values) for item in value]
    return value
