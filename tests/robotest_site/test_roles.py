"""The roles: the groups migration 0007 makes, role_of and can_operate, and the admin group's staff flag."""

import pytest
from django.apps import apps
from django.contrib.auth.models import AnonymousUser, Group

from robotest_site.roles import ADMIN, OPERATOR, VIEWER, can_operate, is_admin, role_of

pytestmark = pytest.mark.django_db

MODELS = [
    model._meta.model_name for label in ("recording", "sensors") for model in apps.get_app_config(label).get_models()
]


def codenames(name: str) -> set[str]:
    return set(Group.objects.get(name=name).permissions.values_list("codename", flat=True))


def member(django_user_model, username: str, *groups: str, **flags):
    user = django_user_model.objects.create_user(username, password="secret-pass-1", **flags)
    user.groups.add(*Group.objects.filter(name__in=groups))
    return django_user_model.objects.get(pk=user.pk)


def test_the_migration_makes_the_three_role_groups():
    assert set(Group.objects.values_list("name", flat=True)) >= {VIEWER, OPERATOR, ADMIN}


def test_a_viewer_may_view_every_recording_and_sensors_model_and_nothing_else():
    assert {"recordingsession", "reading", "validationresult", "rig", "sensor", "validationrule"} <= set(MODELS)
    assert codenames(VIEWER) == {f"view_{model}" for model in MODELS}


def test_an_operator_may_view_operate_sessions_and_acknowledge_results():
    assert codenames(OPERATOR) == {f"view_{model}" for model in MODELS} | {"operate_session", "acknowledge_result"}


def test_an_admin_has_every_permission_of_both_apps():
    every = {f"{action}_{model}" for model in MODELS for action in ("add", "change", "delete", "view")}

    assert codenames(ADMIN) == every | {"operate_session", "acknowledge_result"}
    perms = Group.objects.get(name=ADMIN).permissions.values_list("content_type__app_label", flat=True)
    assert set(perms) == {"recording", "sensors"}


@pytest.mark.parametrize(
    ("groups", "flags", "role", "operates"),
    [
        ((), {}, None, True),
        ((VIEWER,), {}, VIEWER, False),
        ((OPERATOR,), {}, OPERATOR, True),
        ((ADMIN,), {}, ADMIN, True),
        ((VIEWER, OPERATOR), {}, OPERATOR, True),
        ((VIEWER,), {"is_superuser": True}, ADMIN, True),
        ((), {"is_staff": True}, None, True),
    ],
)
def test_role_and_operating_follow_the_groups(django_user_model, groups, flags, role, operates):
    user = member(django_user_model, "someone", *groups, **flags)

    assert role_of(user) == role
    assert can_operate(user) is operates


def test_an_anonymous_visitor_has_no_role_and_does_not_operate():
    assert role_of(AnonymousUser()) is None
    assert can_operate(AnonymousUser()) is False
    assert is_admin(AnonymousUser()) is False


def test_staff_writes_are_for_staff_superusers_and_admins_but_never_a_viewer(django_user_model):
    assert is_admin(member(django_user_model, "a", ADMIN))
    assert is_admin(member(django_user_model, "b", is_superuser=True))
    assert is_admin(member(django_user_model, "c", is_staff=True))
    assert not is_admin(member(django_user_model, "d", OPERATOR))
    assert not is_admin(member(django_user_model, "e"))
    assert not is_admin(member(django_user_model, "f", VIEWER, is_staff=True))


def test_a_request_asks_the_database_for_the_groups_once(django_user_model, django_assert_num_queries):
    user = member(django_user_model, "someone", OPERATOR)

    with django_assert_num_queries(1):
        for _ in range(5):
            assert can_operate(user)
            assert role_of(user) == OPERATOR


def test_adding_a_user_to_a_group_is_seen_on_the_same_user_object(django_user_model):
    user = member(django_user_model, "someone")
    assert can_operate(user)

    user.groups.add(Group.objects.get(name=VIEWER))

    assert role_of(user) == VIEWER and not can_operate(user)


def test_joining_the_admin_group_makes_a_user_staff_and_leaving_it_unmakes_them(django_user_model):
    user = member(django_user_model, "someone")
    admins = Group.objects.get(name=ADMIN)

    user.groups.add(admins)
    assert user.is_staff and django_user_model.objects.get(pk=user.pk).is_staff

    user.groups.remove(admins)
    assert not user.is_staff and not django_user_model.objects.get(pk=user.pk).is_staff


def test_the_admin_group_gives_staff_from_the_group_side_too(django_user_model):
    first, second = member(django_user_model, "first"), member(django_user_model, "second")
    admins = Group.objects.get(name=ADMIN)

    admins.user_set.add(first, second)
    staff = django_user_model.objects.filter(is_staff=True).values_list("username", flat=True)
    assert set(staff) == {"first", "second"}

    admins.user_set.clear()
    assert not django_user_model.objects.filter(is_staff=True).exists()


def test_leaving_the_admin_group_keeps_a_superuser_staff(django_user_model):
    user = member(django_user_model, "root", ADMIN, is_superuser=True, is_staff=True)

    user.groups.clear()

    assert django_user_model.objects.get(pk=user.pk).is_staff


def test_other_groups_leave_the_staff_flag_alone(django_user_model):
    user = member(django_user_model, "someone", is_staff=True)

    user.groups.add(Group.objects.get(name=OPERATOR))
    user.groups.clear()

    assert django_user_model.objects.get(pk=user.pk).is_staff
