"""The Django URLconf of tests/test_prometheus.py: django_app's session views plus ``/metrics``."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django_app import urlpatterns as session_urlpatterns
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

#: The registry ``/metrics`` exposes; the test sets it.
REGISTRY: Any = None


def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


urlpatterns = [*session_urlpatterns, path("metrics", metrics)]
