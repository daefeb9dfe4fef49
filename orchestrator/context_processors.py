"""Template context shared by every page."""

from django.http import HttpRequest

from orchestrator import selectors


def engine_status(request: HttpRequest) -> dict:
    """The engine switch, shown in the header of every page. An error page rendered before
    the authentication middleware ran (a Host header not in ALLOWED_HOSTS) has no user."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"engine_paused": selectors.engine_is_paused()}
