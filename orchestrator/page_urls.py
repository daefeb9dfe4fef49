"""The engine's pages."""

from django.urls import path

from orchestrator import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
]
