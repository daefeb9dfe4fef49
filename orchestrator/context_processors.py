"""Template context shared by every page."""

from django.http import HttpRequest

from orchestrator import selectors


def engine_status(request: HttpRequest) -> dict:
    """The engine switch, shown in the header of every page."""
    if not request.user.is_authenticated:
        return {}
    return {"engine_paused": selectors.engine_is_paused()}
