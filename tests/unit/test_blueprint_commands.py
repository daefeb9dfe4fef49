"""export_blueprint and import_blueprint from the shell, with wrong and hostile input."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from blueprints.models import Blueprint, Template

pytestmark = pytest.mark.django_db


def export(name: str, *args: str) -> str:
    out = io.StringIO()
    call_command("export_blueprint", name, *args, stdout=out)
    return out.getvalue()


def test_export_and_import_round_trip_through_files(three_tier, tmp_path):
    text = export("three-tier")
    assert text.startswith("kind: blueprint") and "upstream_id" in text
    assert export(str(three_tier.pk), "--json").lstrip().startswith("{")
    path = tmp_path / "bp.yaml"
    path.write_text(text)
    Blueprint.objects.all().delete()
    Template.objects.all().delete()
    out = io.StringIO()
    call_command("import_blueprint", str(path), stdout=out)
    assert "imported blueprint three-tier" in out.getvalue()
    assert Template.objects.count() == 3 and Blueprint.objects.get().wiring.count() == 2
    call_command("import_blueprint", str(path), stdout=io.StringIO())  # again: an update
    assert Blueprint.objects.count() == 1


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("a: &x [1]\nb: *x\n", "aliases are not allowed"),
        ("{", "Not valid YAML"),
        ("kind: other\n", "Not a blueprint document"),
        ("x" * 2_000_000, "larger than"),
        ("kind: blueprint\nversion: 1\ntemplates: [{name: t, workflow: nope, colour: red}]\n"
         "blueprint: {name: b}\n", "unknown field(s) colour"),
    ],
)
def test_import_refuses_bad_files_and_changes_nothing(synced, tmp_path, content, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(CommandError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        call_command("import_blueprint", str(path), stdout=io.StringIO())
    assert not Template.objects.exists() and not Blueprint.objects.exists()


def test_missing_files_and_blueprints_are_clear_errors(synced, tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_blueprint", str(tmp_path / "nope.yaml"))
    with pytest.raises(CommandError, match="Unknown blueprint 'ghost'"):
        export("ghost")
    with pytest.raises(CommandError, match="Unknown blueprint"):
        export("x" * 5000)
