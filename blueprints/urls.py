"""Page URLs of the blueprints app, included under /blueprints/."""

from django.urls import path

from blueprints import views

urlpatterns = [
    path("", views.blueprint_list, name="blueprint-list"),
    path("<int:pk>/", views.blueprint_detail, name="blueprint-detail"),
    path("executions/<uuid:pk>/", views.execution_detail, name="execution-detail"),
]
