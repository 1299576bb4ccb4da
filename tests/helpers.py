"""Small helpers shared by test modules (tests/ is on sys.path under pytest's default import mode)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> bool:
    """Poll a condition (for a background thread); True when it held within the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


class CountingJSON:
    """A json serializer that counts its dumps calls (to see whether a session was rewritten)."""

    def __init__(self) -> None:
        self.dumps_calls = 0

    def dumps(self, obj: Any) -> str:
        self.dumps_calls += 1
        return json.dumps(obj)

    def loads(self, data: str) -> Any:
        return json.loads(data)
