"""What every page's template knows: the project's name and version, and the user's role."""

from django.conf import settings

from robotest_site.roles import role_of


def site(request) -> dict:
    return {
        "project_name": settings.PROJECT_NAME,
        "version": settings.VERSION,
        "role": role_of(getattr(request, "user", None)),
    }
