"""Page URLs of the blueprints app, included under /blueprints/."""

from django.urls import path

from blueprints import views

urlpatterns = [
    path("", views.blueprint_list, name="blueprint-list"),
    path("<int:pk>/", views.blueprint_detail, name="blueprint-detail"),
    path("<int:pk>/execute/", views.blueprint_execute, name="blueprint-execute"),
    path("templates/", views.template_list, name="template-list"),
    path("templates/<int:pk>/", views.template_detail, name="template-detail"),
    path("executions/", views.execution_list, name="execution-list"),
    path("executions/<uuid:pk>/", views.execution_detail, name="execution-detail"),
    path("executions/<uuid:pk>/fragment/", views.execution_fragment, name="execution-fragment"),
    path("executions/<uuid:pk>/update/", views.execution_update, name="execution-update"),
    path("executions/<uuid:pk>/teardown/", views.execution_teardown,
         name="execution-teardown"),
    path("executions/<uuid:pk>/delete/", views.execution_delete, name="execution-delete"),
]
