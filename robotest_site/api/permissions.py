from django.conf import settings
from rest_framework.permissions import SAFE_METHODS, BasePermission


class ReadPublicOrAuthenticated(BasePermission):
    """Writes need a user; reads too, unless ROBOTEST_PUBLIC_READ=true."""

    message = "Authentication credentials were not provided."

    def has_permission(self, request, view) -> bool:
        if request.user and request.user.is_authenticated:
            return True
        return request.method in SAFE_METHODS and settings.ROBOTEST_PUBLIC_READ


class IsStaffOrReadOnly(ReadPublicOrAuthenticated):
    """Reads as above; writes by staff only."""

    message = "Only staff users may do this."

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return super().has_permission(request, view)
        if not (request.user and request.user.is_authenticated):
            self.message = ReadPublicOrAuthenticated.message
            return False
        return bool(request.user.is_staff)
