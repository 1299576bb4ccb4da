"""The rules a session store applies to its arguments: session ids, durations, ttls.

Shared by :class:`~memorystore.store.MemoryStore` and
:class:`~memorystore.redis.RedisStore`, so both read a ttl the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any, NoReturn

#: Longest session id accepted, in characters.
MAX_SID_LENGTH = 1024
#: Lifetime of a session with no ttl option and no cookie max age: one day.
DEFAULT_TTL = 86400.0


def bad_sid(sid: object) -> NoReturn:
    """Raise a write's error for a sid that failed the fast check (never echoes the sid itself)."""
    if type(sid) is not str:
        raise TypeError(f"sid must be a str (not a subclass), not {type(sid).__name__}")
    raise ValueError(f"sid must be 1 to {MAX_SID_LENGTH} characters long, got {len(sid)}")


def absent_sid(sid: object) -> None:
    """A read's check for a sid that failed the fast check: ``TypeError`` unless it is a ``str``.

    A ``str`` that no session can have (empty, or over ``MAX_SID_LENGTH``)
    returns normally and the read answers "absent": sids come from cookies,
    and a bad cookie must not crash a request.  Writes use :func:`bad_sid`.
    """
    if type(sid) is not str:
        raise TypeError(f"sid must be a str (not a subclass), not {type(sid).__name__}")


def to_seconds(value: object, what: str) -> float:
    """A duration as float seconds: int, float or timedelta; no bool, no NaN."""
    kind = type(value)
    if kind is float or kind is int:
        seconds = value
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or a timedelta, not {kind.__name__}")
    else:  # int/float subclasses
        seconds = value
    try:
        seconds = float(seconds)  # type: ignore[arg-type]
    except OverflowError:
        raise ValueError(f"{what} is too large") from None
    if seconds != seconds:
        raise ValueError(f"{what} must not be NaN")
    return seconds


def cookie_ttl(session: object) -> float:
    """The ttl from a session's cookie: ``max_age`` seconds, else ``maxAge`` ms, else one day.

    A max age that is missing, ``None``, not a number (a numeric string too)
    or NaN is ignored, as in the seed.
    """
    if type(session) is dict or isinstance(session, Mapping):
        cookie = session.get("cookie")
        if type(cookie) is dict or isinstance(cookie, Mapping):
            for name, scale in (("max_age", 1.0), ("maxAge", 0.001)):
                raw = cookie.get(name)
                if raw is None:
                    continue
                try:
                    seconds = to_seconds(raw, name)
                except (TypeError, ValueError):
                    continue
                return seconds * scale
    return DEFAULT_TTL


class TtlRule:
    """A store's ``ttl`` option: a constant, a callable ``ttl(sid, session)``, or ``None`` (the cookie rule)."""

    __slots__ = ("const", "func")

    def __init__(self, ttl: float | timedelta | Callable[[str, Any], float | timedelta] | None) -> None:
        self.const: float | None = None
        self.func: Callable[[str, Any], Any] | None = None
        if ttl is None:
            return
        if callable(ttl) and not isinstance(ttl, timedelta):
            self.func = ttl
            return
        value = to_seconds(ttl, "ttl")
        if value <= 0:
            raise ValueError("ttl must be > 0 (math.inf: never expires)")
        self.const = value

    def for_write(self, sid: str, session: Any, ttl: Any) -> float:
        """The lifetime of one write: the call's ttl, else the option, else the cookie rule."""
        if ttl is not None:
            return to_seconds(ttl, "ttl")
        if self.const is not None:
            return self.const
        if self.func is not None:
            return to_seconds(self.func(sid, session), "ttl returned by the ttl callable")
        return cookie_ttl(session)


def sid_batch(sids: str | Iterable[str]) -> list[str]:
    """``destroy()``'s argument as a list of the sids to remove, every one checked before any is used.

    A ``str`` is one sid (a ``str`` subclass is a bad sid, not an iterable of
    characters).  A sid that is not exactly ``str`` raises ``TypeError``; a
    ``str`` no session can have (empty, over-long) is left out: it names
    nothing to remove.
    """
    if isinstance(sids, str):
        if type(sids) is not str or not 0 < len(sids) <= MAX_SID_LENGTH:
            absent_sid(sids)
            return []
        return [sids]
    try:
        batch = list(sids)
    except TypeError:
        raise TypeError(f"destroy() takes a sid or an iterable of sids, not {type(sids).__name__}") from None
    unusable = 0
    for sid in batch:
        if type(sid) is not str or not 0 < len(sid) <= MAX_SID_LENGTH:
            absent_sid(sid)
            unusable += 1
    if unusable:
        batch = [sid for sid in batch if 0 < len(sid) <= MAX_SID_LENGTH]
    return batch
