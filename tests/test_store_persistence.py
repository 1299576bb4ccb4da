"""Snapshots: dump/load in memory, save/restore through a file."""

from __future__ import annotations

import json
import math
import os
import pickle
import stat
import time
from pathlib import Path

import pytest

import memorystore.store as store_module


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, sid, session, reason):
        self.calls.append((sid, session, reason))


@pytest.fixture
def wall(monkeypatch):
    """A controllable wall clock for save/restore (time.time as seen by the store module)."""

    class Wall:
        now = 1_700_000_000.0

        def __call__(self):
            return self.now

    clock = Wall()
    monkeypatch.setattr(store_module.time, "time", clock)
    return clock


# -- dump / load ------------------------------------------------------------------


def test_dump_lists_live_entries_lru_first_with_remaining(make, fake_timer):
    store = make()
    store.set("a", {"n": 1}, ttl=100)
    store.set("b", {"n": 2}, ttl=math.inf)
    store.set("gone", {"n": 3}, ttl=5)
    store.set("c", {"n": 4}, ttl=50)
    store.get("a")
    fake_timer.advance(5)
    assert store.dump() == [
        ("b", '{"n": 2}', math.inf),
        ("c", '{"n": 4}', 45.0),
        ("a", '{"n": 1}', 95.0),
    ]
    assert store.ids() == ["a", "c", "b"]  # dump changed nothing


def test_load_restores_values_deadlines_and_recency(make, fake_timer):
    source = make()
    source.set("a", {"n": 1}, ttl=100)
    source.set("b", {"n": 2}, ttl=math.inf)
    source.set("c", {"n": 3}, ttl=50)
    source.get("a")
    target = make(max=3)
    assert target.load(source.dump()) == 3
    assert target.ids() == source.ids() == ["a", "c", "b"]
    assert target.all() == source.all()
    assert target.core.remaining("c") == 50
    assert target.core.remaining("b") == math.inf
    target.set("d", {})  # evicts the least recently used: b
    assert "b" not in target


def test_load_skips_expired_and_accepts_none_as_never(make):
    store = make()
    count = store.load([("a", '"x"', 0), ("b", '"y"', -3), ("c", '"z"', None), ("d", '"w"', 10)])
    assert count == 2
    assert store.ids() == ["d", "c"]
    assert store.core.remaining("c") == math.inf


@pytest.mark.parametrize(
    ("entries", "error"),
    [
        ([("ok", '"v"', 10), ("", '"v"', 10)], ValueError),
        ([("ok", '"v"', 10), (b"sid", '"v"', 10)], TypeError),
        ([("ok", '"v"', 10), ("x", '"v"', "10")], TypeError),
        ([("ok", '"v"', 10), ("x", '"v"', float("nan"))], ValueError),
        ([("ok", '"v"', 10), ("x", '"v"')], TypeError),
        ([("ok", '"v"', 10), 5], TypeError),
    ],
)
def test_load_validates_everything_before_storing(make, entries, error):
    store = make()
    with pytest.raises(error):
        store.load(entries)
    assert len(store) == 0


def test_load_disposes_what_it_replaces_or_evicts(make):
    rec = Recorder()
    store = make(max=2, dispose=rec)
    store.set("a", {"old": True})
    store.load([("a", '{"new": true}', 10), ("b", "1", 10), ("c", "2", 10)])
    assert rec.calls == [("a", {"old": True}, "set"), ("a", {"new": True}, "evict")]


def test_load_applies_length(make):
    store = make(max=10, length=lambda value, sid: len(value))
    assert store.load([("a", '"12345678"', 10)]) == 1
    assert store.core.currsize == 10


# -- save / restore ---------------------------------------------------------------------


def test_save_and_restore_roundtrip_json(make, tmp_path, wall):
    source = make()
    source.set("a", {"n": 1}, ttl=100)
    source.set("b", {"n": 2}, ttl=math.inf)
    source.get("a")
    path = tmp_path / "sessions.json"
    assert source.save(path) == 2
    document = json.loads(path.read_text())
    assert document == {
        "version": 1,
        "saved_at": wall.now,
        "format": "text",
        "entries": [["b", '{"n": 2}', None], ["a", '{"n": 1}', 100.0]],
    }
    target = make()
    assert target.restore(str(path)) == 2
    assert target.ids() == ["a", "b"]
    assert target.get("a") == {"n": 1}
    assert target.core.remaining("b") == math.inf


def test_restore_subtracts_wall_time_elapsed(make, tmp_path, wall):
    source = make()
    source.set("short", 1, ttl=30)
    source.set("long", 2, ttl=100)
    source.set("forever", 3, ttl=math.inf)
    path = tmp_path / "s.json"
    source.save(path)
    wall.now += 40  # the process was down for 40 s
    target = make()
    assert target.restore(path) == 2
    assert "short" not in target
    assert target.core.remaining("long") == 60
    assert target.core.remaining("forever") == math.inf


def test_restore_with_wall_clock_gone_backwards_does_not_extend(make, tmp_path, wall):
    source = make()
    source.set("a", 1, ttl=30)
    path = tmp_path / "s.json"
    source.save(path)
    wall.now -= 1000
    target = make()
    target.restore(path)
    assert target.core.remaining("a") == 30


def test_save_bytes_values_as_base64_and_never_unpickles_on_restore(make, tmp_path, wall, monkeypatch):
    source = make(serializer=pickle)
    source.set("a", {"t": (1, 2)})
    path = tmp_path / "s.json"
    source.save(path)
    document = json.loads(path.read_text())
    assert document["format"] == "base64"
    assert isinstance(document["entries"][0][1], str)

    loaded = []
    real_loads = pickle.loads

    class Spy:
        dumps = staticmethod(pickle.dumps)

        @staticmethod
        def loads(data):
            loaded.append(data)
            return real_loads(data)

    target = make(serializer=Spy)
    assert target.restore(path) == 1
    assert loaded == []  # restore itself deserialized nothing
    assert target.core.peek("a") == source.core.peek("a")
    assert target.get("a") == {"t": (1, 2)}
    assert len(loaded) == 1


def test_save_serializer_none_needs_json_compatible_objects(make, tmp_path, wall):
    store = make(serializer=None)
    store.set("a", {"n": [1, 2], "s": "x"})
    path = tmp_path / "s.json"
    store.save(path)
    assert json.loads(path.read_text())["format"] == "json"
    target = make(serializer=None)
    assert target.restore(path) == 1
    assert target.get("a") == {"n": [1, 2], "s": "x"}

    store.set("bad", {"obj": object()})
    with pytest.raises(TypeError):
        store.save(tmp_path / "bad.json")
    circular = {}
    circular["me"] = circular
    store.destroy("bad")
    store.set("circ", circular)
    with pytest.raises(TypeError):
        store.save(tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temp files left


def test_restore_rejects_format_that_does_not_match_serializer(make, tmp_path, wall):
    json_store = make()
    json_store.set("a", {})
    path = tmp_path / "s.json"
    json_store.save(path)
    with pytest.raises(ValueError):
        make(serializer=None).restore(path)


def test_save_rejects_mixed_value_types(make, tmp_path):
    class Mixed:
        @staticmethod
        def dumps(obj):
            return obj

        @staticmethod
        def loads(data):
            return data

    store = make(serializer=Mixed)
    store.set("a", "text")
    store.set("b", b"bytes")
    with pytest.raises(TypeError):
        store.save(tmp_path / "s.json")


def test_save_is_atomic_and_private(make, tmp_path, wall, monkeypatch):
    store = make()
    store.set("a", {"v": 1})
    path = tmp_path / "s.json"
    store.save(path)
    before = path.read_text()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    def failing_replace(src, dst):
        raise OSError("disk full")

    store.set("b", {"v": 2})
    monkeypatch.setattr(store_module.os, "replace", failing_replace)
    with pytest.raises(OSError):
        store.save(path)
    assert path.read_text() == before  # the old snapshot is intact
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # the temp file was removed


def test_save_overwrites_and_accepts_str_path(make, tmp_path, wall):
    store = make()
    path = tmp_path / "s.json"
    store.set("a", 1)
    store.save(str(path))
    store.set("b", 2)
    store.save(path)
    assert [row[0] for row in json.loads(path.read_text())["entries"]] == ["a", "b"]


def test_restore_missing_file(make, tmp_path):
    with pytest.raises(FileNotFoundError):
        make().restore(tmp_path / "nope.json")


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"version": 2, "saved_at": 1, "format": "text", "entries": []}',
        '{"version": 1, "saved_at": "x", "format": "text", "entries": []}',
        '{"version": 1, "saved_at": 1, "format": "pickle", "entries": []}',
        '{"version": 1, "saved_at": 1, "format": "text", "entries": {}}',
        '{"version": 1, "saved_at": 1, "format": "text", "entries": [["a", "v"]]}',
        '{"version": 1, "saved_at": 1, "format": "text", "entries": [["a", 5, 10]]}',
        '{"version": 1, "saved_at": 1, "format": "base64", "entries": [["a", "@@@", 10]]}',
        '{"version": 1, "saved_at": 1, "format": "text", "entries": [["a", "v", "10"]]}',
    ],
)
def test_restore_rejects_malformed_files(make, tmp_path, content):
    path = tmp_path / "s.json"
    path.write_text(content)
    store = make()
    with pytest.raises(ValueError):
        store.restore(path)
    assert len(store) == 0


def test_restore_bad_sid_in_file_stores_nothing(make, tmp_path):
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            {"version": 1, "saved_at": time.time(), "format": "text", "entries": [["ok", "1", 100], ["", "2", 100]]}
        )
    )
    store = make()
    with pytest.raises(ValueError):
        store.restore(path)
    assert len(store) == 0


def test_snapshot_survives_a_new_process(store_cls, tmp_path):
    import subprocess
    import sys

    path = tmp_path / "s.json"
    store = store_cls()
    store.set("a", {"user": "ann"}, ttl=3600)
    store.save(path)
    core_module = store_cls._core_class.__module__
    script = (
        "import importlib, sys\n"
        "from memorystore.store import MemoryStore\n"
        f"core = importlib.import_module({core_module!r}).LRUCache\n"
        "S = type('S', (MemoryStore,), {'_core_class': core})\n"
        "s = S()\n"
        "print(s.restore(sys.argv[1]), s.get('a')['user'], 3500 < s.core.remaining('a') <= 3600)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "ann", "True"]


def test_pathlib_and_str_paths(make, tmp_path, wall):
    store = make()
    store.set("a", 1)
    assert store.save(Path(tmp_path) / "p.json") == 1
    assert make().restore(os.fspath(tmp_path / "p.json")) == 1
