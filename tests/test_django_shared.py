"""memorystore.django configured for a SharedMemoryStore from settings alone: the ``"segment"`` key.

``MEMORYSTORE_SESSION_OPTIONS = {"segment": NAME, "capacity": N, ...}`` makes the
session engine's store a ``SharedMemoryStore`` on the segment NAME (what
tests/test_servers.py runs under gunicorn and uWSGI workers); here, in one
process, through Django's test ``Client``, and a second process attached to
the segment sees the sessions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402

if not settings.configured:  # the same settings as tests/test_django.py, whichever module runs first
    settings.configure(
        SECRET_KEY="memorystore-tests-not-a-secret-" + "x" * 32,
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=["django.contrib.sessions"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        ROOT_URLCONF="django_app",
        DATABASES={},
        USE_TZ=True,
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    )
    django.setup()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

import memorystore.django as msdjango  # noqa: E402
from memorystore import SharedMemoryStore  # noqa: E402

pytestmark = pytest.mark.c_extension


@pytest.fixture
def segment():
    name = f"test-django-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    yield name
    try:
        os.unlink(f"/dev/shm/memorystore.{name}")
    except FileNotFoundError:
        pass


@pytest.fixture
def fresh_session_store():
    """The session engine builds its store from the settings again; restored afterwards."""
    previous = msdjango.set_session_store(None)
    try:
        yield
    finally:
        store = msdjango.set_session_store(previous)
        if store is not None:
            store.close()


def test_the_session_engine_opens_the_named_segment(segment, fresh_session_store):
    options = {"segment": segment, "capacity": 2, "check_period": 60}
    with override_settings(SESSION_ENGINE="memorystore.django", MEMORYSTORE_SESSION_OPTIONS=options):
        store = msdjango.get_session_store()
        assert isinstance(store, SharedMemoryStore)
        assert (store.name, store.capacity, store.created) == (segment, 2, True)
        assert msdjango.get_session_store() is store
        clients = [Client() for _ in range(3)]
        for client in clients:
            assert client.get("/incr").content == b"1"
        assert clients[2].get("/incr").content == b"2"
        assert len(store) == 2  # capacity reached the segment: the least recently used session was evicted
        assert clients[0].get("/peek").content == b"0"
        sid = clients[2].cookies["sessionid"].value
        # the stored value is the str SessionBase.encode made (serializer=None), readable by any process
        code = (
            "import sys; from memorystore import SharedMemoryStore; "
            f"s = SharedMemoryStore({segment!r}, capacity=2, serializer=None); "
            f"v = s.get({sid!r}); print(s.created, type(v).__name__, len(s))"
        )
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert other.stdout.split() == ["False", "str", "2"], other.stderr
        assert clients[2].session.decode(store.get(sid)) == {"n": 2}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"segment": "x"}, "capacity"),  # a shared store needs its capacity
        ({"segment": "x", "capacity": 10, "max": 10}, "'max'"),  # MemoryStore's bound is not a shared store option
    ],
)
def test_bad_segment_options_are_improperly_configured(options, message, fresh_session_store):
    with override_settings(MEMORYSTORE_SESSION_OPTIONS=options):
        with pytest.raises(ImproperlyConfigured, match=message) as raised:
            msdjango.get_session_store()
    assert "MEMORYSTORE_SESSION_OPTIONS" in str(raised.value)
    assert not os.path.exists("/dev/shm/memorystore.x")
