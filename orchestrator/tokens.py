"""API tokens stored as digests (DESIGN §7): `POST /api/auth/token/` issues one, `Authorization:
Token <token>` authenticates with it.

Only the token's SHA-256 digest is kept (`ApiToken`), so a read of the database (a backup, a
copied SQLite file) gives no usable token; the token itself is a random 160-bit value, for
which a fast hash is as safe as a slow one. Every call of `POST /api/auth/token/` issues a
new token (the old ones keep working); a token unused for ORCHESTRATOR_API_TOKEN_IDLE_DAYS
lapses, and admins revoke tokens by deleting them in the admin.
"""

from __future__ import annotations

import datetime
import secrets

from django.conf import settings
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from orchestrator.crypto import token_digest
from orchestrator.models import ApiToken

# `last_used_at` is written at most this often per token, not on every request.
USE_RECORDED_EVERY = datetime.timedelta(hours=1)


def idle_cutoff() -> datetime.datetime | None:
    """Tokens last used (or issued) before this have lapsed; None: they never do."""
    days = settings.ORCHESTRATOR_API_TOKEN_IDLE_DAYS
    return timezone.now() - datetime.timedelta(days=days) if days else None


def issue_token(user) -> str:
    """A new token for `user`, returned once; only its digest is stored."""
    token = secrets.token_hex(20)
    ApiToken.objects.create(user=user, digest=token_digest(token), prefix=token[:8])
    return token


def clean_up_tokens() -> int:
    """Delete the tokens that lapsed (unused for ORCHESTRATOR_API_TOKEN_IDLE_DAYS)."""
    cutoff = idle_cutoff()
    if cutoff is None:
        return 0
    lapsed = ApiToken.objects.filter(created_at__lt=cutoff).exclude(last_used_at__gte=cutoff)
    deleted, _ = lapsed.delete()
    return deleted


class ApiTokenAuthentication(TokenAuthentication):
    """DRF's `Authorization: Token <token>`, looked up by the token's digest."""

    def authenticate_credentials(self, key: str):
        token = ApiToken.objects.select_related("user").filter(digest=token_digest(key)).first()
        if token is None or lapsed(token):
            raise AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        now = timezone.now()
        if token.last_used_at is None or token.last_used_at < now - USE_RECORDED_EVERY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token


def lapsed(token: ApiToken) -> bool:
    cutoff = idle_cutoff()
    return cutoff is not None and (token.last_used_at or token.created_at) < cutoff
