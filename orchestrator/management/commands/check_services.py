"""Check that the database and the broker answer: one line per problem, exit 1 if any."""

import sys

from django.core.management.base import BaseCommand

from orchestrator.health import check_services


class Command(BaseCommand):
    help = "Connect to the database and the Celery broker; print one line per problem."
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def handle(self, *args, **options):
        problems = check_services()
        for line in problems:
            self.stderr.write(line)
        if problems:
            sys.exit(1)
        self.stdout.write("database and broker are reachable")
