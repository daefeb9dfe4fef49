"""Export a blueprint with its templates: manage.py export_blueprint NAME [--json]."""

from django.core.management.base import BaseCommand, CommandError

from blueprints import exchange
from blueprints.models import Blueprint


class Command(BaseCommand):
    help = "Write a blueprint and its templates as YAML (or JSON) to stdout."

    def add_arguments(self, parser):
        parser.add_argument("blueprint", help="the blueprint's name or id")
        parser.add_argument("--json", action="store_true", help="JSON instead of YAML")

    def handle(self, *args, blueprint: str, json: bool, **options):
        from blueprints.selectors import find
        from orchestrator.exceptions import NotFound

        try:
            row = find(Blueprint.objects.all(), blueprint, "blueprint")
        except NotFound as error:
            raise CommandError(error.message) from None
        self.stdout.write(exchange.dump(exchange.export_blueprint(row), as_json=json), ending="")
