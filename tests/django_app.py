"""A tiny Django URLconf for tests/test_django.py (``ROOT_URLCONF = "django_app"``).

Every view returns plain text so tests can read the session state from the body.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path


def incr(request: HttpRequest) -> HttpResponse:
    """Counts this session's requests in ``session["n"]``."""
    count = request.session.get("n", 0) + 1
    request.session["n"] = count
    return HttpResponse(str(count))


def peek(request: HttpRequest) -> HttpResponse:
    """Reads the counter without modifying the session."""
    return HttpResponse(str(request.session.get("n", 0)))


def hello(request: HttpRequest) -> HttpResponse:
    """Never touches the session."""
    return HttpResponse("hello")


def logout(request: HttpRequest) -> HttpResponse:
    request.session.flush()
    return HttpResponse("bye")


def login(request: HttpRequest) -> HttpResponse:
    """Gives the session a new key (what ``django.contrib.auth.login`` does) and returns it."""
    request.session.cycle_key()
    return HttpResponse(request.session.session_key)


def expire_in(request: HttpRequest, seconds: int) -> HttpResponse:
    """Counts like ``incr`` and sets the session to expire ``seconds`` from now."""
    response = incr(request)
    request.session.set_expiry(seconds)
    return response


urlpatterns = [
    path("incr", incr),
    path("peek", peek),
    path("hello", hello),
    path("logout", logout),
    path("login", login),
    path("expire/<int:seconds>", expire_in),
]
