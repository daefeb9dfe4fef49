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

