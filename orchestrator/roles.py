"""The three roles of DESIGN §7 as groups, and the model permissions each one holds.

`sync_role_groups` is the one place that writes them: the data migration creates the
groups and a post_migrate hook keeps their permissions in step as apps add models.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLE_NAMES = (VIEWER, OPERATOR, ADMIN)
PRODUCT_APPS = ("orchestrator", "subscriptions", "blueprints", "django_celery_beat")

# Permissions beyond `view_*` (which every role has on the product's apps).
OPERATOR_CODENAMES = (
    "start_workflow",
    "resume_process",
    "abort_process",
    "add_execution",
    "execute_execution",
)
# Admins manage definitions and may delete and pause on top of what operators do.
ADMIN_ACTION_PREFIXES = ("add_", "change_", "delete_")
ADMIN_CODENAMES = (
    "pause_engine", "set_in_sync", "view_auditevent", "teardown_execution", "view_apitoken",
    "view_metrics",
)
# Views only admins hold among the roles (the audit trail: who did what, from where; who
# holds API tokens; the metrics, which count every workflow's runs).
ADMIN_ONLY_VIEWS = ("view_auditevent", "view_apitoken", "view_metrics")
# Admins also see and clear login lockouts (django-axes: delete an attempt to unlock).
ADMIN_LOCKOUT_PERMISSIONS = Q(
    content_type__app_label="axes",
    codename__in=("view_accessattempt", "delete_accessattempt", "view_accesslog"),
)


def role_permissions(role: str) -> Q:
    """A filter on `Permission` selecting what `role` holds."""
    in_product = Q(content_type__app_label__in=PRODUCT_APPS)
    viewer = in_product & Q(codename__startswith="view_") & ~Q(codename__in=ADMIN_ONLY_VIEWS)
    if role == VIEWER:
        return viewer
    operator = viewer | (in_product & Q(codename__in=OPERATOR_CODENAMES))
    if role == OPERATOR:
        return operator
    if role == ADMIN:
        admin_actions = Q()
        for prefix in ADMIN_ACTION_PREFIXES:
            admin_actions |= Q(codename__startswith=prefix)
        return (
            operator
            | (in_product & (admin_actions | Q(codename__in=ADMIN_CODENAMES)))
            | ADMIN_LOCKOUT_PERMISSIONS
        )
    raise ValueError(f"unknown role {role!r}")


def sync_role_groups(group_model=Group, permission_model=Permission) -> None:
    """Create the role groups and give each exactly the permissions of its role."""
    for role in ROLE_NAMES:
        group, _ = group_model.objects.get_or_create(name=role)
        group.permissions.set(permission_model.objects.filter(role_permissions(role)))
