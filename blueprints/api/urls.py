"""API routes of the blueprints app; `orchestrator.api.urls` includes them under /api/."""

from rest_framework.routers import SimpleRouter

from blueprints.api import views

router = SimpleRouter()
router.register("templates", views.TemplateViewSet, basename="api-template")
router.register("blueprints", views.BlueprintViewSet, basename="api-blueprint")
router.register("executions", views.ExecutionViewSet, basename="api-execution")
router.register("integrations", views.IntegrationViewSet, basename="api-integration")
router.register("secrets", views.SecretViewSet, basename="api-secret")
router.register("storage-backends", views.StorageBackendViewSet, basename="api-storage-backend")

urlpatterns = router.urls
