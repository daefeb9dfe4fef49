"""One permission check for services, views, the API and admin actions alike."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from guardian.shortcuts import get_objects_for_user


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


def view_permission(model: type[Model]) -> str:
    """The `view_<model>` permission of a model, as `app_label.codename`."""
    return f"{model._meta.app_label}.view_{model._meta.model_name}"


def visible_objects(user, queryset: QuerySet) -> QuerySet:
    """The part of `queryset` that `user` may view: all of it with the model's view
    permission (a role), else the objects granted one by one (django-guardian).

    The default "visible to user" rule of choice fields (`orchestrator.forms`); lists use
    the same rule through their selectors. `user=None` is the system and sees everything;
    an anonymous or inactive user sees nothing.
    """
    if user is None:
        return queryset
    if not user.is_authenticated or not user.is_active:
        return queryset.none()
    perm = view_permission(queryset.model)
    if user.has_perm(perm):
        return queryset
    granted = get_objects_for_user(
        user, perm, klass=queryset.model, accept_global_perms=False, with_superuser=False
    )
    return queryset.filter(pk__in=granted.values("pk"))
