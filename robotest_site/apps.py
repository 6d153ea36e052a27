from django.apps import AppConfig


class RobotestSiteConfig(AppConfig):
    """The project package as an app, so its management commands (`ensure_admin`) are found."""

    name = "robotest_site"
    verbose_name = "RoboTest site"
