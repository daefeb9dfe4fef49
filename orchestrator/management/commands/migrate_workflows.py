"""Show, apply or check the difference between the workflow code and the database."""

from django.core.management.base import BaseCommand, CommandError

from orchestrator import services


class Command(BaseCommand):
    help = "Compare the workflow registry with the database; --apply writes it, --check fails."

    def add_arguments(self, parser):
        parser.add_argument("--apply", action="store_true", help="apply the changes")
        parser.add_argument(
            "--check", action="store_true", help="exit non-zero when code and database differ"
        )

    def handle(self, *args, apply: bool = False, check: bool = False, **options):
        changes = services.workflow_changes()
        for action, name, values in changes:
            detail = ", ".join(f"{key}={value!r}" for key, value in values.items())
            self.stdout.write(f"{action:8} {name}" + (f"  ({detail})" if detail else ""))
        if not changes:
            self.stdout.write("workflows are in sync")
        if check and changes:
            raise CommandError(f"{len(changes)} workflow change(s) not applied")
        if apply:
            services.sync_workflows()
            self.stdout.write(self.style.SUCCESS(f"applied {len(changes)} change(s)"))
