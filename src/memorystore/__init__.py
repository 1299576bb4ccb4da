"""memorystore: server-side sessions in process memory that never leak."""

from ._core import COMPILED, LRUCache
from ._version import __version__
from .shared import SharedMemoryStore
from .store import MemoryStore

__all__ = ["COMPILED", "LRUCache", "MemoryStore", "SharedMemoryStore", "__version__"]
