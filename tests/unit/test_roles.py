"""The three groups exist after migrate with the permissions of DESIGN §7."""

import pytest
from django.contrib.auth.models import Group


def codenames(group_name: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


@pytest.mark.django_db
def test_groups_exist_after_migrate_with_their_permissions():
    viewer, operator, admin = codenames("viewer"), codenames("operator"), codenames("admin")
    assert "orchestrator.view_process" in viewer
    assert not any(".view_" not in perm for perm in viewer)
    assert {"orchestrator.start_workflow", "orchestrator.resume_process"} <= operator
    assert "orchestrator.delete_process" not in operator
    assert viewer < operator < admin
    assert {"orchestrator.delete_process", "orchestrator.pause_engine"} <= admin
    assert "auth.change_user" not in admin
