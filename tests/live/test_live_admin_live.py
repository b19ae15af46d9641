"""The live admin across instances: two daphnes on Redis and the test database; an operator
logged in to instance A's Django admin (session cookie and CSRF token, as a browser) sees a
socket that is on instance B, and kicks it from A: B closes it (accounts/live_admin.py)."""

from __future__ import annotations

import asyncio
import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
from channels.db import database_sync_to_async

from tests.conftest import PASSWORD
from tests.live.harness import DaphneServer, access

pytestmark = [pytest.mark.live, pytest.mark.services, pytest.mark.django_db(transaction=True)]


class AdminBrowser:
    """Django admin over HTTP with cookies: log in, read a page, post a form (blocking)."""

    def __init__(self, server: DaphneServer) -> None:
        self.server = server
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect()
        )

    def _csrf(self) -> str:
        return next(c.value for c in self.cookies if c.name == "csrftoken")

    def open(self, path: str, form: dict | None = None) -> tuple[int, str, str]:
        """(status, Location header, body) of a GET, or of a POST of ``form``."""
        data = None
        if form is not None:
            data = urllib.parse.urlencode({**form, "csrfmiddlewaretoken": self._csrf()}).encode()
        request = urllib.request.Request(self.server.url + path, data=data)
        try:
            with self.opener.open(request, timeout=10) as response:
                return (
                    response.status,
                    response.headers.get("Location", ""),
                    response.read().decode(),
                )
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Location", ""), error.read().decode()

    def login(self, username: str, password: str) -> None:
        status, _, page = self.open("/admin/login/")
        assert status == 200 and re.search(r'name="csrfmiddlewaretoken"', page)
        status, location, _ = self.open(
            "/admin/login/?next=/admin/",
            {"username": username, "password": password, "next": "/admin/"},
        )
        assert (status, location) == (302, "/admin/"), (status, location)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # the test reads each redirect itself
        return None


async def test_a_kick_from_instance_a_admin_closes_a_socket_on_instance_b(
    instances, clients, make_user, http_login_enabled, alice
):
    a, b = instances()
    root = await database_sync_to_async(make_user)("root", is_staff=True, is_superuser=True)
    await http_login_enabled(root)
    token = await access(alice)
    victim = await clients(b, "alice@B").connect(token)
    kept = await clients(b, "alice-2@B", ("polling",)).connect(token)
    sid = victim.sio.get_sid("/")

    admin = AdminBrowser(a)
    await asyncio.to_thread(admin.login, "root", PASSWORD)
    status, _, page = await asyncio.to_thread(admin.open, "/admin/accounts/user/online/")
    assert status == 200
    row = page.split(f'data-sid="{sid}"')[1].split("</tr>")[0]
    assert f":{b.process.pid}</td>" in row  # B's instance id (hostname:pid)
    assert "<td>socket.io</td>" in row and "<td>websocket</td>" in row
    assert "<td>127.0.0.1</td>" in row
    kept_row = page.split(f'data-sid="{kept.sio.get_sid("/")}"')[1].split("</tr>")[0]
    assert "<td>socket.io</td>" in kept_row and "<td>polling</td>" in kept_row

    status, location, _ = await asyncio.to_thread(
        admin.open, "/admin/accounts/user/online/act/", {"action": "kick_socket", "sid": sid}
    )
    assert (status, location) == (302, "/admin/accounts/user/online/")
    error = await victim.wait_for("error")
    assert error["code"] == "kicked"
    await victim.wait_disconnected()
    assert kept.connected and await kept.call("heartbeat") == {}
