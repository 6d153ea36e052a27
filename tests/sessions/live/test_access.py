"""Who may open `/ws/sensor-data` (sessions/live/access.py): credentials and the browser's Origin."""

import pytest

from tests.conftest import HOST, WS_PATH, auth

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.usefixtures("live_layer")]

EVIL = [(b"origin", b"http://evil.example")]


async def assert_rejected(client, code: int) -> dict:
    """The handshake was accepted, then an `error` frame naming the code, then a close with it."""
    error = await client.frame()
    assert error["type"] == "error"
    assert error["code"] == code
    assert error["message"]
    closed = await client.next()
    assert closed == {"type": "websocket.close", "code": code}
    return error


# --- credentials -----------------------------------------------------------------------------


async def test_a_token_header_connects(ws, token):
    client = await ws(headers=auth(token))

    await client.assert_open()


async def test_a_token_in_the_query_string_connects(ws, token):
    client = await ws(f"{WS_PATH}?token={token}")

    await client.assert_open()


async def test_a_logged_in_django_session_connects(ws, session_cookie):
    client = await ws(headers=[(b"cookie", session_cookie.encode())])

    await client.assert_open()


async def test_public_read_lets_a_client_without_credentials_connect(ws, settings):
    settings.ROBOTEST_PUBLIC_READ = True

    client = await ws()

    await client.assert_open()


async def test_connection_established_carries_a_message_and_a_timestamp(ws, token):
    client = await ws(headers=auth(token), established=False)

    first = await client.frame()
    assert first["type"] == "connection_established"
    assert first["data"]["message"]
    assert isinstance(first["data"]["timestamp"], float)


async def test_no_credentials_get_an_error_frame_then_close_4401(ws):
    client = await ws(established=False)

    error = await assert_rejected(client, 4401)
    assert "authentication required" in error["message"]


async def test_a_bad_token_header_is_closed_with_4401(ws, token):
    client = await ws(headers=auth("0" * 40), established=False)

    await assert_rejected(client, 4401)


async def test_a_bad_token_in_the_query_string_is_closed_with_4401(ws):
    client = await ws(f"{WS_PATH}?token=not-a-token", established=False)

    await assert_rejected(client, 4401)


async def test_the_token_of_an_inactive_user_is_closed_with_4401(ws):
    from asgiref.sync import sync_to_async

    from tests.conftest import user_with_token

    _, key = await sync_to_async(user_with_token)("gone", is_active=False)

    client = await ws(headers=auth(key), established=False)

    await assert_rejected(client, 4401)


async def test_a_session_cookie_that_names_no_session_is_closed_with_4401(ws):
    client = await ws(headers=[(b"cookie", b"sessionid=nosuchsessionkey0000000000000000")], established=False)

    await assert_rejected(client, 4401)


# --- Origin ----------------------------------------------------------------------------------


async def test_a_foreign_origin_is_closed_with_4403_even_with_a_valid_token(ws, token):
    client = await ws(headers=[*auth(token), *EVIL, (b"host", HOST.encode())], established=False)

    error = await assert_rejected(client, 4403)
    assert "http://evil.example" in error["message"]


async def test_a_foreign_origin_is_closed_with_4403_even_when_reads_are_public(ws, settings):
    settings.ROBOTEST_PUBLIC_READ = True

    client = await ws(headers=[*EVIL, (b"host", HOST.encode())], established=False)

    await assert_rejected(client, 4403)


async def test_a_foreign_origin_with_a_logged_in_session_is_closed_with_4403(ws, session_cookie):
    """A page on another site cannot ride the user's session cookie (cross-site WebSocket hijacking)."""
    client = await ws(headers=[(b"cookie", session_cookie.encode()), *EVIL, (b"host", HOST.encode())],
                      established=False)

    await assert_rejected(client, 4403)


async def test_an_origin_equal_to_the_host_is_accepted(ws, token):
    headers = [*auth(token), (b"host", b"robotest.local:8000"), (b"origin", b"http://robotest.local:8000")]

    client = await ws(headers=headers)

    await client.assert_open()


async def test_an_origin_on_another_port_of_the_host_is_closed_with_4403(ws, token):
    headers = [*auth(token), (b"host", b"robotest.local:8000"), (b"origin", b"http://robotest.local:9000")]

    client = await ws(headers=headers, established=False)

    await assert_rejected(client, 4403)


async def test_an_origin_listed_in_csrf_trusted_origins_is_accepted(ws, token, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://dashboard.example"]
    headers = [*auth(token), (b"host", HOST.encode()), (b"origin", b"https://dashboard.example")]

    client = await ws(headers=headers)

    await client.assert_open()


async def test_a_trusted_origin_still_needs_credentials(ws, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://dashboard.example"]
    headers = [(b"host", HOST.encode()), (b"origin", b"https://dashboard.example")]

    client = await ws(headers=headers, established=False)

    await assert_rejected(client, 4401)


async def test_without_an_origin_a_script_with_a_token_is_accepted(ws, token):
    client = await ws(headers=[*auth(token), (b"host", HOST.encode())])

    await client.assert_open()


async def test_without_an_origin_a_script_without_credentials_is_closed_with_4401(ws):
    client = await ws(headers=[(b"host", HOST.encode())], established=False)

    await assert_rejected(client, 4401)


async def test_a_null_origin_is_closed_with_4403(ws, token):
    """Sandboxed frames and file:// pages send `Origin: null`: not this server."""
    client = await ws(headers=[*auth(token), (b"host", HOST.encode()), (b"origin", b"null")], established=False)

    await assert_rejected(client, 4403)
