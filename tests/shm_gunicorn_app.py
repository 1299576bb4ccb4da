"""A WSGI app on a SharedMemoryStore, served by gunicorn in tests/test_shared_gunicorn.py.

Every response says which worker served it and the session's request count.
With ``--preload`` the store is built in the gunicorn master before it forks
the workers; without, each worker builds (opens) it when it imports this module.
"""

import os

from memorystore import SharedMemoryStore
from memorystore.wsgi import SessionMiddleware

STORE = SharedMemoryStore(os.environ["MEMORYSTORE_TEST_SHM"], capacity=1000, check_period=60)


def count(environ, start_response):
    session = environ["memorystore.session"]
    session["count"] = session.get("count", 0) + 1
    thread = STORE._thread
    body = f"{os.getpid()} {session['count']} {int(thread is not None and thread.is_alive())}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = SessionMiddleware(count, STORE, secret="a test secret that is long enough")
