"""Settings for the test suite: the product's settings plus the test workflows."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-secret-key-only-for-the-test-suite")
# Each test run gets its own var/ (SQLite file, filesystem broker folders), shared with the
# worker processes it starts through the environment, so parallel runs never mix. The run that
# made it removes it at its end (tests/conftest.py); one given in the environment is kept.
# (Made only when missing: every worker process imports these settings too.)
VAR_DIR_MADE_HERE = "ORCHESTRATOR_VAR_DIR" not in os.environ
if VAR_DIR_MADE_HERE:
    os.environ["ORCHESTRATOR_VAR_DIR"] = tempfile.mkdtemp(prefix="orchestrator-tests-")

from orchestrator.settings import *  # noqa: E402,F403
from orchestrator.settings import (  # noqa: E402
    DATABASES,
    ORCHESTRATOR_WORKFLOW_MODULES,
    VAR_DIR,
)

ORCHESTRATOR_WORKFLOW_MODULES = [
    *ORCHESTRATOR_WORKFLOW_MODULES,
    "tests.workflows",
    "tests.subscription_workflows",
    "tests.catalogue_workflows",
    "tests.flows",
    "tests.blueprint_workflows",
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ORCHESTRATOR_RETRY_BASE_SECONDS = int(os.environ.get("ORCHESTRATOR_RETRY_BASE_SECONDS", "1"))
ORCHESTRATOR_RETRY_MAX_SECONDS = int(os.environ.get("ORCHESTRATOR_RETRY_MAX_SECONDS", "2"))

(VAR_DIR / "staticfiles").mkdir(parents=True, exist_ok=True)

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so the worker processes of the integration tests share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATABASES["default"]["NAME"]) + ".test"}
