"""The REST API (DESIGN §8)."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from orchestrator.api import views

router = SimpleRouter()
router.register("workflows", views.WorkflowViewSet, basename="api-workflow")
router.register("processes", views.ProcessViewSet, basename="api-process")
router.register("schedules", views.ScheduleViewSet, basename="api-schedule")
router.register("audit", views.AuditEventViewSet, basename="api-audit")
router.register("workers", views.WorkerViewSet, basename="api-worker")

urlpatterns = [
    path("auth/token/", views.ApiTokenView.as_view(), name="api-token"),
    path(
        "processes/<str:process_id>/callback/<str:token>/",
        views.CallbackView.as_view(),
        name="api-process-callback",
    ),
    path(
        "processes/<str:process_id>/callback/<str:token>/progress/",
        views.CallbackProgressView.as_view(),
        name="api-process-callback-progress",
    ),
    path(
        "processes/<str:process_id>/logs/", views.ProcessLogView.as_view(),
        name="api-process-logs",
    ),
    path("engine/", views.EngineView.as_view(), name="api-engine"),
    *router.urls,
    path("", include("subscriptions.api.urls")),
    path("", include("blueprints.api.urls")),
]
