"""Every code block of README.md, run as written (what the README shows is what runs).

* each ```python block is executed in a fresh namespace, exactly as the README
  shows it; a ``print(...)  # expected`` line must print what its comment says;
* the framework snippets are then exercised for real: the Flask and
  Flask-Session apps through their test clients (every Flask session type
  included), the WSGI app and the starsessions app served by real servers
  (wsgiref, uvicorn) over HTTP, Django's settings in a child interpreter
  through Django's test client, the Pyramid config and the Beaker ``.ini``
  through WebTest, the Redis snippet against the throwaway redis-server;
* each ```ini block parses, and each ```bash block is valid bash whose
  commands exist;
* every ``pip install ".[extra]"`` a snippet names is an extra of
  pyproject.toml that installs every package the snippet imports;
* what ships never points at a file that does not (SPEC.md), and ``.ci/run``
  runs exactly the README's test command.

README.md is read from the source tree: a run of a copy of tests/ outside it
(tools/check-wheels.sh) skips this module, saying so.
"""

from __future__ import annotations

import ast
import configparser
import contextlib
import http.client
import importlib.metadata
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import threading
import tomllib
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_flask_types_survive

import memorystore

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
if not README.exists():
    pytest.skip("README.md is not beside tests/ (a copy of the suite outside the source tree)", allow_module_level=True)


# -- the blocks ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    lang: str
    line: int  # of the first line of code, 1-based
    text: str

    @property
    def title(self) -> str:
        first = self.text.strip().splitlines()[0]
        return first.lstrip("# ").split(":")[0] if first.startswith("#") else first

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.title})"


def readme_blocks() -> list[Block]:
    blocks, lines = [], README.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = re.fullmatch(r"```(\w+)\s*", lines[i])
        if match:
            end = lines.index("```", i + 1)
            blocks.append(Block(match.group(1), i + 2, "\n".join(lines[i + 1 : end]) + "\n"))
            i = end
        i += 1
    return blocks


BLOCKS = readme_blocks()
PYTHON = [b for b in BLOCKS if b.lang == "python"]
BASH = [b for b in BLOCKS if b.lang == "bash"]
INI = [b for b in BLOCKS if b.lang == "ini"]
# Modules the README itself writes (a block whose first line is "# NAME.py"): another block may import them.
README_MODULES = {m.group(1) for b in PYTHON if (m := re.match(r"# (\w+)\.py\b", b.text))}


def block(marker: str) -> Block:
    """The one python block whose text contains ``marker``."""
    [found] = [b for b in PYTHON if marker in b.text]
    return found


def test_the_readme_has_the_blocks_this_module_knows() -> None:
    assert {b.lang for b in BLOCKS} == {"python", "bash", "ini"}, "a new kind of block needs a check here"
    assert len(PYTHON) == len(EXERCISED) + len(RUN_ONLY), "every python block is exercised or listed as run-only"
    for marker in [*EXERCISED, *RUN_ONLY]:
        block(marker)  # each marker names exactly one block


# -- running a block as written -------------------------------------------------------------------------------------


def expected_prints(text: str) -> list[str]:
    """What a block must print: the comment after each ``print(...)`` line."""
    return [line.split("  # ", 1)[1].strip() for line in text.splitlines() if "print(" in line and "  # " in line]


def run_block(blk: Block, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Execute a block exactly as written, as the body of a module of its own (Pyramid and Flask look their
    caller's module up); check its printed lines; return its namespace."""
    module = types.ModuleType(f"readme_line_{blk.line}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(blk.text, str(blk), "exec"), namespace)  # noqa: S102 - running the README is the test
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] != "memorystore":
            pytest.skip(f"{blk}: {exc.name} is not installed (its extra is missing here)")
        raise
    assert out.getvalue().splitlines() == expected_prints(blk.text), f"{blk} printed {out.getvalue()!r}"
    return namespace


def needs_redis(blk: Block) -> bool:
    return "RedisStore" in blk.text


def give_redis(blk: Block, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """REDIS_URL for a snippet that reads it: the suite's throwaway redis-server (tests/test_redis.py)."""
    if not needs_redis(blk):
        return
    if "redis_url" not in globals():
        pytest.skip("redis-py is not installed: the Redis snippet needs it (extra [redis])")
    monkeypatch.setenv("REDIS_URL", request.getfixturevalue("redis_url"))


def needs_core(text: str) -> tuple[pytest.MarkDecorator, ...]:
    """A block that builds a SharedMemoryStore runs on the compiled core only (the pure one refuses it)."""
    return (pytest.mark.c_extension,) if "SharedMemoryStore(" in text else ()


@pytest.mark.parametrize("blk", [pytest.param(b, marks=needs_core(b.text)) for b in PYTHON], ids=str)
def test_every_python_block_runs_as_written(
    blk: Block, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    give_redis(blk, request, monkeypatch)
    namespace = run_block(blk, monkeypatch)
    for value in namespace.values():  # stop the prune threads the snippets started
        if isinstance(value, memorystore.MemoryStore):
            value.close()


# The Redis fixture of tests/test_redis.py (a throwaway redis-server; it skips, saying why, without one).
with contextlib.suppress(pytest.skip.Exception):
    redis_url = pytest.importorskip("test_redis", reason="needs redis-py").redis_url


# -- exercising what the snippets build ----------------------------------------------------------------------------


@contextlib.contextmanager
def serving_wsgi(app: Any) -> Iterator[int]:
    """``app`` on a real wsgiref server on 127.0.0.1 (a free port), in a thread; yields the port."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def http_get(port: int, path: str, cookie: str | None) -> tuple[int, str, str | None]:
    """GET over a real connection; returns (status, body, the cookie to send next: new one, else the old one)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = conn.getresponse()
        body = response.read().decode()
        set_cookie = response.getheader("Set-Cookie")
    finally:
        conn.close()
    if set_cookie:
        cookie = set_cookie.split(";", 1)[0]
    return response.status, body, cookie


def exercise_flask(namespace: dict[str, Any]) -> None:
    app = namespace["app"]
    client = app.test_client()
    response = client.post("/login")
    assert response.status_code == 200 and response.text == "logged in"
    assert client.get_cookie("session") is not None
    # The README's interface and store hold every type Flask's own sessions hold.
    assert_flask_types_survive(app.session_interface)


def exercise_shared_flask(namespace: dict[str, Any]) -> None:
    store = namespace["app"].session_interface.store
    try:
        # Every Flask session type survives the shared segment too, and the session is in it.
        assert_flask_types_survive(namespace["app"].session_interface)
        assert store.stats().writes >= 1 and len(store) >= 1
    finally:
        store.unlink()


def exercise_myapp(namespace: dict[str, Any]) -> None:
    store = namespace["store"]
    try:
        client = namespace["app"].test_client()
        first, second = client.get("/").text, client.get("/").text
        assert first.startswith("visit 1, served by worker ") and second.startswith("visit 2, ")
        assert len(store) == 1
    finally:
        store.unlink()  # the README's name, "myapp": not left in /dev/shm


def exercise_flask_session(namespace: dict[str, Any]) -> None:
    import datetime as dt

    from flask import session

    app = namespace["app"]
    when = dt.datetime(2026, 1, 2, 3, 4, 5)

    @app.get("/visit")
    def visit() -> str:
        session["n"] = session.get("n", 0) + 1
        session["when"] = when
        return str(session["n"])

    @app.get("/when")
    def read_when() -> str:
        return repr(session["when"])

    client = app.test_client()
    assert client.get("/visit").text == "1"
    assert client.get("/visit").text == "2"
    assert client.get("/when").text == repr(when)  # pickled by the cache: any picklable value
    cache = app.config["SESSION_CACHELIB"]
    assert cache.store.length() == 1


def exercise_wsgi(namespace: dict[str, Any]) -> None:
    with serving_wsgi(namespace["app"]) as port:
        status, body, cookie = http_get(port, "/", None)
        assert (status, body) == (200, "visit 1") and cookie
        assert http_get(port, "/", cookie)[1] == "visit 2"
        assert http_get(port, "/", None)[1] == "visit 1"  # another visitor


def exercise_pyramid(namespace: dict[str, Any]) -> None:
    webtest = pytest.importorskip("webtest")
    from pyramid.response import Response

    config = namespace["config"]

    def count(request: Any) -> Any:
        request.session["n"] = request.session.get("n", 0) + 1
        return Response(str(request.session["n"]))

    config.add_route("count", "/count")
    config.add_view(count, route_name="count")
    app = webtest.TestApp(config.make_wsgi_app())
    assert app.get("/count").text == "1"
    assert app.get("/count").text == "2"


def exercise_starsessions(namespace: dict[str, Any]) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    from starlette.responses import PlainTextResponse

    app = namespace["app"]

    async def count(request: Any) -> Any:
        request.session["n"] = request.session.get("n", 0) + 1
        return PlainTextResponse(str(request.session["n"]))

    app.add_route("/count", count)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(1000):  # until the server accepts (bounded: 10 s)
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        status, body, cookie = http_get(port, "/count", None)
        assert (status, body) == (200, "1") and cookie
        assert http_get(port, "/count", cookie)[1] == "2"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


DJANGO_CHILD = """
import json, sys
from django.conf import settings

namespace = {}
exec(compile(sys.argv[1], sys.argv[2], "exec"), namespace)  # the README's settings, as written
settings.configure(
    SECRET_KEY="readme-test-" + "x" * 40,
    ALLOWED_HOSTS=["testserver"],
    INSTALLED_APPS=["django.contrib.sessions"],
    MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
    ROOT_URLCONF="django_app",
    DATABASES={},
    **{name: value for name, value in namespace.items() if name.isupper()},
)
import django
django.setup()
from django.test import Client

client = Client()
counts = [client.get("/incr").content.decode() for _ in range(3)]
if settings.SESSION_ENGINE == "memorystore.django":
    from memorystore.django import get_session_store
    store = get_session_store()
else:
    from django.core.cache import caches
    store = caches["default"].store
[sid] = store.ids()
print(json.dumps({"counts": counts, "remaining": store.core.remaining(sid), "max": store._max}))
"""


def run_django_settings(blk: Block) -> dict[str, Any]:
    import json

    pytest.importorskip("django")
    result = subprocess.run(
        [sys.executable, "-c", DJANGO_CHILD, blk.text, str(blk)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent,  # django_app.py (the URLconf) is beside this file
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def exercise_django_cache(namespace: dict[str, Any]) -> None:
    report = run_django_settings(block('"BACKEND": "memorystore.django.MemoryStoreCache"'))
    assert report["counts"] == ["1", "2", "3"]
    assert report["max"] == 10_000  # MAX_ENTRIES
    # A session lives SESSION_COOKIE_AGE (two weeks) in the store, not the cache's TIMEOUT (300 s).
    assert 1_209_000 < report["remaining"] <= 1_209_600


def exercise_django_engine(namespace: dict[str, Any]) -> None:
    report = run_django_settings(block('SESSION_ENGINE = "memorystore.django"'))
    assert report["counts"] == ["1", "2", "3"]
    assert report["max"] == 10_000
    assert 1_209_000 < report["remaining"] <= 1_209_600  # Django's default SESSION_COOKIE_AGE


def exercise_redis(namespace: dict[str, Any]) -> None:
    store = namespace["store"]
    try:
        assert store.get("sid-1") is None  # the snippet destroyed what it wrote
        store.set("sid-2", {"n": 1})
        assert store.get("sid-2") == {"n": 1} and store.get("sid-2") is not store.get("sid-2")
        store.destroy("sid-2")
    finally:
        store.close()


def exercise_lru(namespace: dict[str, Any]) -> None:
    cache = namespace["c"]
    assert sorted(cache.keys()) == ["k", "k2", "k3"]
    assert cache.remaining("k2") == float("inf")


def exercise_prometheus(namespace: dict[str, Any]) -> None:
    pytest.importorskip("prometheus_client")
    store = namespace["store"]
    store.set("sid-2", {"user": 7})
    store.get("sid-2")
    with serving_wsgi(namespace["metrics_app"]) as port:  # the scrape, over HTTP as Prometheus reads it
        status, body, _ = http_get(port, "/metrics", None)
    assert status == 200
    for line in (
        'memorystore_writes_total{store="sessions"} 2.0',
        'memorystore_hits_total{store="sessions"} 1.0',
        'memorystore_sessions{store="sessions"} 2.0',
        'memorystore_capacity{store="sessions"} 100000.0',
    ):
        assert line in body.splitlines(), line
    assert "sid-" not in body  # never a session id


# Marker (a string only that block contains) -> what to do with its namespace afterwards.
EXERCISED: dict[str, Callable[[dict[str, Any]], None]] = {
    "MemoryStoreSessionInterface(MemoryStore(max=100_000": exercise_flask,
    'SharedMemoryStore("readme-flask"': exercise_shared_flask,
    "# myapp.py: pip install": exercise_myapp,
    "from flask_session import Session": exercise_flask_session,
    "from memorystore.wsgi import": exercise_wsgi,
    "from memorystore.pyramid import": exercise_pyramid,
    "from memorystore.starsessions import": exercise_starsessions,
    '"BACKEND": "memorystore.django.MemoryStoreCache"': exercise_django_cache,
    'SESSION_ENGINE = "memorystore.django"': exercise_django_engine,
    "from memorystore.redis import RedisStore": exercise_redis,
    "from memorystore import LRUCache": exercise_lru,
    'StoreCollector({"sessions": store}': exercise_prometheus,
}
# Blocks whose run (and printed lines) is the whole check.
RUN_ONLY = [
    "store = MemoryStore(ttl=3600",
    "from memorystore.aio import AsyncMemoryStore",
    "users_kept_through_a_flood",
    "store.reset_stats()",
    'SharedMemoryStore("readme-demo"',
    "threads = [threading.Thread(target=visitor",
    "# gunicorn.conf.py: gunicorn -c gunicorn.conf.py",  # tests/test_servers.py serves it for real
]


@pytest.mark.parametrize(
    "marker",
    [pytest.param(m, marks=needs_core(block(m).text), id=str(block(m))) for m in EXERCISED],
)
def test_what_a_snippet_builds_works(
    marker: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    blk = block(marker)
    give_redis(blk, request, monkeypatch)
    EXERCISED[marker](run_block(blk, monkeypatch))


def test_the_beaker_ini_block_configures_pyramid_beaker() -> None:
    webtest = pytest.importorskip("webtest")
    pytest.importorskip("pyramid_beaker")
    from pyramid.config import Configurator
    from pyramid.response import Response

    from memorystore.beaker import MemoryStoreNamespaceManager

    [blk] = [b for b in INI if "[app:main]" in b.text]
    [extra] = re.findall(r'pip install "\.\[(\w+)\]"', blk.text)
    assert {"pyramid", "pyramid-beaker", "beaker"} <= installed_by(extra)
    parser = configparser.ConfigParser()
    parser.read_string(blk.text, source=str(blk))
    settings = dict(parser["app:main"])
    assert settings["session.type"] == "memorystore"

    def count(request: Any) -> Any:
        request.session["n"] = request.session.get("n", 0) + 1
        return Response(str(request.session["n"]))

    MemoryStoreNamespaceManager.close_stores()
    try:
        with Configurator(settings=settings) as config:
            config.include("pyramid_beaker")
            config.add_route("count", "/count")
            config.add_view(count, route_name="count")
            app = webtest.TestApp(config.make_wsgi_app())
        assert app.get("/count").text == "1"
        assert app.get("/count").text == "2"
        [(key, store)] = MemoryStoreNamespaceManager.stores.items()
        assert key[1] == 10_000 and key[3] == 60.0  # memorystore_max, memorystore_check_period
        assert store.length() == 1
    finally:
        MemoryStoreNamespaceManager.close_stores()


# -- bash blocks -----------------------------------------------------------------------------------------------------


def commands(text: str) -> Iterator[list[str]]:
    """The simple commands of a bash block (split on ``&&``, ``||``, ``;``, ``|`` and lines), comments dropped."""
    import shlex

    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        command: list[str] = []
        for word in [*words, ";"]:
            if word in ("&&", "||", ";", "|"):
                if command:
                    yield command
                command = []
            else:
                command.append(word)


@pytest.mark.parametrize("blk", BASH, ids=str)
def test_bash_blocks_are_valid_and_their_commands_exist(blk: Block) -> None:
    bash = shutil.which("bash")
    assert bash, "no bash"
    result = subprocess.run([bash, "-n"], input=blk.text, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    for words in commands(blk.text):
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value prefixes
            words = words[1:]
        program = words[0]
        if program.startswith(".venv/"):  # made by the command before it
            assert program in {".venv/bin/pip", ".venv/bin/python"}, program
            continue
        assert shutil.which(program, path=path), f"{blk}: {program} is not a command here"
        if program == "bash":
            assert (ROOT / words[1]).is_file(), f"{blk}: no {words[1]}"
        for word in words:
            match = re.fullmatch(r"\.\[(\w+)\]", word)
            if match:
                assert match.group(1) in EXTRAS, f"{blk}: no extra {match.group(1)!r} in pyproject.toml"


def test_the_ci_runs_exactly_the_readmes_test_command() -> None:
    [test_block] = [b for b in BASH if "tools/test.sh" in b.text]
    assert test_block.text.strip() == "bash tools/test.sh"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert [line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd "))] == [
        "exec bash tools/test.sh"
    ]


# -- extras cover what the snippets import ---------------------------------------------------------------------------


EXTRAS: dict[str, list[str]] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
    "optional-dependencies"
]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def installed_by(extra: str) -> set[str]:
    """Distributions ``pip install memorystore[extra]`` brings, with their dependencies (as installed here)."""
    todo = [_name(req) for req in EXTRAS[extra]]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [_name(req) for req in requires if "extra ==" not in req]
    return seen


def used_modules(text: str) -> set[str]:
    """Top-level modules a snippet imports or names in a dotted string (Django settings), stdlib aside."""
    tree = ast.parse(text)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(r"[a-z_]+(\.[A-Za-z_]+)+", node.value):
                names.add(node.value.split(".")[0])
    return names - set(sys.stdlib_module_names) - README_MODULES


# The extra each adapter module of memorystore needs.
ADAPTER_EXTRAS = {
    "memorystore.flask": "flask",
    "memorystore.cachelib": "cachelib",
    "memorystore.django": "django",
    "memorystore.redis": "redis",
    "memorystore.pyramid": "pyramid",
    "memorystore.starsessions": "starsessions",
    "memorystore.prometheus": "prometheus",
}


@pytest.mark.parametrize("blk", [b for b in PYTHON if 'pip install ".[' in b.text], ids=str)
def test_the_extra_a_snippet_names_installs_what_it_imports(blk: Block) -> None:
    [extra] = re.findall(r'pip install "\.\[(\w+)\]"', blk.text)
    assert extra in EXTRAS, f"{blk}: no extra {extra!r}"
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        # tools/test-freethreaded.sh names (loudly) what cannot be installed on a free-threaded build.
        missing = [_name(req) for req in EXTRAS[extra] if not _installed(_name(req))]
        if missing:
            pytest.skip(f"{missing} not installable on this free-threaded build (see the step's loud line)")
    brought = installed_by(extra)
    providers = importlib.metadata.packages_distributions()
    for module in used_modules(blk.text) - {"memorystore"}:
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        assert dists, f"{blk}: nothing here provides {module!r}"
        assert dists & brought, f"{blk}: {module} comes from {dists}, which memorystore[{extra}] does not install"
    # The app-serving snippets name the server they are served with: the extra brings it too.
    if "uvicorn" in blk.text:
        assert "uvicorn" in brought


def test_a_snippet_that_needs_an_extra_names_it() -> None:
    for blk in PYTHON:
        needed = {extra for module, extra in ADAPTER_EXTRAS.items() if module in blk.text}
        named = set(re.findall(r'pip install "\.\[(\w+)\]"', blk.text))
        if needed or used_modules(blk.text) - {"memorystore"}:
            assert named, f"{blk} needs an extra but names none"
        assert needed <= named, f"{blk} uses {needed} but names {named}"


# -- what ships ---------------------------------------------------------------------------------------------------------


def test_shipped_files_point_at_nothing_that_does_not_ship() -> None:
    package = Path(memorystore.__file__).parent
    for path in sorted([*package.glob("*.py"), *package.glob("*.pyi"), *package.glob("*.pyx")]):
        text = path.read_text(encoding="utf-8")
        assert "SPEC" not in text.replace("TYPE_SPECS", ""), f"{path.name} points at SPEC, which does not ship"
