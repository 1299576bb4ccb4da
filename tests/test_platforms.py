"""The branch of the shared-memory core that macOS and Windows compile, built and run on Linux.

``_shm.pyx`` uses robust process-shared mutexes where there are some (Linux); elsewhere its C
block takes a branch without them, in which the module imports and constructing a ``ShmCache``
raises ``RuntimeError``.  Nothing here runs macOS or Windows, so the package is built with
``-DMEMORYSTORE_SHM_UNSUPPORTED`` (which forces that branch on Linux) into a temporary
directory, as ``pip wheel`` builds it, and a subprocess with that build first on ``sys.path``
checks what a user there gets: ``import memorystore`` works, ``SharedMemoryStore`` raises a
``RuntimeError`` that says why and names ``RedisStore``, ``MemoryStore`` and ``LRUCache`` work.
The subprocess also removes what Windows' ``os`` lacks and blocks POSIX-only modules first,
so that reaching any of them before the check would fail here too.

The tree's own sources are built (tests run from a checkout); where the tests run without
them (tools/check-wheels.sh, cibuildwheel) the test skips.  tools/windows-compile-check.sh
compiles the same C against CPython's Windows headers with mingw-w64.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CYTHON_PIN = ROOT / "requirements" / "cython.txt"

pytestmark = [
    pytest.mark.c_extension,
    pytest.mark.slow,
    pytest.mark.skipif(sys.implementation.name != "cpython", reason="the extensions build on CPython only"),
    pytest.mark.skipif(
        not (ROOT / "setup.py").is_file() or not (ROOT / "src" / "memorystore" / "_shm.pyx").is_file(),
        reason="needs the source tree (setup.py, src/) next to tests/",
    ),
]

# pip's words when it cannot download the build requirements (no network, no cache): not a
# failure of the code under test.
NO_BUILD_REQUIREMENTS = ("No matching distribution found", "Could not find a version that satisfies")

CHECK = r"""
import os, sys

site = sys.argv[1]

# What Windows' os module lacks, and modules Windows does not have: nothing on the way to the
# RuntimeError may need them.
for name in ("O_NOFOLLOW", "O_CLOEXEC", "posix_fallocate", "fchmod", "geteuid", "getuid", "fork",
             "register_at_fork"):
    if hasattr(os, name):
        delattr(os, name)
for name in ("fcntl", "resource", "pwd", "grp", "termios"):
    sys.modules[name] = None  # import raises ImportError

import memorystore
from memorystore import LRUCache, MemoryStore, SharedMemoryStore, _lru, _shm
from memorystore import shared, store  # noqa: F401

for module in (memorystore, _lru, _shm):
    assert module.__file__.startswith(site), f"{module.__name__} came from {module.__file__}, not {site}"
assert memorystore.COMPILED, "the compiled LRUCache did not import"
assert _shm.SUPPORTED is False, f"_shm.SUPPORTED is {_shm.SUPPORTED!r}: the forced branch was not built"

name = f"platforms-test-{os.getpid()}"
for make in (lambda: SharedMemoryStore(name, capacity=10), lambda: _shm.ShmCache(name, capacity=10)):
    try:
        make()
    except RuntimeError as exc:
        message = str(exc)
    else:
        raise AssertionError("constructing it did not raise")
    for words in ("not available on this platform", "robust process-shared mutex", "RedisStore"):
        assert words in message, f"{words!r} is not in the message: {message}"
assert not os.path.exists(_shm.segment_path(name)), "a segment file was made"

# The rest of the extension works: its C helpers (SipHash test vector) and the Python-level API.
key = bytes(range(16))
assert _shm._siphash(key, b"", 2, 4) == 0x726FDB47DD0E0E31, "SipHash-2-4 of b'' is wrong"

sessions = MemoryStore(ttl=60)
sessions.set("sid-1", {"user": "ada"})
assert sessions.get("sid-1") == {"user": "ada"}
sessions.destroy("sid-1")
assert sessions.get("sid-1") is None
cache = LRUCache(maxsize=2)
cache["a"], cache["b"], cache["c"] = 1, 2, 3
assert type(cache).__module__ == "memorystore._lru", type(cache).__module__
assert len(cache) == 2 and "a" not in cache and cache["b"] == 2 and cache["c"] == 3, dict(cache.items())
print("forced non-Linux build: OK;", message)
"""


def copy_source(dest: Path) -> None:
    """What the build needs from the tree, without anything a build left there."""
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("*.so", "*.pyd", "*.c", "*.html", "__pycache__", "*.egg-info", "build")
    shutil.copytree(ROOT / "src", dest / "src", ignore=ignore)


def test_forced_non_linux_branch_builds_and_refuses_shared_memory(tmp_path: Path) -> None:
    source, wheels, site = tmp_path / "source", tmp_path / "wheels", tmp_path / "site"
    source.mkdir()
    copy_source(source)
    env = dict(os.environ)
    env.pop("MEMORYSTORE_NO_EXTENSIONS", None)
    env.pop("PYTHONPATH", None)
    env["CFLAGS"] = " ".join(
        filter(None, [env.get("CFLAGS"), "-DMEMORYSTORE_SHM_UNSUPPORTED", "-Werror=implicit-function-declaration"])
    )
    if CYTHON_PIN.is_file():  # the Cython release wheels are built with (as tools/check-wheels.sh)
        env["PIP_BUILD_CONSTRAINT"] = str(CYTHON_PIN)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-w", str(wheels),
         str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    output = build.stdout + build.stderr
    if build.returncode != 0 and any(words in output for words in NO_BUILD_REQUIREMENTS):
        pytest.skip(f"pip could not get the build requirements (offline?): {output[-2000:]}")
    assert build.returncode == 0, f"the build with -DMEMORYSTORE_SHM_UNSUPPORTED failed:\n{output[-8000:]}"
    (wheel,) = wheels.glob("memorystore-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)

    env = {key: value for key, value in os.environ.items() if not key.startswith("MEMORYSTORE_")}
    env["PYTHONPATH"] = str(site)
    run = subprocess.run(
        [sys.executable, "-c", CHECK, str(site)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, f"the forced build misbehaved:\n{run.stdout}\n{run.stderr}"
    assert "forced non-Linux build: OK" in run.stdout
