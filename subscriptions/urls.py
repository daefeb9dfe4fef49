"""Page URLs of the subscriptions app, included under /subscriptions/."""

from django.urls import path

from subscriptions import views

urlpatterns = [
    path("", views.subscription_list, name="subscription-list"),
    path("products/", views.product_list, name="product-list"),
    path("<uuid:pk>/", views.subscription_detail, name="subscription-detail"),
    path(
        "<uuid:pk>/set-in-sync/", views.subscription_set_in_sync, name="subscription-set-in-sync"
    ),
]
