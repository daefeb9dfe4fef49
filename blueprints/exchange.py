"""Export and import of a blueprint with its templates, as YAML or JSON: to review in git and
to move between installations.

    kind: blueprint
    version: 1
    templates:
      - {name: VPC, workflow: create_vpc, product: VPC, variables: [...], outputs: [...]}
    blueprint:
      name: Production Environment
      templates: [VPC, EKS Cluster]            # by name
      default_variables: {VPC: {cidr_block: 10.0.0.0/16}}
      wiring: [{source_template: VPC, source_output: vpc_id, ...}]

An import is validated exactly like a save (the same services, one transaction: all or
nothing); templates and the blueprint are matched by name, created when missing and
changed when present. YAML is read with PyYAML's safe loader, with aliases refused (a
"billion laughs" document cannot expand), and the same size and depth limits as the API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml
from django.conf import settings
from django.db import transaction
from rest_framework import exceptions
from rest_framework.parsers import BaseParser

from blueprints import services
from blueprints.models import Blueprint, Template
from orchestrator.exceptions import FormInvalid
from orchestrator.safejson import json_problem

KIND, VERSION = "blueprint", 1
TEMPLATE_FIELDS = ("name", "description", "workflow", "product", "variables", "outputs",
                   "source_code_versions")


class NoAliasSafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases (no exponential expansion)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed",
                                              event.start_mark)
        return super().compose_node(parent, index)


def parse(text: str | bytes) -> Any:
    """A YAML or JSON document (JSON is YAML) as plain data; FormInvalid saying what is
    wrong with it otherwise."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 1024 * 1024
    if len(text) > limit:
        raise FormInvalid(f"The document is larger than {limit} bytes",
                          {"document": ["Too large."]})
    try:
        data = yaml.load(text, Loader=NoAliasSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise FormInvalid("The document is nested too deeply", {"document": ["Too deep."]}) \
            from None
    except yaml.YAMLError as error:
        message = f"Not valid YAML or JSON: {str(error)[:300]}"
        raise FormInvalid(message, {"document": [message]}) from None
    problem = json_problem(data)
    if problem:
        raise FormInvalid(f"The document is refused: {problem}", {"document": [problem]})
    return data


class SafeYAMLParser(BaseParser):
    """`Content-Type: application/yaml` bodies for the import endpoint."""

    media_type = "application/yaml"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 1024 * 1024
        raw = stream.read(limit + 1)
        try:
            return parse(raw)
        except FormInvalid as error:
            raise exceptions.ParseError(error.message) from None


def export_blueprint(blueprint: Blueprint) -> dict[str, Any]:
    """The document of a blueprint and its templates, everything by name."""
    templates = [member.template for member in
                 blueprint.members.select_related("template__workflow", "template__product")]
    return {
        "kind": KIND,
        "version": VERSION,
        "templates": [services.template_data(template) for template in templates],
        "blueprint": services.blueprint_data(blueprint, by_name=True),
    }


def dump(document: dict[str, Any], as_json: bool = False) -> str:
    if as_json:
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def import_document(document: Any, *, user=None) -> Blueprint:
    """Create or update the document's templates and blueprint, by name, all or nothing."""
    if isinstance(document, str | bytes):
        document = parse(document)
    if not isinstance(document, Mapping):
        raise FormInvalid("The document must be an object", {"document": ["Not an object."]})
    if document.get("kind") != KIND or document.get("version") != VERSION:
        raise FormInvalid(f"Not a blueprint document: expected kind: {KIND} and version: "
                          f"{VERSION}", {"kind": ["Expected blueprint, version 1."]})
    templates = document.get("templates") or []
    blueprint = document.get("blueprint")
    if not isinstance(templates, list) or len(templates) > services.MAX_TEMPLATES:
        raise FormInvalid("templates must be a list", {"templates": ["Not a list."]})
    if not isinstance(blueprint, Mapping):
        raise FormInvalid("blueprint must be an object", {"blueprint": ["Not an object."]})
    with transaction.atomic():
        for index, data in enumerate(templates):
            if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
                raise FormInvalid(f"template {index + 1} must be an object with a name",
                                  {"templates": [f"Template {index + 1} is not valid."]})
            unknown = set(data) - set(TEMPLATE_FIELDS)
            if unknown:
                raise FormInvalid(f"template {data['name']!r}: unknown field(s) "
                                  f"{', '.join(sorted(unknown))}",
                                  {"templates": [f"Unknown: {', '.join(sorted(unknown))}"]})
            existing = Template.objects.filter(name=data["name"]).first()
            try:
                services.save_template(user=user, template=existing, data=data)
            except FormInvalid as error:
                raise FormInvalid(f"template {data['name']!r}: {error.message}",
                                  error.field_errors) from None
        existing = Blueprint.objects.filter(name=str(blueprint.get("name", ""))).first()
        return services.save_blueprint(user=user, blueprint=existing, data=blueprint)
