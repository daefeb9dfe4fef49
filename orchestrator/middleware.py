"""Every page needs a login; the API answers 401/403 itself instead of redirecting."""

from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Django's login-required default, except under /api/ where DRF authenticates.

    DRF's default permission class (IsAuthenticated) guards every API view, and API
    clients expect 401/403 rather than a redirect to the HTML login page.
    """

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
