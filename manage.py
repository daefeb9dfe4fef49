#!/usr/bin/env python
"""Django's command-line utility; configuration and connection errors print one line."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    from orchestrator.config import ConfigError, describe_url_host

    try:
        from django.core.management import execute_from_command_line
        from django.db.utils import OperationalError

        execute_from_command_line(sys.argv)
    except ConfigError as error:
        sys.exit(f"configuration error: {error}")
    except OperationalError as error:
        host = describe_url_host(os.environ.get("DATABASE_URL", "sqlite (embedded)"))
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        sys.exit(f"database error at {host}: {first_line}")


if __name__ == "__main__":
    main()
