"""Settings of the Django app of tests/test_servers.py: ``SESSION_ENGINE = "memorystore.django"``
on the shared segment named in the environment (``MEMORYSTORE_SESSION_OPTIONS["segment"]``)."""

import counting

SECRET_KEY = "memorystore server tests: a long enough secret, " + "x" * 20
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "django_counter"
INSTALLED_APPS = ["django.contrib.sessions"]
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
DATABASES: dict = {}
USE_TZ = True
SESSION_ENGINE = "memorystore.django"
if counting.per_process():
    MEMORYSTORE_SESSION_OPTIONS = {"max": counting.CAPACITY, "check_period": 60}
else:
    MEMORYSTORE_SESSION_OPTIONS = {"segment": counting.segment(), "capacity": counting.CAPACITY, "check_period": 60}
