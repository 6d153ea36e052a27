from django.apps import AppConfig


class RobotestSiteConfig(AppConfig):
    """The project package as an app, so its management commands (`ensure_admin`) are found."""

    name = "robotest_site"
    verbose_name = "RoboTest site"

    def ready(self) -> None:
        # Connects the signal that keeps the admin group's members staff (robotest_site/roles.py).
        from robotest_site import roles  # noqa: F401
