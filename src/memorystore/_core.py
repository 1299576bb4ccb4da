"""Picks the LRUCache core: the compiled one, or the pure-Python twin.

One switch, ``MEMORYSTORE_NO_EXTENSIONS`` (any non-empty value), forces the
twin; it is read here at import time, by ``setup.py`` at build time and by the
test suite.  Off CPython the twin is always used.  Type checkers see the
compiled core's stub (``_lru.pyi``), the typed API of both cores.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

NO_EXTENSIONS = bool(os.environ.get("MEMORYSTORE_NO_EXTENSIONS")) or sys.implementation.name != "cpython"

if TYPE_CHECKING:
    from ._lru import LRUCache
elif NO_EXTENSIONS:
    from ._lru_py import LRUCache
else:
    try:
        from ._lru import LRUCache
    except ImportError:  # pragma: no cover - a build without the extension
        from ._lru_py import LRUCache

COMPILED: bool = LRUCache.__module__ == "memorystore._lru"

__all__ = ["COMPILED", "NO_EXTENSIONS", "LRUCache"]
