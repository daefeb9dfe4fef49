"""Re-encrypt every stored secret with the current key: manage.py rotate_encryption_key.

Every model that lists fields in `ENCRYPTED_FIELDS` (processes' input secrets, blueprint
secrets, integration credentials, executions' secret overrides...) is rewritten, row by row
in batches, each value decrypted with any configured key and encrypted with the first one
of ORCHESTRATOR_ENCRYPTION_KEYS. Idempotent: run it again after a crash.
"""

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from orchestrator.crypto import rotate

BATCH = 500


class Command(BaseCommand):
    help = "Re-encrypt all stored secrets with the first key of ORCHESTRATOR_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        from cryptography.fernet import InvalidToken

        for model in apps.get_models():
            fields = getattr(model, "ENCRYPTED_FIELDS", ())
            if not fields:
                continue
            count = 0
            rows = model.objects.exclude(**{f"{fields[0]}": ""}) if len(fields) == 1 else \
                model.objects.all()
            for pk in rows.values_list("pk", flat=True).iterator(chunk_size=BATCH):
                with transaction.atomic():
                    row = model.objects.select_for_update().only(*fields).get(pk=pk)
                    try:
                        for name in fields:
                            setattr(row, name, rotate(getattr(row, name)))
                    except InvalidToken:
                        raise CommandError(
                            f"{model._meta.label} {pk}: no configured key decrypts it (was a "
                            "key dropped from ORCHESTRATOR_ENCRYPTION_KEYS too early?)"
                        ) from None
                    row.save(update_fields=list(fields))
                count += 1
            self.stdout.write(f"{model._meta.label}: {count} row(s) re-encrypted")
