"""Create the viewer, operator and admin groups with their permissions (DESIGN §7)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_role_groups(apps, schema_editor):
    from orchestrator.roles import sync_role_groups

    # Permissions normally appear after migrate (post_migrate); make them now so the
    # groups hold them from the first migrate on. post_migrate keeps them in step later.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    sync_role_groups(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


def remove_role_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=("viewer", "operator", "admin")
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orchestrator", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_role_groups, remove_role_groups)]
