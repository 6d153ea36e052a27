"""Lock-out after repeated failed logins (django-axes): the site's /login/ and the admin's, per user and address."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "right-password-1"


@pytest.fixture
def axes(settings):
    settings.AXES_ENABLED = True  # off for the rest of the suite, whose test client logs in without a request
    settings.AXES_FAILURE_LIMIT = 3


@pytest.fixture
def lab_user(django_user_model):
    return django_user_model.objects.create_user("lockme", password=PASSWORD, is_staff=True)


def fail(client: Client, path: str, times: int, username: str = "lockme"):
    return [client.post(path, {"username": username, "password": "wrong"}) for _ in range(times)]


def test_the_defaults_are_5_failures_and_15_minutes():
    from datetime import timedelta

    from django.conf import settings

    assert settings.ROBOTEST_LOGIN_FAILURES == settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME == timedelta(minutes=15)


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_the_third_failure_locks_the_user_out_even_with_the_right_password(axes, lab_user, path):
    client = Client(REMOTE_ADDR="10.9.8.7")
    first, second, third = fail(client, path, 3)
    assert first.status_code == second.status_code == 200  # the form again, with its error
    assert third.status_code == 429
    page = third.content.decode()
    assert "Login locked" in page and "after 3 failed attempts" in page and "0:15:00" in page
    right = client.post(path, {"username": "lockme", "password": PASSWORD})
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_lock_holds_one_user_at_one_address(axes, lab_user, django_user_model):
    django_user_model.objects.create_user("bystander", password=PASSWORD)
    fail(Client(REMOTE_ADDR="10.9.8.7"), "/login/", 3)
    elsewhere = Client(REMOTE_ADDR="10.1.1.1")
    assert elsewhere.post("/login/", {"username": "lockme", "password": PASSWORD}).status_code == 302
    same_address = Client(REMOTE_ADDR="10.9.8.7")
    assert same_address.post("/login/", {"username": "bystander", "password": PASSWORD}).status_code == 302


def test_a_success_before_the_limit_starts_the_count_again(axes, lab_user):
    client = Client(REMOTE_ADDR="10.9.8.8")
    fail(client, "/login/", 2)
    assert client.post("/login/", {"username": "lockme", "password": PASSWORD}).status_code == 302
    client.logout()
    assert [r.status_code for r in fail(client, "/login/", 2)] == [200, 200]
