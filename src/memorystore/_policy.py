"""The eviction policies, as every core reads them (compiled, pure, shared-memory).

``"lru"``: the least recently used entry goes first.  ``"protect"``: an entry
read (``get``, ``[]``, ``touch``) since it was created is *protected*; one
never read is on *probation*; an overwrite keeps the status.  Probation's least recently used entry goes
first while probation holds at least ``probation_reserve(maxsize)``, else
protected's least recently used one.  So a flood of one-shot entries only
pushes out other one-shot entries, and a new entry survives about
``reserve`` newer one-shot entries even when every other entry is protected
(long enough for a new user's second request).  Expired entries go before
any live entry under both policies.
"""

from __future__ import annotations

__all__ = ["POLICIES", "PROBATION_SHARE", "check_eviction", "probation_reserve"]

POLICIES = ("lru", "protect")

#: The part of ``maxsize`` kept for probation under ``"protect"``: chosen with
#: the flood benchmark (``python -m memorystore flood``; see the README).
PROBATION_SHARE = 0.1

# Sizes and bounds above this count as this in the compiled cores (so sums
# cannot overflow); the reserve is computed from the bound as they hold it.
_SIZE_CAP = 1 << 50


def check_eviction(eviction: object) -> str:
    """``eviction`` if it names a policy; ``TypeError``/``ValueError`` otherwise."""
    if type(eviction) is not str:
        raise TypeError(f"eviction must be 'lru' or 'protect', not {type(eviction).__name__}")
    if eviction not in POLICIES:
        raise ValueError(f"eviction must be 'lru' or 'protect', not {eviction!r}")
    return eviction


def probation_reserve(maxsize: int | None) -> int:
    """How much of ``maxsize`` probation keeps before protected entries are evicted (at least 1)."""
    if maxsize is None or maxsize < 0:
        return 1
    return max(1, int(min(maxsize, _SIZE_CAP - 1) * PROBATION_SHARE))
