"""A Django app on ``SESSION_ENGINE = "memorystore.django"`` for tests/test_servers.py (see counting.py).

The store is opened at import, as a ``wsgi.py`` would: with gunicorn
``--preload`` (or uWSGI without ``lazy-apps``) before the workers are forked.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_settings")

import counting  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

from memorystore.django import get_session_store  # noqa: E402


def count(request: HttpRequest) -> JsonResponse:
    return JsonResponse(counting.count(request.session, request.GET["client"], int(request.GET["seq"]), store))


def pid(request: HttpRequest) -> JsonResponse:
    return JsonResponse(counting.pid())


urlpatterns = [path("count", count), path("pid", pid)]

application = get_wsgi_application()
store = get_session_store()
