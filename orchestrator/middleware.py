"""Request-wide guards: a login on every page, no request that no view could read, and the
headers every answer carries.

The API answers 401/403 itself instead of redirecting; every request, page or API, is
refused before any view runs when its path or parameters hold what the database cannot
store or no name can be (`RefuseUnreadableRequests`); every page and API answer is kept
out of caches and pages run only the project's own scripts (`SecurityHeaders`).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers

from orchestrator.safejson import bad_string

# No name, id or slug in a path is longer than this (model names are at most 255).
MAX_PATH_SEGMENT = 255
# No query or form parameter a page or filter reads is longer than this (a `next` URL fits).
MAX_PARAMETER = 2048
FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Django's login-required default, except under /api/ where DRF authenticates.

    DRF's default permission class (IsAuthenticated) guards every API view, and API
    clients expect 401/403 rather than a redirect to the HTML login page.
    """

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The 404 of a path no route answers (the project's `handler404`): the API's error
    shape under /api/, the page elsewhere."""
    if is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return render(request, "404.html", status=404)


def path_problem(path: str) -> bool:
    """A path no route can name: NUL or a lone surrogate, or a segment longer than any name."""
    return bad_string(path) or any(len(part) > MAX_PATH_SEGMENT for part in path.split("/"))


def parameter_problems(request: HttpRequest) -> dict[str, list[str]]:
    """Query parameters (and, on pages, posted form fields) no view can read, by name."""
    sources = [request.GET]
    if not is_api(request) and request.content_type in FORM_CONTENT_TYPES:
        sources.append(request.POST)  # the API's JSON bodies are checked by its parser
    problems: dict[str, list[str]] = {}
    for params in sources:
        for name, values in params.lists():
            label = name if not bad_string(name) and len(name) <= MAX_PATH_SEGMENT else "?"
            if label == "?":
                problems[label] = ["A parameter name holds a NUL character or is too long."]
            elif any(bad_string(value) for value in values):
                problems[label] = ["Must not contain NUL characters."]
            elif any(len(value) > MAX_PARAMETER for value in values):
                problems[label] = [f"Ensure this value has at most {MAX_PARAMETER} characters."]
    return problems


class RefuseUnreadableRequests:
    """A path with NUL or an over-long segment is a 404 (nothing can have that name), a
    parameter with NUL or over-long a 400 naming it; never a 500 from the database.

    One guard for every page, every API route and the admin, including those added later,
    instead of a check in each view.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if path_problem(request.path_info):
            return not_found(request)
        problems = parameter_problems(request)
        if problems:
            message = f"Invalid parameter(s): {', '.join(sorted(problems))}"
            if is_api(request):
                return JsonResponse({**problems, "detail": message}, status=400)
            context = {"message": message, "problems": sorted(problems.items())}
            return render(request, "400.html", context, status=400)
        return self.get_response(request)


class SecurityHeaders:
    """Every answer that passes through Django (static files are served before it):

    - `Cache-Control: no-store` (with `private`, `max-age=0`): pages and API answers show a
      user's data, and no browser or proxy cache may keep them;
    - `Content-Security-Policy`: ORCHESTRATOR_CONTENT_SECURITY_POLICY — the project's pages
      run only its own scripts and styles, nothing inline. Under the paths in
      ORCHESTRATOR_CSP_INLINE_STYLE_PATHS (third-party UIs: the Django admin, DRF's and the
      API docs' pages, whose templates carry a few inline styles) inline *styles* are let
      through; scripts stay strict everywhere. A view that sets its own policy keeps it.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        add_never_cache_headers(response)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = content_security_policy(request.path_info)
        return response


def content_security_policy(path: str) -> str:
    policy = settings.ORCHESTRATOR_CONTENT_SECURITY_POLICY
    if any(path.startswith(prefix) for prefix in settings.ORCHESTRATOR_CSP_INLINE_STYLE_PATHS):
        policy = policy.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
    return policy
