"""Page URLs of the subscriptions app, included under /subscriptions/."""

from django.urls import path

from subscriptions import views

urlpatterns = [
    path("", views.subscription_list, name="subscription-list"),
]
