# The compiled core has exactly the API of its pure-Python twin.
from ._lru_py import LRUCache as LRUCache
