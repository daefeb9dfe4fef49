"""One permission check for services, views, the API and admin actions alike."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Model


def user_may(user, perm: str, obj: Model | None = None) -> bool:
    """Model-level permission (roles) or a django-guardian grant on `obj`.

    `user=None` is the system itself (schedules, management commands) and may do anything.
    """
    if user is None:
        return True
    if not user.is_active:
        return False
    return user.has_perm(perm) or (obj is not None and user.has_perm(perm, obj))


def require(user, perm: str, obj: Model | None = None) -> None:
    if not user_may(user, perm, obj):
        raise PermissionDenied(f"You do not have the permission {perm!r} for this.")
