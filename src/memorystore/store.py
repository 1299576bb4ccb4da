"""MemoryStore: placeholder until the store lands."""


class MemoryStore:  # pragma: no cover - replaced by the real store
    pass
