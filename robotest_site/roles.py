"""The three roles, as Django groups (created by a migration): what a user may do on the site and the API."""

VIEWER = "viewer"
OPERATOR = "operator"
ADMIN = "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)


def role_of(user) -> str | None:
    """The highest role a user holds: a superuser is an admin; None for anonymous or groupless users."""
    if not getattr(user, "is_authenticated", False):
        return None
    if user.is_superuser:
        return ADMIN
    names = {group.name for group in user.groups.all()}
    for role in (ADMIN, OPERATOR, VIEWER):
        if role in names:
            return role
    return None


def can_operate(user) -> bool:
    """May start, stop and reset sessions and acknowledge results (operator or admin); pages show controls by it."""
    return role_of(user) in (OPERATOR, ADMIN)
