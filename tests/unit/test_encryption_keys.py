"""Encryption keys from the environment and their rotation (orchestrator/crypto.py)."""

from __future__ import annotations

import io
import json

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command

from blueprints import services
from blueprints.models import Execution, Integration, Secret
from orchestrator.config import ConfigError, encryption_keys
from orchestrator.crypto import decrypt_json, encrypt_json
from orchestrator.models import Process
from tests.helpers import start

pytestmark = pytest.mark.django_db


def test_rotation_re_encrypts_every_stored_secret_with_the_new_key(three_tier, settings):
    process = start("wf_secret", {"username": "bob", "password": "old-key-secret"})
    secret = services.save_secret(data={"name": "token", "value": "rotate-me-please"})
    integration = services.save_integration(data={"name": "aws", "kind": "aws",
                                                   "credentials": {"key": "cred-value"}})
    execution = services.create_execution(blueprint=three_tier, data={
        "variable_overrides": {"db": {"password": "override-secret"}}})
    before = {
        "process": Process.objects.get(pk=process.pk).secrets,
        "secret": Secret.objects.get(pk=secret.pk).value,
        "integration": Integration.objects.get(pk=integration.pk).credentials,
        "execution": Execution.objects.get(pk=execution.pk).secret_overrides,
    }
    new_key = Fernet.generate_key()
    settings.ORCHESTRATOR_ENCRYPTION_KEYS = [new_key.decode()]
    assert decrypt_json(before["secret"]) == {"value": "rotate-me-please"}  # still readable
    out = io.StringIO()
    call_command("rotate_encryption_key", stdout=out)
    assert "blueprints.Secret: 1 row(s) re-encrypted" in out.getvalue()
    after = {
        "process": Process.objects.get(pk=process.pk).secrets,
        "secret": Secret.objects.get(pk=secret.pk).value,
        "integration": Integration.objects.get(pk=integration.pk).credentials,
        "execution": Execution.objects.get(pk=execution.pk).secret_overrides,
    }
    only_new = Fernet(new_key)
    for name, token in after.items():
        assert token != before[name], name
        json.loads(only_new.decrypt(token.encode()))  # the new key alone reads it
    with pytest.raises(InvalidToken):
        only_new.decrypt(before["secret"].encode())
    assert json.loads(only_new.decrypt(after["execution"].encode())) == {
        str(execution.steps.get(template__name="db").template_id): {"password": "override-secret"}}


def test_a_value_no_key_can_read_stops_the_rotation_naming_the_row(synced, settings):
    secret = services.save_secret(data={"name": "token", "value": "x" * 10})
    settings.ORCHESTRATOR_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    settings.SECRET_KEY = "another-secret-key-so-the-derived-key-changed"
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=f"blueprints.Secret {secret.pk}: no configured key"):
        call_command("rotate_encryption_key", stdout=io.StringIO())


def test_keys_from_the_environment_are_checked_at_start_up():
    key = Fernet.generate_key().decode()
    assert encryption_keys(f" {key} ,") == [key]
    assert encryption_keys("") == []
    with pytest.raises(ConfigError, match="key 2 is not a Fernet key"):
        encryption_keys(f"{key},not-a-key")
    assert encrypt_json({}) == ""
