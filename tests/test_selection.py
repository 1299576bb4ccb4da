"""Which core is in use, and how ``MEMORYSTORE_NO_EXTENSIONS`` switches it.

Each check starts a fresh interpreter (the selection happens once, at import
time) from a directory outside the source tree, so it sees the installed
package exactly as a user does.  Tests that need the compiled core carry the
``c_extension`` marker: they are deselected when the suite runs with
``MEMORYSTORE_NO_EXTENSIONS`` set, and fail loudly otherwise, so a wheel
whose extension is missing or broken cannot pass as the pure twin.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import memorystore

ENV_VAR = "MEMORYSTORE_NO_EXTENSIONS"
COMPILED_MODULE = "memorystore._lru"
PURE_MODULE = "memorystore._lru_py"
ON_CPYTHON = sys.implementation.name == "cpython"
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))

# Printed as JSON by the child interpreter.
PROBE = """
import json, sys
import memorystore
from memorystore import _core
print(json.dumps({
    "compiled": memorystore.COMPILED,
    "module": memorystore.LRUCache.__module__,
    "no_extensions": _core.NO_EXTENSIONS,
    "compiled_imported": "memorystore._lru" in sys.modules,
    "same_class": memorystore.LRUCache is _core.LRUCache,
    "gil_enabled": sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True,
}))
"""


def child_env(no_extensions: str | None) -> dict[str, str]:
    """The current environment with the switch set to ``no_extensions`` (None = unset)."""
    env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "PYTHON_GIL")}
    if no_extensions is not None:
        env[ENV_VAR] = no_extensions
    return env


def run_python(args: list[str], no_extensions: str | None, cwd: Path) -> str:
    """Run ``python <args>`` in a fresh interpreter; return stdout, fail with stderr."""
    proc = subprocess.run(
        [sys.executable, *args],
        check=False,
        env=child_env(no_extensions),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"python {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
    return proc.stdout


def probe(no_extensions: str | None, cwd: Path) -> dict[str, object]:
    return json.loads(run_python(["-c", PROBE], no_extensions, cwd))


@pytest.mark.parametrize("value", ["1", "true", "yes", "0"])
def test_any_non_empty_value_selects_the_pure_core(value: str, tmp_path: Path) -> None:
    # "0" included on purpose: the contract is "any non-empty value".
    state = probe(value, tmp_path)
    assert state["no_extensions"] is True
    assert state["compiled"] is False
    assert state["module"] == PURE_MODULE
    assert state["same_class"] is True


def test_pure_selection_never_imports_the_extension(tmp_path: Path) -> None:
    assert probe("1", tmp_path)["compiled_imported"] is False


@pytest.mark.c_extension
@pytest.mark.skipif(not ON_CPYTHON, reason="the extension is only built for CPython")
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_compiled_core_is_used_when_not_switched_off(value: str | None, tmp_path: Path) -> None:
    state = probe(value, tmp_path)
    assert state["no_extensions"] is False
    assert state["module"] == COMPILED_MODULE, (
        f"{ENV_VAR} is unset on CPython but memorystore fell back to {state['module']}: "
        "the compiled extension is missing or failed to import "
        f"(python -c 'import {COMPILED_MODULE}' shows why)"
    )
    assert state["compiled"] is True
    assert state["same_class"] is True


@pytest.mark.c_extension
@pytest.mark.skipif(not ON_CPYTHON, reason="the extension is only built for CPython")
def test_compiled_core_is_a_binary_extension() -> None:
    import importlib.machinery

    import memorystore._lru as compiled

    assert compiled.__file__ is not None
    assert compiled.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), compiled.__file__


def test_in_process_flag_matches_the_class_in_use() -> None:
    assert memorystore.COMPILED is (memorystore.LRUCache.__module__ == COMPILED_MODULE)
    assert memorystore.LRUCache.__module__ in (COMPILED_MODULE, PURE_MODULE)


@pytest.mark.skipif(not FREE_THREADED, reason="needs a free-threaded (t) interpreter")
@pytest.mark.parametrize(
    "value", [pytest.param(None, id="compiled", marks=pytest.mark.c_extension), pytest.param("1", id="pure")]
)
def test_import_keeps_the_gil_disabled(value: str | None, tmp_path: Path) -> None:
    # A module without Py_mod_gil = Py_MOD_GIL_NOT_USED re-enables the GIL on import.
    assert probe(value, tmp_path)["gil_enabled"] is False


def test_version_is_single_sourced() -> None:
    assert importlib.metadata.version("memorystore") == memorystore.__version__


@pytest.mark.skipif(
    importlib.util.find_spec("memorystore.__main__") is None, reason="memorystore.__main__ not written yet"
)
@pytest.mark.parametrize(
    ("value", "core"),
    [
        pytest.param(None, "compiled", id="compiled", marks=pytest.mark.c_extension),
        pytest.param("1", "pure", id="pure"),
    ],
)
def test_info_command_reports_the_core_in_use(value: str | None, core: str, tmp_path: Path) -> None:
    out = run_python(["-m", "memorystore", "info"], value, tmp_path)
    assert f"core: {core}" in out, out
    assert memorystore.__version__ in out, out
