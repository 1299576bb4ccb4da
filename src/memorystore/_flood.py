"""``python -m memorystore flood``: the eviction policies under a flood of new sessions.

A store bounded by ``max`` evicts when it is full, and a crawler or a script
that creates sessions (any form with a CSRF token in the session does) fills
it.  This benchmark drives the real :class:`~memorystore.MemoryStore` (json
serializer, the core in use) on a fake clock through a workload of three
kinds of clients, for a store of capacity C:

* established users (``0.3 x C``), requesting forever with exponential gaps
  (mean 60 s);
* new visitors arriving steadily (``C / 10,000`` a second), each making a
  geometric number of requests (mean 8) with exponential gaps (mean 20 s);
  one in eight never comes back;
* from flood start, ``k x C`` one-shot sessions spread evenly over 60 s
  (fast) or 30 minutes (a slow crawler); k in 0, 0.5, 1, 2, 5, 10.

Every request reads its session (``get``); a request that finds nothing
means its client was logged out, and it gets a new session (``set``), as a
visitor's first request does.  Sessions live a day (no TTL pressure).  The
store runs 12,000 s before the flood, so it is full and steady (holding the
sessions of visitors who have left), and 10 minutes after it.

Figures, each over the clients that come back (a loss nobody notices is
not counted):

E        established users never logged out from flood start to their
         first request after the flood;
R        the same for visitors whose session was under 5 minutes old and
         already used (2 requests or more) at flood start;
R*       the same for every visitor whose session was under 5 minutes old
         at flood start, also those not used yet (those fare as N does);
N        visitors arriving during the flood whose second request found
         their session;
N model  1 - exp(-room / (F * g)): F the flood's insert rate, g the mean
         gap to a second request, room what the flood can cycle through:
         C for "lru", probation for "protect" (C minus the protected
         sessions at flood start, at least the reserve).  No eviction
         policy does better for sessions born in a flood (they look like
         the flood until their second request); admission controls do:
         store nothing until a session holds data, quotas per client;
found    the share of all returning requests from flood start to the end
         that found their session (with k = 0: the policies' hit ratios).
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import itertools
import json
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from . import _policy
from .store import MemoryStore

__all__ = ["FLOODS", "MULTIPLES", "Result", "Workload", "main", "run", "simulate"]

#: The flood sizes, as multiples of the capacity.
MULTIPLES: tuple[float, ...] = (0, 0.5, 1, 2, 5, 10)
#: The flood speeds: (name, seconds the flood lasts).
FLOODS: tuple[tuple[str, float], ...] = (("fast", 60.0), ("slow", 1800.0))
POLICIES: tuple[str, ...] = ("lru", "protect")


@dataclass(frozen=True)
class Workload:
    """The clients around a store of ``capacity`` sessions (see the module docstring)."""

    capacity: int = 10_000
    users_share: float = 0.3  # established users, as a share of the capacity
    user_gap: float = 60.0  # mean seconds between an established user's requests
    visitor_rate: float | None = None  # new visitors a second; None: capacity / 10,000
    visitor_requests: float = 8.0  # mean requests per visitor (geometric)
    visitor_gap: float = 20.0  # mean seconds between a visitor's requests
    warmup: float = 12_000.0  # seconds before the flood
    recent: float = 300.0  # "recent" sessions are younger than this at flood start
    after: float = 600.0  # seconds after the flood
    ttl: float = 86_400.0

    @property
    def arrivals(self) -> float:
        return self.capacity / 10_000 if self.visitor_rate is None else self.visitor_rate


@dataclass
class Result:
    """The figures of one run (shares in [0, 1]; None where nobody was counted)."""

    policy: str
    speed: str
    k: float
    E: float | None
    R: float | None
    R_all: float | None
    N: float | None
    N_model: float
    found: float
    counted: dict[str, int] = field(default_factory=dict)  # population sizes: E, R, R_all, N
    stats: dict[str, Any] = field(default_factory=dict)  # the store's stats() at the end
    seconds: float = 0.0  # wall time of the run


class _Clock:
    def __init__(self) -> None:
        self.time = 0.0

    def __call__(self) -> float:
        return self.time


class _Client:
    """An established user or a visitor."""

    __slots__ = ("born", "left", "lost", "reads", "sid", "watch")

    def __init__(self, sid: str, born: float, left: int) -> None:
        self.sid = sid
        self.born = born  # when its current session was created
        self.left = left  # requests still to come (-1: forever)
        self.reads = 0  # requests that found the current session
        self.watch = 0  # 1: in E or R, watched until its first request after the flood; 2: done
        self.lost = False


# Event kinds, in the order ties are broken.
_USER, _VISITOR, _ARRIVAL, _BOT = 0, 1, 2, 3
_SESSION = {"csrf_token": "x" * 43, "cart": []}  # what a fresh session holds


def simulate(
    policy: str,
    k: float,
    duration: float,
    workload: Workload,
    seed: int = 1,
    speed: str = "",
    store_class: type = MemoryStore,
) -> Result:
    """One run: the store under ``policy``, a flood of ``k x capacity`` sessions over ``duration`` seconds."""
    started = time.perf_counter()
    rng = random.Random(seed)
    expovariate, rand = rng.expovariate, rng.random
    clock = _Clock()
    capacity = workload.capacity
    store = store_class(max=capacity, ttl=workload.ttl, eviction=policy, timer=clock)
    get, put = store.get, store.set
    serial = itertools.count()
    events: list[tuple[float, int, int, Any]] = []
    push, pop = heapq.heappush, heapq.heappop
    ticket = itertools.count()
    read_sids: set[str] = set()  # sessions read at least once
    flood_start = workload.warmup
    flood_end = flood_start + duration
    end = flood_end + workload.after
    bots = round(k * capacity)
    bot_gap = duration / bots if bots else 0.0
    stop_after = 1.0 - 1.0 / workload.visitor_requests  # geometric: P(another request)

    def new_session(client: _Client, now: float) -> None:
        client.sid = f"s{next(serial)}"
        client.born = now
        client.reads = 0
        put(client.sid, _SESSION)

    users = []
    for _ in range(round(workload.users_share * capacity)):
        user = _Client("", 0.0, -1)
        new_session(user, 0.0)
        users.append(user)
        push(events, (expovariate(1 / workload.user_gap), next(ticket), _USER, user))
    push(events, (expovariate(workload.arrivals), next(ticket), _ARRIVAL, None))
    if bots:
        push(events, (flood_start, next(ticket), _BOT, 0))

    watched: dict[str, list[_Client]] = {"E": [], "R": [], "R_all": []}
    newcomers: list[_Client] = []  # visitors arriving during the flood, watched to their 2nd request
    second: list[bool] = []  # did their second request find the session
    requests = found = 0
    snapshot_taken = False
    protected_at_start = 0

    while events:
        now, _, kind, who = pop(events)
        if now > end:
            break
        if not snapshot_taken and now >= flood_start:
            snapshot_taken = True
            clock.time = flood_start
            held = set(store.ids())
            protected_at_start = len(held & read_sids)
            for user in users:
                if user.reads >= 2 and user.sid in held:
                    user.watch = 1
                    watched["E"].append(user)
            for client in _pending_visitors(events):
                if client.sid in held and client.born >= flood_start - workload.recent and client.left:
                    client.watch = 1
                    watched["R_all"].append(client)
                    if client.reads >= 1:  # created, then read at least once: used
                        watched["R"].append(client)
        clock.time = now
        if kind == _BOT:
            put(f"b{who}", _SESSION)
            if who + 1 < bots:
                push(events, (flood_start + (who + 1) * bot_gap, next(ticket), _BOT, who + 1))
            continue
        if kind == _ARRIVAL:
            visitor = _Client("", now, 0)
            while rand() < stop_after:
                visitor.left += 1
            new_session(visitor, now)
            if visitor.left:
                push(events, (now + expovariate(1 / workload.visitor_gap), next(ticket), _VISITOR, visitor))
                if flood_start <= now < flood_end:
                    newcomers.append(visitor)
                    visitor.watch = 3  # 3: its second request is counted for N
            push(events, (now + expovariate(workload.arrivals), next(ticket), _ARRIVAL, None))
            continue
        client = who
        hit = get(client.sid) is not None
        if now >= flood_start:
            requests += 1
            found += hit
        if client.watch == 1:
            if not hit:
                client.lost = True
                client.watch = 2
            elif now >= flood_end:
                client.watch = 2
        elif client.watch == 3:
            second.append(hit)
            client.watch = 0
        if hit:
            client.reads += 1
            read_sids.add(client.sid)
        else:
            new_session(client, now)
        if kind == _USER:
            push(events, (now + expovariate(1 / workload.user_gap), next(ticket), _USER, client))
        else:
            client.left -= 1
            if client.left:
                push(events, (now + expovariate(1 / workload.visitor_gap), next(ticket), _VISITOR, client))

    def share(clients: list[_Client]) -> float | None:
        return (sum(not c.lost for c in clients) / len(clients)) if clients else None

    if policy == "protect":
        room = max(capacity - protected_at_start, _policy.probation_reserve(capacity))
    else:
        room = capacity
    rate = bots / duration if bots else 0.0
    n_model = 1.0 if rate == 0 else 1.0 - math.exp(-room / (rate * workload.visitor_gap))
    stats = store.stats()._asdict()
    store.close()
    return Result(
        policy=policy,
        speed=speed,
        k=k,
        E=share(watched["E"]),
        R=share(watched["R"]),
        R_all=share(watched["R_all"]),
        N=(sum(second) / len(second)) if second else None,
        N_model=n_model,
        found=found / requests if requests else 1.0,
        counted={
            "E": len(watched["E"]),
            "R": len(watched["R"]),
            "R_all": len(watched["R_all"]),
            "N": len(second),
            "requests": requests,
            "not_found": requests - found,
        },
        stats=stats,
        seconds=time.perf_counter() - started,
    )


def _pending_visitors(events: list[tuple[float, int, int, Any]]) -> Iterator[_Client]:
    # Visitors with a request still to come, from the event queue.
    for _, _, kind, who in events:
        if kind == _VISITOR:
            yield who


@contextlib.contextmanager
def probation_share(share: float | None) -> Iterator[None]:
    """Run with another ``PROBATION_SHARE`` (read when a store is created); for the split sweep only."""
    if share is None:
        yield
        return
    saved = _policy.PROBATION_SHARE
    _policy.PROBATION_SHARE = share
    try:
        yield
    finally:
        _policy.PROBATION_SHARE = saved


def run(
    workload: Workload,
    *,
    multiples: Sequence[float] = MULTIPLES,
    floods: Sequence[tuple[str, float]] = FLOODS,
    policies: Sequence[str] = POLICIES,
    seed: int = 1,
    progress: TextIO | None = None,
) -> list[Result]:
    """Every (policy, flood speed, k) run; k = 0 (no flood) once per policy, listed under each speed."""
    results = []
    longest = max(duration for _, duration in floods)
    for policy in policies:
        control = None
        for speed, duration in floods:
            for k in multiples:
                if k == 0 and control is not None:
                    results.append(Result(**{**asdict(control), "speed": speed}))
                    continue
                if progress is not None:
                    print(f"  {policy:8} {speed} k={k:g} ...", end="", file=progress, flush=True)
                # k = 0: no flood, measured over the longest flood's window (more requests counted)
                result = simulate(policy, k, longest if k == 0 else duration, workload, seed, speed)
                if progress is not None:
                    print(f" {result.seconds:.1f} s", file=progress, flush=True)
                if k == 0:
                    control = result
                results.append(result)
    return results


def _pct(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 1:
        return "100%"
    if value >= 0.99995:
        return ">99.99%"
    if value >= 0.99:
        return f"{100 * value:.2f}%"
    return f"{100 * value:.1f}%"


def table(results: Sequence[Result]) -> str:
    """The results as a markdown table: lru and protect side by side per (speed, k)."""
    by_key = {(r.policy, r.speed, r.k): r for r in results}
    rows = [
        "| flood | k | E lru | E protect | R lru | R protect | R* lru | R* protect "
        "| N lru | N protect | N model lru / protect | found lru | found protect |",
        "|---|---|" + "---|" * 11,
    ]
    speeds = list(dict.fromkeys(r.speed for r in results))
    multiples = sorted(dict.fromkeys(r.k for r in results))
    for speed in speeds:
        for k in multiples:
            lru, protect = by_key.get(("lru", speed, k)), by_key.get(("protect", speed, k))
            if lru is None or protect is None:
                continue
            rows.append(
                f"| {speed if k else 'none'} | {k:g} | {_pct(lru.E)} | {_pct(protect.E)} | {_pct(lru.R)} "
                f"| {_pct(protect.R)} | {_pct(lru.R_all)} | {_pct(protect.R_all)} | {_pct(lru.N)} "
                f"| {_pct(protect.N)} | {_pct(lru.N_model)} / {_pct(protect.N_model)} "
                f"| {_pct(lru.found)} | {_pct(protect.found)} |"
            )
    return "\n".join(rows)


def plot(results: Sequence[Result], path: str) -> None:
    """E, R and N against k: one panel each, both policies, both flood speeds (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speeds = list(dict.fromkeys(r.speed for r in results))
    multiples = sorted(dict.fromkeys(r.k for r in results))
    metrics = (("E", "E: established users"), ("R", "R: recent, used sessions"), ("N", "N: born in the flood"))
    colors = {"protect": "tab:green", "lru": "tab:orange"}
    styles = {"fast": ("-", "o"), "slow": (":", "s")}
    positions = list(range(len(multiples)))
    figure, axes = plt.subplots(1, len(metrics), figsize=(15, 4.3), sharey=True)
    for axis, (metric, title) in zip(axes, metrics):
        for policy, color in colors.items():
            for speed in speeds:
                rows = {r.k: r for r in results if r.policy == policy and r.speed == speed}
                values = [getattr(rows[k], metric) if k in rows else None for k in multiples]
                line, marker = styles.get(speed, ("--", "^"))
                duration = dict(FLOODS).get(speed)
                axis.plot(
                    positions,
                    [math.nan if v is None else 100 * v for v in values],
                    line,
                    marker=marker,
                    color=color,
                    label=f"{policy}, {speed}" + (f" ({duration / 60:g} min)" if duration else ""),
                )
        axis.set_title(title)
        axis.set_xticks(positions, [f"{k:g}" for k in multiples])
        axis.set_xlabel("flood: k x capacity new sessions")
        axis.set_ylim(-3, 103)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("% whose session survived")
    axes[0].legend(loc="lower left", fontsize=8)
    figure.suptitle('memorystore flood benchmark: eviction="protect" vs "lru"')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def sweep(workload: Workload, shares: Sequence[float], seed: int = 1, progress: TextIO | None = None) -> str:
    """The split: protect's figures for several PROBATION_SHARE values, with lru's for reference."""
    columns = [("none", 0.0, 1800.0), ("fast", 1.0, 60.0), ("fast", 10.0, 60.0), ("slow", 3.0, 1800.0)]
    rows = [
        "| policy | share | found k=0 (not found) | E fast k=10 | R fast k=10 | R* fast k=10 "
        "| N fast k=1 | N fast k=10 | N slow k=3 | E slow k=3 |",
        "|---|---|" + "---|" * 8,
    ]
    for policy, share in [("lru", None), *(("protect", s) for s in shares)]:
        figures: dict[tuple[str, float], Result] = {}
        with probation_share(share):
            for speed, k, duration in columns:
                if progress is not None:
                    print(f"  {policy} share={share} {speed} k={k:g} ...", end="", file=progress, flush=True)
                figures[(speed, k)] = simulate(policy, k, duration, workload, seed, speed)
                if progress is not None:
                    print(f" {figures[(speed, k)].seconds:.1f} s", file=progress, flush=True)
        rows.append(
            f"| {policy} | {'-' if share is None else f'{share:g}'} "
            f"| {_pct(figures[('none', 0.0)].found)} ({figures[('none', 0.0)].counted['not_found']}) "
            f"| {_pct(figures[('fast', 10.0)].E)} | {_pct(figures[('fast', 10.0)].R)} "
            f"| {_pct(figures[('fast', 10.0)].R_all)} | {_pct(figures[('fast', 1.0)].N)} "
            f"| {_pct(figures[('fast', 10.0)].N)} | {_pct(figures[('slow', 3.0)].N)} "
            f"| {_pct(figures[('slow', 3.0)].E)} |"
        )
    return "\n".join(rows)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m memorystore flood",
        description="The eviction policies (lru, protect) under floods of new sessions, on a fake clock.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument("--capacity", type=_positive_int, default=10_000, help="the store's max (default 10000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--users", type=float, default=0.3, metavar="SHARE", help="established users, as a share of the capacity (0.3)"
    )
    parser.add_argument("--plot", metavar="FILE.png", help="write a plot of E, R and N (needs matplotlib)")
    parser.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    parser.add_argument(
        "--sweep",
        metavar="SHARES",
        help="instead: protect with these comma-separated PROBATION_SHARE values (the split), lru for reference",
    )
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 10:
        raise argparse.ArgumentTypeError("capacity must be >= 10")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the flood benchmark; print a markdown table."""
    options = _parser().parse_args(argv)
    if options.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("--plot needs matplotlib: pip install 'memorystore[plot]'", file=sys.stderr)
            return 2
    if not 0 <= options.users < 1:
        print("--users must be in [0, 1)", file=sys.stderr)
        return 2
    workload = Workload(capacity=options.capacity, users_share=options.users)
    from . import COMPILED

    print(
        f"flood benchmark: capacity {workload.capacity}, {round(workload.users_share * workload.capacity)} "
        f"established users, {workload.arrivals:g} new visitors/s, core {'compiled' if COMPILED else 'pure'}, "
        f"seed {options.seed}, PROBATION_SHARE {_policy.PROBATION_SHARE:g}",
        file=sys.stderr,
    )
    if options.sweep:
        shares = [float(part) for part in options.sweep.split(",") if part.strip()]
        print(sweep(workload, shares, options.seed, progress=sys.stderr))
        return 0
    results = run(workload, seed=options.seed, progress=sys.stderr)
    print(table(results))
    if options.json:
        with open(options.json, "w", encoding="utf-8") as handle:
            json.dump({"workload": asdict(workload), "results": [asdict(r) for r in results]}, handle, indent=1)
    if options.plot:
        plot(results, options.plot)
        print(f"plot written to {options.plot}", file=sys.stderr)
    return 0
