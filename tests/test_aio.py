"""AsyncMemoryStore: same results as the sync store, never blocks the loop, dispose off the loop."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import pytest

from memorystore.aio import AsyncMemoryStore, offload_dispose

WAIT = 5.0  # bound for waiting on a helper thread; never reached when the code is right


class RecordingSerializer:
    """json, noting which thread serialized."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def dumps(self, obj):
        self.threads.append(threading.get_ident())
        return json.dumps(obj)

    def loads(self, data):
        return json.loads(data)


def hold_lock(store):
    """Start a thread that holds the store's lock until the returned event is set."""
    held, release = threading.Event(), threading.Event()

    def holder():
        with store._lock:
            held.set()
            release.wait(WAIT)

    thread = threading.Thread(target=holder, daemon=True)
    thread.start()
    assert held.wait(WAIT)
    return release, thread


def test_results_match_the_sync_store(store_cls, fake_timer):
    sync = store_cls(ttl=60, max=3, timer=fake_timer)
    facade = AsyncMemoryStore(store_cls(ttl=60, max=3, timer=fake_timer))

    def run_sync():
        out = []
        sync.set("a", {"n": 1})
        out.append(sync.add("a", {"n": 2}))
        out.append(sync.add("b", [1, 2], ttl=10))
        sync.set("c", "x")
        sync.set("d", "y")  # evicts "a"
        out.append(sync.get("a"))
        out.append(sync.get("b"))
        out.append(sync.touch("c", ttl=100))
        out.append(sync.touch("zz"))
        out.append(sync.ids())
        out.append(sync.all())
        out.append(sync.length())
        fake_timer.advance(10)
        out.append(sync.prune())
        sync.destroy(["c", "nope"])
        out.append(sync.all())
        sync.clear()
        out.append(sync.length())
        return out

    async def run_async():
        out = []
        await facade.set("a", {"n": 1})
        out.append(await facade.add("a", {"n": 2}))
        out.append(await facade.add("b", [1, 2], ttl=10))
        await facade.set("c", "x")
        await facade.set("d", "y")
        out.append(await facade.get("a"))
        out.append(await facade.get("b"))
        out.append(await facade.touch("c", ttl=100))
        out.append(await facade.touch("zz"))
        out.append(await facade.ids())
        out.append(await facade.all())
        out.append(await facade.length())
        fake_timer.advance(10)
        out.append(await facade.prune())
        await facade.destroy(sid for sid in ["c", "nope"])
        out.append(await facade.all())
        await facade.clear()
        out.append(await facade.length())
        return out

    start = fake_timer.time
    expected = run_sync()
    fake_timer.time = start
    assert asyncio.run(run_async()) == expected
    assert expected[0] is False and expected[1] is True and expected[2] is None


def test_errors_propagate_like_the_sync_store(store_cls):
    facade = AsyncMemoryStore(store_cls())

    async def main():
        assert await facade.get("") is None  # a str no session can have: absent
        assert await facade.has("x" * 1025) is False
        assert await facade.touch("") is False
        await facade.destroy(["", "x" * 1025])
        with pytest.raises(TypeError):
            await facade.get(b"a")  # not a str: a TypeError, as in the sync store
        with pytest.raises(ValueError):
            await facade.set("", {})  # writes still refuse it
        with pytest.raises(TypeError):
            await facade.set("a", object())  # json cannot serialize it
        assert await facade.get("a") is None

    asyncio.run(main())


def test_uncontended_calls_run_in_the_loop_thread(store_cls):
    serializer = RecordingSerializer()
    facade = AsyncMemoryStore(store_cls(serializer=serializer))

    async def main():
        await facade.set("a", 1)
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert serializer.threads == [loop_thread]


def test_a_thread_holding_the_lock_does_not_block_the_loop(store_cls):
    # destroy takes the store lock (set and add are single atomic core operations and never wait)
    seen_in = []
    store = store_cls(dispose=lambda sid, session, reason: seen_in.append(threading.get_ident()))
    store.set("a", {"n": 1})
    facade = AsyncMemoryStore(store)
    release, holder = hold_lock(store)

    async def main():
        destroy = asyncio.create_task(facade.destroy("a"))
        ticks = 0
        for _ in range(50):  # the loop keeps running other coroutines
            await asyncio.sleep(0)
            ticks += 1
        still_waiting = not destroy.done()
        release.set()
        await asyncio.wait_for(destroy, WAIT)
        return ticks, still_waiting, threading.get_ident()

    ticks, still_waiting, loop_thread = asyncio.run(main())
    holder.join(WAIT)
    assert ticks == 50
    assert still_waiting  # the destroy waited for the lock, in another thread
    assert seen_in and seen_in[0] != loop_thread
    assert "a" not in store


def test_every_method_survives_a_held_lock(store_cls):
    store = store_cls()
    store.set("a", 1)
    facade = AsyncMemoryStore(store)
    release, holder = hold_lock(store)

    async def main():
        calls = [
            facade.get("a"),
            facade.has("a"),
            facade.touch("a", ttl=50),
            facade.add("b", 2),
            facade.ids(),
            facade.length(),
            facade.all(),
            facade.prune(),
        ]
        tasks = [asyncio.create_task(call) for call in calls]
        for _ in range(20):
            await asyncio.sleep(0)
        pending = sum(not task.done() for task in tasks)
        release.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
        return pending, results

    pending, results = asyncio.run(main())
    holder.join(WAIT)
    # the four that need the lock waited in threads (get/has/touch/add need only the core)
    assert pending >= 4
    assert results[:4] == [1, True, True, True]
    assert set(results[4]) <= {"a", "b"} and results[5] in (1, 2) and results[7] == 0
    assert sorted(store.ids()) == ["a", "b"]


def test_slow_dispose_runs_off_the_loop_thread(fake_timer):
    seen = []
    unblock, finished = threading.Event(), threading.Event()

    def slow_dispose(sid, session, reason):
        seen.append((sid, session, reason, threading.get_ident()))
        unblock.wait(WAIT)
        finished.set()

    facade = AsyncMemoryStore(ttl=10, dispose=slow_dispose, timer=fake_timer)

    async def main():
        await facade.set("a", {"n": 1})
        await facade.destroy("a")  # returns although dispose is still blocked
        returned_before_dispose_finished = not finished.is_set()
        unblock.set()
        assert await asyncio.to_thread(finished.wait, WAIT)
        finished.clear()
        await facade.set("b", [1])
        fake_timer.advance(10)
        assert await facade.get("b") is None
        assert await asyncio.to_thread(finished.wait, WAIT)
        return returned_before_dispose_finished, threading.get_ident()

    returned_early, loop_thread = asyncio.run(main())
    assert returned_early
    assert [(sid, session, reason) for sid, session, reason, _ in seen] == [
        ("a", {"n": 1}, "delete"),
        ("b", [1], "expire"),
    ]
    assert all(thread != loop_thread for *_, thread in seen)


def test_dispose_of_a_given_store_is_offloaded_too(store_cls):
    threads = []
    store = store_cls(dispose=lambda sid, session, reason: threads.append(threading.get_ident()))
    facade = AsyncMemoryStore(store)

    async def main():
        await facade.set("a", 1)
        await facade.destroy("a")
        for _ in range(200):
            if threads:
                break
            await asyncio.sleep(0.01)  # bounded wait for the executor thread
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert threads and threads[0] != loop_thread
    # outside a loop, the same store calls dispose inline, as before
    store.set("b", 2)
    store.destroy("b")
    assert threads[-1] == threading.get_ident()


def test_dispose_errors_are_logged(caplog):
    def broken(sid, session, reason):
        raise RuntimeError("boom")

    facade = AsyncMemoryStore(dispose=broken)

    async def main():
        await facade.set("a", 1)
        with caplog.at_level(logging.WARNING, logger="memorystore"):
            await facade.destroy("a")
            for _ in range(200):
                if caplog.records:
                    break
                await asyncio.sleep(0.01)

    asyncio.run(main())
    [record] = [r for r in caplog.records if r.name == "memorystore"]
    assert record.levelno >= logging.WARNING and record.exc_info[0] is RuntimeError


def test_offload_dispose_is_idempotent_and_inline_outside_a_loop():
    calls = []

    def dispose(sid, session, reason):
        calls.append(threading.get_ident())

    wrapped = offload_dispose(dispose)
    assert offload_dispose(wrapped) is wrapped
    wrapped("a", 1, "delete")
    assert calls == [threading.get_ident()]


def test_other_stores_always_run_in_a_thread():
    class DuckStore:
        """Stands for a network store (RedisStore): same methods, no MemoryStore lock."""

        def __init__(self) -> None:
            self.data: dict[str, object] = {}
            self.threads: list[int] = []

        def set(self, sid, session, ttl=None):
            self.threads.append(threading.get_ident())
            self.data[sid] = session

        def get(self, sid):
            self.threads.append(threading.get_ident())
            return self.data.get(sid)

    duck = DuckStore()
    facade = AsyncMemoryStore(duck)

    async def main():
        await facade.set("a", 1)
        assert await facade.get("a") == 1
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert len(duck.threads) == 2 and loop_thread not in duck.threads


def test_close_and_context_manager_stop_the_prune_thread(store_cls):
    store = store_cls(check_period=3600)
    assert store._thread is not None and store._thread.is_alive()
    thread = store._thread

    async def main():
        async with AsyncMemoryStore(store) as facade:
            await facade.set("a", 1)

    asyncio.run(main())
    assert not thread.is_alive()
    assert store.get("a") == 1  # the store stays usable


def test_store_and_options_are_exclusive(store_cls):
    with pytest.raises(TypeError):
        AsyncMemoryStore(store_cls(), ttl=5)
    with pytest.raises(ValueError):
        AsyncMemoryStore(max=0)
