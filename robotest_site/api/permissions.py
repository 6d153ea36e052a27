"""Who may call the API: reads, writes by any user but a viewer, staff-only writes (robotest_site/roles.py)."""

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS, BasePermission

from robotest_site.api.authentication import rig_principal
from robotest_site.roles import VIEWER, can_operate, is_admin, role_of

NOT_AUTHENTICATED = "Authentication credentials were not provided."
VIEWER_REFUSED = (
    "Your role is viewer, which may only read: starting, stopping, resetting, ingesting and acknowledging "
    "need the operator or admin role."
)
VIEWER_REFUSED_STAFF = "Your role is viewer, which may only read: this needs staff or the admin role."
RIG_TOKEN_REFUSED = (
    "This is a token of rig {rig!r}: it may only ingest into and read the readings of rig {rig!r}'s "
    "sessions (POST/GET /api/v1/sessions/<id>/readings/); everything else needs a user's token."
)


def refuses_rig_token(permission: BasePermission, request) -> bool:
    """True (and the permission's message set) when a rig token made the request."""
    rig = rig_principal(request.user)
    if rig is None:
        return False
    permission.message = RIG_TOKEN_REFUSED.format(rig=rig.rig_name)
    return True


class ReadPublicOrAuthenticated(BasePermission):
    """Writes need a user whose role is not viewer; reads need a user too, unless ROBOTEST_PUBLIC_READ=true."""

    message = NOT_AUTHENTICATED

    def has_permission(self, request, view) -> bool:
        user = request.user
        if refuses_rig_token(self, request):
            return False
        if not (user and user.is_authenticated):
            return request.method in SAFE_METHODS and settings.ROBOTEST_PUBLIC_READ
        if request.method in SAFE_METHODS or can_operate(user):
            return True
        self.message = VIEWER_REFUSED
        return False


class IsStaffOrReadOnly(ReadPublicOrAuthenticated):
    """Reads as above; writes by staff, superusers and the admin role (a viewer never writes)."""

    message = "Only staff users or the admin role may do this."

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return super().has_permission(request, view)
        if refuses_rig_token(self, request):
            return False
        user = request.user
        if not (user and user.is_authenticated):
            self.message = NOT_AUTHENTICATED
            return False
        if role_of(user) == VIEWER:
            self.message = VIEWER_REFUSED_STAFF
            return False
        return is_admin(user)
