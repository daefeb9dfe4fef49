"""Start a workflow from the command line: manage.py start_workflow NAME --input JSON."""

import json

from django.core.management.base import BaseCommand, CommandError

from orchestrator import services
from orchestrator.exceptions import OrchestratorError
from orchestrator.safejson import json_problem


class Command(BaseCommand):
    help = "Start a workflow with JSON input (a page object or a list of pages)."

    def add_arguments(self, parser):
        parser.add_argument("workflow")
        parser.add_argument("--input", default="[]", help="JSON: one page {...} or [{...}, ...]")
        parser.add_argument("--tag", action="append", default=[], help="tag the run (repeatable)")

    def handle(self, *args, workflow: str, input: str, tag: list[str], **options):  # noqa: A002
        try:
            pages = json.loads(input)
        except (json.JSONDecodeError, RecursionError) as error:
            raise CommandError(f"--input is not valid JSON: {error}") from None
        problem = json_problem(pages)
        if problem:
            raise CommandError(f"--input is refused: {problem}")
        if isinstance(pages, dict):
            pages = [pages]
        try:
            process = services.start_process(workflow_name=workflow, input_pages=pages, tags=tag)
        except OrchestratorError as error:
            fields = {k: v for k, v in error.field_errors.items() if k != "form"}
            raise CommandError(f"{error.message}" + (f" {fields}" if fields else "")) from None
        self.stdout.write(f"{process.pk} {process.status}")
