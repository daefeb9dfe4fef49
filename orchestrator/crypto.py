"""Encryption for values that must be stored but never shown (input secrets, blueprint
secrets and credentials).

The keys come from the environment: `ORCHESTRATOR_ENCRYPTION_KEYS` is a comma-separated list
of Fernet keys (`python -c "from cryptography.fernet import Fernet;
print(Fernet.generate_key().decode())"`); the first encrypts, every one decrypts. Without it,
one key is derived from `SECRET_KEY` (the embedded default). The derived key always stays
readable, so setting the variable later loses nothing; `manage.py rotate_encryption_key`
re-encrypts every stored value with the first key, after which older keys can be dropped.
Models name the fields that hold such values in `ENCRYPTED_FIELDS`, for that command.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


def derived_key() -> bytes:
    digest = hashlib.sha256(f"orchestrator-secrets:{settings.SECRET_KEY}".encode()).digest()
    return base64.urlsafe_b64encode(digest)


def _fernet() -> MultiFernet:
    keys = [key.encode() for key in getattr(settings, "ORCHESTRATOR_ENCRYPTION_KEYS", [])]
    derived = derived_key()
    return MultiFernet([Fernet(key) for key in [*keys, *([derived] if derived not in keys
                                                          else [])]])


def encrypt_json(value: dict[str, Any]) -> str:
    if not value:
        return ""
    return _fernet().encrypt(json.dumps(value).encode()).decode()


def decrypt_json(token: str) -> dict[str, Any]:
    if not token:
        return {}
    return json.loads(_fernet().decrypt(token.encode()))


def rotate(token: str) -> str:
    """The same value encrypted with the current (first) key."""
    if not token:
        return token
    return _fernet().rotate(token.encode()).decode()


def token_digest(token: str) -> str:
    """What is stored of a callback token: its hash, so a read of the row can't replay it."""
    return hashlib.sha256(token.encode()).hexdigest()
