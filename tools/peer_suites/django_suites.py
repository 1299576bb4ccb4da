"""Django's own cache and session tests, pointed at memorystore's Django adapters.

Run by ``tools/peer_suites/run.py`` (not meant to be run by hand) in a fresh interpreter:

    python tools/peer_suites/django_suites.py DJANGO_TESTS_DIR RESULTS_JSON

``DJANGO_TESTS_DIR`` is the ``tests/`` directory of Django's sdist (the version
installed here); its ``cache`` and ``sessions_tests`` packages are imported as
Django's runtests.py imports them (as apps).  The peer's test classes are reused
as they are; subclasses below only say which backend they test:

- suite ``django-cache``: ``LocMemCacheTests`` (and all it inherits from
  ``BaseCacheTests``) with every alias of ``CACHES`` on
  ``memorystore.django.MemoryStoreCache``; the methods that carry their own
  LocMemCache settings (``test_multiple_caches``, the ``test_lru_*`` ones) run
  the same bodies with the same settings on our backend.  Then the tests of
  Django's cache middleware, ``cache_page``, cache utilities and default
  timeouts (``CacheMiddlewareTest``, ``CacheUtils``, ``CacheI18nTest``...),
  which use a LocMemCache, on our backend instead.
- suite ``django-sessions``: ``CacheSessionTests`` and ``CacheDBSessionTests``
  (Django's cache and cached_db engines, over our cache backend), the session
  contract (``SessionTestsMixin``) and ``SessionMiddlewareTests`` with
  ``SESSION_ENGINE = "memorystore.django"``.

Each test's outcome (passed, failed, error, skipped) is written to
``RESULTS_JSON`` as ``{"suite": {"Class.test": {"outcome": ..., "detail": ...}}}``;
``tools/peer_suites/run.py`` compares them with the list of expected failures.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import traceback
import unittest
import warnings

OUR_CACHE = "memorystore.django.MemoryStoreCache"
LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
OUR_ENGINE = "memorystore.django"


def configure(tests_dir: str) -> None:
    """Settings as Django's runtests.py and test_sqlite.py make them, with our backends."""
    sys.path.insert(0, tests_dir)
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3"},
            "other": {"ENGINE": "django.db.backends.sqlite3"},
        },
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "django.contrib.messages",
            "cache",
            "sessions_tests",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
        ],
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
        SECRET_KEY="django_tests_secret_key",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=False,
        LANGUAGE_CODE="en",
        CACHES={"default": {"BACKEND": OUR_CACHE}},
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
    )
    django.setup()


def _ours(caches: dict) -> dict:
    """``caches`` with every LocMemCache alias on our backend (same LOCATION and OPTIONS)."""
    return {
        alias: {**params, "BACKEND": OUR_CACHE} if params.get("BACKEND") == LOCMEM else dict(params)
        for alias, params in caches.items()
    }


def _rewrap(method, **overrides):
    """The innermost body of a peer test method under ``override_settings(**overrides)``.

    The peer wraps some methods in their own LocMemCache settings (and a retry); the
    body is kept as it is, only the settings name our backend.
    """
    from django.test import override_settings

    return override_settings(**overrides)(inspect.unwrap(method))


def _on_our_backend(peer_class):
    """A subclass of ``peer_class`` whose class-level CACHES (a LocMemCache) name our backend."""
    from django.test import override_settings

    caches = peer_class._overridden_settings["CACHES"]  # what the peer's class decorator set
    namespace = {"__doc__": f"{peer_class.__name__} on memorystore.django.MemoryStoreCache."}
    return override_settings(CACHES=_ours(caches))(
        type(f"{peer_class.__name__}OnMemoryStore", (peer_class,), namespace)
    )


def build_suites() -> dict[str, unittest.TestSuite]:
    from cache import tests as cache_tests
    from django.test import SimpleTestCase, override_settings
    from sessions_tests import tests as session_tests

    import memorystore.django as ours

    # -- django-cache ----------------------------------------------------------------
    our_caches = _ours(cache_tests.caches_setting_for_tests(BACKEND=LOCMEM))
    limited = _ours(cache_tests.caches_setting_for_tests(BACKEND=LOCMEM, OPTIONS={"MAX_ENTRIES": 9}))
    multiple = {
        "default": {"BACKEND": OUR_CACHE},
        "other": {"BACKEND": OUR_CACHE, "LOCATION": "other"},
    }
    peer = cache_tests.LocMemCacheTests

    @override_settings(CACHES=our_caches)
    class MemoryStoreCacheTests(peer):
        """LocMemCacheTests on memorystore.django.MemoryStoreCache."""

        def setUp(self):
            # LocMemCacheTests.setUp makes the prefixed/versioned aliases share one dict by
            # assigning LocMemCache's private _cache/_expire_info; ours share a store per
            # LOCATION and options already, so only the base setUp runs.
            super(peer, self).setUp()

        test_multiple_caches = _rewrap(peer.test_multiple_caches, CACHES=multiple)
        # The same bodies, without the peer's retry (3 tries, 1 s apart, for LocMemCache's timing):
        # here they fail the same way every time (CULL_FREQUENCY, see expected-failures.txt).
        test_lru_get = _rewrap(peer.test_lru_get, CACHES=limited)
        test_lru_set = _rewrap(peer.test_lru_set, CACHES=limited)
        test_lru_incr = _rewrap(peer.test_lru_incr, CACHES=limited)

    # Django's cache middleware, decorators and utilities, on our backend.
    never_expiring = _ours(cache_tests.NEVER_EXPIRING_CACHES_SETTINGS)
    default_memory = _ours(cache_tests.DEFAULT_MEMORY_CACHES_SETTINGS)
    non_expiring = cache_tests.DefaultNonExpiringCacheKeyTests

    @override_settings(CACHES={"default": {"BACKEND": OUR_CACHE}})
    class DefaultNonExpiringCacheKeyOnMemoryStoreTests(non_expiring):
        """DefaultNonExpiringCacheKeyTests on memorystore.django.MemoryStoreCache."""

        test_caches_set_with_timeout_as_none_has_correct_default_timeout = _rewrap(
            non_expiring.test_caches_set_with_timeout_as_none_has_correct_default_timeout, CACHES=never_expiring
        )
        test_caches_with_unset_timeout_set_expiring_key = _rewrap(
            non_expiring.test_caches_with_unset_timeout_set_expiring_key, CACHES=default_memory
        )
        test_caches_set_with_timeout_as_none_set_non_expiring_key = _rewrap(
            non_expiring.test_caches_set_with_timeout_as_none_set_non_expiring_key, CACHES=never_expiring
        )

    cache_extras = [DefaultNonExpiringCacheKeyOnMemoryStoreTests] + [
        _on_our_backend(getattr(cache_tests, name))
        for name in (
            "CacheUtils",
            "PrefixedCacheUtils",
            "CacheHEADTest",
            "CacheI18nTest",
            "PrefixedCacheI18nTest",
            "CacheMiddlewareTest",
            "TestWithTemplateResponse",
        )
    ]

    # -- django-sessions ---------------------------------------------------------------
    non_default = {
        "default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
        "sessions": {"BACKEND": OUR_CACHE, "LOCATION": "session"},
    }

    @override_settings(CACHES={"default": {"BACKEND": OUR_CACHE}})
    class CacheSessionOnMemoryStoreTests(session_tests.CacheSessionTests):
        """Django's cache session engine on our cache backend."""

        test_non_default_cache = _rewrap(
            session_tests.CacheSessionTests.test_non_default_cache, CACHES=non_default, SESSION_CACHE_ALIAS="sessions"
        )

    @override_settings(CACHES={"default": {"BACKEND": OUR_CACHE}})
    class CacheDBSessionOnMemoryStoreTests(session_tests.CacheDBSessionTests):
        """Django's cached_db session engine on our cache backend."""

    @override_settings(SESSION_ENGINE=OUR_ENGINE)
    class MemoryStoreSessionTests(session_tests.SessionTestsMixin, SimpleTestCase):
        """The session contract on SESSION_ENGINE = "memorystore.django"."""

        backend = ours.SessionStore

    @override_settings(SESSION_ENGINE=OUR_ENGINE)
    class MemoryStoreSessionMiddlewareTests(session_tests.SessionMiddlewareTests):
        """Django's SessionMiddleware tests with SESSION_ENGINE = "memorystore.django"."""

    loader = unittest.TestLoader()
    suites = {"django-cache": unittest.TestSuite(), "django-sessions": unittest.TestSuite()}
    for case in (MemoryStoreCacheTests, *cache_extras):
        suites["django-cache"].addTests(loader.loadTestsFromTestCase(case))
    for case in (
        CacheSessionOnMemoryStoreTests,
        CacheDBSessionOnMemoryStoreTests,
        MemoryStoreSessionTests,
        MemoryStoreSessionMiddlewareTests,
    ):
        suites["django-sessions"].addTests(loader.loadTestsFromTestCase(case))
    return suites


class RecordingResult(unittest.TestResult):
    """Records one outcome per test: error beats failure beats skip beats pass."""

    RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes: dict[str, dict[str, str]] = {}

    @staticmethod
    def name(test) -> str:
        return f"{type(test).__name__}.{test._testMethodName}"

    def _record(self, test, outcome: str, detail: str = "") -> None:
        name = self.name(test)
        old = self.outcomes.get(name)
        if old is None or self.RANK[outcome] > self.RANK[old["outcome"]]:
            self.outcomes[name] = {"outcome": outcome, "detail": detail}

    def _last_line(self, err) -> str:
        text = "".join(traceback.format_exception_only(err[0], err[1])).strip()
        return text.splitlines()[-1][:300] if text else err[0].__name__

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failed", self._last_line(err))

    def addError(self, test, err):
        super().addError(test, err)
        # errors in setUpClass/tearDownClass arrive as _ErrorHolder objects
        if not hasattr(test, "_testMethodName"):
            self.outcomes[str(test)] = {"outcome": "error", "detail": self._last_line(err)}
            return
        self._record(test, "error", self._last_line(err))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = "failed" if issubclass(err[0], test.failureException) else "error"
            self._record(test, kind, f"{subtest._subDescription()}: {self._last_line(err)}")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "failed", "the peer marks it expectedFailure")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "passed")


def main(argv: list[str]) -> int:
    tests_dir, results_path = argv
    configure(tests_dir)

    from django.test.runner import DiscoverRunner

    import memorystore

    want_pure = bool(os.environ.get("MEMORYSTORE_NO_EXTENSIONS"))
    if memorystore.COMPILED == want_pure:
        print(f"django_suites: asked for the {'pure' if want_pure else 'compiled'} core, got the other one")
        return 2

    warnings.simplefilter("default")
    runner = DiscoverRunner(verbosity=0, interactive=False)
    runner.setup_test_environment()
    old_config = runner.setup_databases()
    results = {}
    try:
        for suite_name, suite in build_suites().items():
            result = RecordingResult()
            suite.run(result)
            results[suite_name] = result.outcomes
    finally:
        runner.teardown_databases(old_config)
        runner.teardown_test_environment()
    with open(results_path, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
