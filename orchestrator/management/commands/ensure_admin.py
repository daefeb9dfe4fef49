"""Make sure an admin login exists and print it (used by the embedded launcher at every start).

The first run creates the user with a random password and keeps that password in
`var/admin_password` (mode 600); later runs read it from there and print it again.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from orchestrator.config import VAR_DIR
from orchestrator.roles import ADMIN, sync_role_groups


def read_password(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def write_password(path: Path, password: str) -> None:
    """Write the file readable by its owner only (created with mode 600, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    os.chmod(path, 0o600)


class Command(BaseCommand):
    help = "Create the admin login if missing (random password kept in var/) and print it."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--password-file",
            default=str(VAR_DIR / "admin_password"),
            help="where the generated password is kept (default: var/admin_password)",
        )

    def handle(self, *args, username: str, password_file: str, **options):
        path = Path(password_file)
        user_model = get_user_model()
        with transaction.atomic():
            user = user_model.objects.filter(username=username).first()
            if user is None:
                password = read_password(path) or secrets.token_urlsafe(12)
                user = user_model.objects.create_user(username=username, password=password)
                write_password(path, password)
            if not Group.objects.filter(name=ADMIN).exists():
                sync_role_groups()
            user.is_staff = user.is_superuser = user.is_active = True
            user.save(update_fields=["is_staff", "is_superuser", "is_active"])
            user.groups.add(Group.objects.get(name=ADMIN))
        password = read_password(path)
        if password and user.check_password(password):
            self.stdout.write(f"Admin login: {username} / {password}")
        else:
            self.stdout.write(
                f"Admin login: {username} (its password was changed; {path} does not hold it)"
            )
