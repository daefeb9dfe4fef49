"""API routes of the subscriptions app; `orchestrator.api.urls` includes them under /api/."""

from rest_framework.routers import SimpleRouter

from subscriptions.api import views

router = SimpleRouter()
router.register("products", views.ProductViewSet, basename="api-product")
router.register("subscriptions", views.SubscriptionViewSet, basename="api-subscription")

urlpatterns = router.urls
