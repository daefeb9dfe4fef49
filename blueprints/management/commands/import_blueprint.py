"""Import a blueprint with its templates: manage.py import_blueprint FILE (YAML or JSON;
`-` reads stdin). Validated like a save; all or nothing."""

import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from blueprints import exchange
from orchestrator.exceptions import OrchestratorError


class Command(BaseCommand):
    help = "Create or update a blueprint and its templates from an exported document."

    def add_arguments(self, parser):
        parser.add_argument("file", help="a YAML or JSON file, or - for stdin")

    def handle(self, *args, file: str, **options):
        limit = (settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 1024 * 1024) + 1
        try:
            if file == "-":
                text = sys.stdin.buffer.read(limit)
            else:
                with open(file, "rb") as handle:
                    text = handle.read(limit)
        except OSError as error:
            raise CommandError(f"cannot read {file}: {error.strerror}") from None
        try:
            blueprint = exchange.import_document(exchange.parse(text))
        except OrchestratorError as error:
            fields = {k: v for k, v in error.field_errors.items() if k != "detail"}
            raise CommandError(error.message + (f" {fields}" if fields else "")) from None
        self.stdout.write(f"imported blueprint {blueprint.name} ({blueprint.pk})")
