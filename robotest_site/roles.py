"""The three roles, as Django groups (created by sessions/migrations/0007_roles): what a user may do.

- viewer: reads only; every write of the API is a 403 and the pages show no controls.
- operator: a viewer who also starts, stops and resets sessions, ingests and acknowledges results.
- admin: an operator who also edits rigs and rules, deletes sessions and uses the admin site.
  Joining the `admin` group makes a user staff (the admin site's login needs `is_staff`); leaving
  it takes staff away again, except from a superuser.

A superuser is an admin whatever their groups. A signed-in user in no role group keeps the API's
older rule, any signed-in user may write, so clients and scripts from before the roles still work.
"""

from django.conf import settings
from django.db.models.signals import m2m_changed

VIEWER = "viewer"
OPERATOR = "operator"
ADMIN = "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)

# Where a user object keeps its group names: a request's user is loaded per request, so this is
# one query per request however many times the pages and the API ask.
_CACHE = "_robotest_group_names"


def _group_names(user) -> frozenset[str]:
    names = getattr(user, _CACHE, None)
    if names is None:
        names = frozenset(user.groups.values_list("name", flat=True))
        setattr(user, _CACHE, names)
    return names


def role_of(user) -> str | None:
    """The highest role a user holds: a superuser is an admin; None for anonymous or groupless users."""
    if not getattr(user, "is_authenticated", False):
        return None
    if user.is_superuser:
        return ADMIN
    names = _group_names(user)
    for role in (ADMIN, OPERATOR, VIEWER):
        if role in names:
            return role
    return None


def can_operate(user) -> bool:
    """May start, stop and reset sessions, ingest and acknowledge: any signed-in user but a viewer."""
    return bool(getattr(user, "is_authenticated", False)) and role_of(user) != VIEWER


def is_admin(user) -> bool:
    """May do what staff may (edit rigs and rules, delete sessions): staff, a superuser or the admin role."""
    if not getattr(user, "is_authenticated", False):
        return False
    return role_of(user) == ADMIN or (bool(user.is_staff) and role_of(user) != VIEWER)


def _staff_follows_the_admin_group(sender, instance, action, reverse, model, pk_set, **kwargs) -> None:
    """Joining the admin group makes a user staff, leaving it unmakes them (superusers stay staff)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    User = get_user_model()
    if isinstance(instance, User):
        instance.__dict__.pop(_CACHE, None)
        if action == "pre_clear":
            instance._robotest_was_admin = instance.groups.filter(name=ADMIN).exists()
            return
        if action == "post_clear":
            users = [instance.pk] if getattr(instance, "_robotest_was_admin", False) else []
            joined = False
        elif action in ("post_add", "post_remove") and Group.objects.filter(pk__in=pk_set, name=ADMIN).exists():
            users, joined = [instance.pk], action == "post_add"
        else:
            return
    elif isinstance(instance, Group) and instance.name == ADMIN:
        if action == "pre_clear":
            instance._robotest_members = list(instance.user_set.values_list("pk", flat=True))
            return
        if action == "post_clear":
            users, joined = getattr(instance, "_robotest_members", []), False
        elif action in ("post_add", "post_remove"):
            users, joined = list(pk_set), action == "post_add"
        else:
            return
    else:
        return
    changed = User.objects.filter(pk__in=users)
    if joined:
        changed.update(is_staff=True)
    else:
        changed.filter(is_superuser=False).update(is_staff=False)
    if isinstance(instance, User) and instance.pk in users:
        instance.is_staff = joined or instance.is_superuser


# The user model's group table, by its lazy name: this module is imported before the apps are ready.
m2m_changed.connect(
    _staff_follows_the_admin_group, sender=f"{settings.AUTH_USER_MODEL}_groups", dispatch_uid="robotest-admin-staff"
)


def grant_model_roles(apps, schema_editor, *, app_label: str, model: str) -> None:
    """For the migration that adds `model` (after recording 0007): viewer and operator may view it, admin everything.

    Permissions are made after the last migration (post_migrate), so this migration's state makes them now.
    Groups that do not exist yet get them from 0007's own loop instead.
    """
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    using = schema_editor.connection.alias
    create_permissions(global_apps.get_app_config(app_label), verbosity=0, using=using, apps=apps)
    every = list(apps.get_model("auth", "Permission").objects.using(using).filter(
        content_type__app_label=app_label, content_type__model=model
    ))
    views = [p for p in every if p.codename.startswith("view_")]
    for group in apps.get_model("auth", "Group").objects.using(using).filter(name__in=ROLES):
        group.permissions.add(*(every if group.name == ADMIN else views))
