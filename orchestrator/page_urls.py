"""The pages: the engine's own, and the subscriptions and blueprints apps' under their prefix."""

from django.urls import include, path

from orchestrator import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.prometheus_metrics, name="metrics"),
    path("engine/", views.engine_pause, name="engine-pause"),
    path("workflows/", views.workflow_list, name="workflow-list"),
    path("workflows/<str:name>/start/", views.workflow_start, name="workflow-start"),
    path("processes/", views.process_list, name="process-list"),
    path("processes/<uuid:pk>/", views.process_detail, name="process-detail"),
    path("processes/<uuid:pk>/fragment/", views.process_fragment, name="process-fragment"),
    path("processes/<uuid:pk>/resume/", views.process_resume, name="process-resume"),
    path("processes/<uuid:pk>/abort/", views.process_abort, name="process-abort"),
    path("processes/<uuid:pk>/delete/", views.process_delete, name="process-delete"),
    path("schedules/", views.schedule_list, name="schedule-list"),
    path("workers/", views.worker_list, name="worker-list"),
    path("audit/", views.audit_list, name="audit-list"),
    path("subscriptions/", include("subscriptions.urls")),
    path("blueprints/", include("blueprints.urls")),
]
