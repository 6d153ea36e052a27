"""The pages' routes (the dashboard itself is `/`, routed by robotest_site.urls through the root view)."""

from django.urls import path

from sessions.pages import review

urlpatterns = [
    path("sessions/", review.session_list, name="session-list-page"),
    path("sessions/<int:session_id>/", review.session_detail, name="session-page"),
    path(
        "sessions/<int:session_id>/alerts/<int:result_id>/acknowledge/", review.acknowledge,
        name="session-alert-acknowledge",
    ),
]
