"""The typed API of ``memorystore.LRUCache`` (the stub ``_lru.pyi``), held to the runtime API of both cores.

Type checkers read the stub whichever core runs, so it must name exactly the
methods the cores have, with their parameters; and a typed cache must give
typed reads (mypy, run on a small file, when it is installed: the test extra
installs it).
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import memorystore

STUB = Path(memorystore.__file__).with_name("_lru.pyi")
# Dunders the stub must declare because they are part of the mapping API.
MAPPING_DUNDERS = {"__init__", "__getitem__", "__setitem__", "__delitem__", "__contains__", "__len__", "__iter__"}


def stub_methods() -> dict[str, list[list[str]]]:
    """Method name -> the parameter names of each of its declarations (overloads), from the stub."""
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    [cls] = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "LRUCache"]
    methods: dict[str, list[list[str]]] = {}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef):
            args = node.args
            names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)][1:]  # without self
            methods.setdefault(node.name, []).append(names)
    return methods


def runtime_methods(cls: type) -> set[str]:
    public = {name for name in dir(cls) if not name.startswith("_")}
    return public | {name for name in MAPPING_DUNDERS if name in vars(cls)}


def test_the_stub_names_every_method_of_both_cores_and_nothing_else(lru_impl: ModuleType) -> None:
    stub = set(stub_methods())
    runtime = runtime_methods(lru_impl.LRUCache)
    assert runtime - stub == set(), "methods missing from _lru.pyi"
    assert {name for name in stub if not name.startswith("_")} - runtime == set(), "stub methods no core has"
    assert MAPPING_DUNDERS <= stub


def test_the_stub_has_the_parameters_of_the_pure_core() -> None:
    """The pure twin is annotated Python: its signatures are the reference (the compiled one matches it)."""
    from memorystore._lru_py import LRUCache

    for name, declarations in stub_methods().items():
        attribute = inspect.getattr_static(LRUCache, name)
        if isinstance(attribute, property) or name == "__reduce_ex__":
            continue
        runtime = [p for p in inspect.signature(getattr(LRUCache, name)).parameters][1:]
        longest = max(declarations, key=len)  # the overload that takes every parameter
        assert longest == runtime, name
        assert all(names == runtime[: len(names)] for names in declarations), name


TYPED_USE = """
from collections.abc import Sequence
from typing import Literal, assert_type

from memorystore import LRUCache
from memorystore._stats import CacheStats

Reason = Literal["set", "expire", "evict", "reject"]
cache: LRUCache[str, bytes] = LRUCache(maxsize=10, ttl=60, eviction="protect")
assert_type(cache.get("k"), bytes | None)
assert_type(cache.get("k", 0), bytes | int)
assert_type(cache.peek("k"), bytes | None)
assert_type(cache.peek("k", b""), bytes)
assert_type(cache["k"], bytes)
assert_type(cache.pop("k"), bytes)
assert_type(cache.pop("k", None), bytes | None)
assert_type(cache.put("k", b"v"), Sequence[tuple[str, bytes, Reason]])
assert_type(cache.put("k", b"v", 5, 1, True), Sequence[tuple[str, bytes, Reason]] | None)
assert_type(cache.items(), list[tuple[str, bytes]])
assert_type(cache.expire(), list[tuple[str, bytes]])
assert_type(cache.touch("k"), bool)
assert_type(cache.stats(), CacheStats)
assert_type(cache.stats().evicted_unread, int)
"""

MISTYPED_USE = """
from memorystore import LRUCache

cache: LRUCache[str, bytes] = LRUCache()
cache.set("k", 123)
cache.put(1, b"v")
LRUCache(eviction="fifo")
"""


def run_mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy", reason="mypy is not installed (the test extra installs it)")
    path = tmp_path / "use.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"), path],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )


def test_a_typed_cache_gives_typed_reads(tmp_path: Path) -> None:
    result = run_mypy(tmp_path, TYPED_USE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_typed_cache_refuses_the_wrong_types(tmp_path: Path) -> None:
    result = run_mypy(tmp_path, MISTYPED_USE)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'Argument 2 to "set" of "LRUCache" has incompatible type "int"; expected "bytes"' in result.stdout
    assert 'No overload variant of "put" of "LRUCache" matches argument types "int", "bytes"' in result.stdout
    assert 'Argument "eviction" to "LRUCache" has incompatible type' in result.stdout
