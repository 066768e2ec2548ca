"""Simulated agents: the calls of producer/histories.py made on Publishers from N threads (one
shared Publisher, as in one agent process) or N processes (one each), at a given rate.
"""

from __future__ import annotations

import multiprocessing
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from producer.histories import EVENT_TYPE_OF, Call, agent_calls
from producer.publisher import Publisher
from producer.settings import ProducerSettings

#: Seconds of simulated history before now that a simulation begins with, by default.
DEFAULT_BACKFILL = 3600.0


@dataclass
class Totals:
    events: int = 0
    sessions: int = 0
    stats: dict[str, int] = field(default_factory=dict)
    delivered: bool = True  # every event reached Redis when the publishers closed (none spooled)

    def merge(self, other: Totals) -> None:
        self.events += other.events
        self.sessions += other.sessions
        self.delivered = self.delivered and other.delivered
        for name, value in other.stats.items():
            if isinstance(value, int):
                self.stats[name] = self.stats.get(name, 0) + value


def drive(
    publisher: Publisher,
    calls: Iterator[Call],
    rate: float = 0.0,
    progress: Callable[[int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> Totals:
    """Make the calls on ``publisher`` at ``rate`` events/s (0: as fast as the sender keeps up:
    a simulation waits for the queue rather than overflow it). A call whose ``occurred_at`` is
    still in the future waits for it (the simulation has caught up with the present and runs in
    real time), unless ``stop()`` is true: then what is left goes at once, stamped now."""
    totals = Totals()
    started = time.monotonic()
    pending = 0
    check_every = 256 if rate <= 0 or rate > 2560 else max(1, int(rate / 10))
    high_water = publisher.settings.queue_size // 2
    for method, kwargs in calls:
        at = kwargs.get("occurred_at")
        if at is not None:
            ahead = (at - datetime.now(UTC)).total_seconds()
            while ahead > 0 and not (stop is not None and stop()):
                time.sleep(min(ahead, 0.5))
                ahead = (at - datetime.now(UTC)).total_seconds()
            if ahead > 0:
                kwargs = {**kwargs, "occurred_at": datetime.now(UTC)}
        getattr(publisher, method)(**kwargs)
        if method == "session_completed":
            totals.sessions += 1
        if method in EVENT_TYPE_OF:
            totals.events += 1
            pending += 1
            if pending >= check_every:
                if progress:
                    progress(pending)
                pending = 0
                while publisher.queued > high_water:
                    time.sleep(0.001)
                if rate > 0:
                    ahead = started + totals.events / rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
    if progress and pending:
        progress(pending)
    return totals


def _agent(
    settings: ProducerSettings,
    seed: int,
    sessions: int,
    rate: float,
    deadline: float | None,
    publisher: Publisher | None,
    progress: Callable[[int], None] | None,
    start: datetime | None,
) -> Totals:
    own = publisher is None
    pub = publisher or Publisher(settings)

    def stop() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    try:
        calls = agent_calls(random.Random(seed), sessions, stop=stop, start=start)
        return drive(pub, calls, rate, progress, stop)
    finally:
        if own:
            pub.close(30)


def _process_main(
    settings: ProducerSettings,
    seed: int,
    sessions: int,
    rate: float,
    duration: float | None,
    counter: Any,
    results: Any,
    start: datetime | None,
) -> None:
    deadline = time.monotonic() + duration if duration else None

    def progress(n: int) -> None:
        with counter.get_lock():
            counter.value += n

    pub = Publisher(settings)
    totals = _agent(settings, seed, sessions, rate, deadline, pub, progress, start)
    totals.delivered = pub.close(30)
    totals.stats = {k: v for k, v in pub.stats().items() if isinstance(v, int)}
    results.put(totals)


def run(
    settings: ProducerSettings,
    agents: int,
    sessions: int,
    rate: float = 0.0,
    duration: float | None = None,
    seed: int | None = None,
    processes: bool = False,
    progress: Callable[[int], None] | None = None,
    backfill: float | None = DEFAULT_BACKFILL,
) -> Totals:
    """Run ``agents`` simulated agents of ``sessions`` sessions each, ``rate`` events/s in total
    (0: unlimited), starting sessions for at most ``duration`` seconds. Threads share one
    Publisher (one agent process); processes have one each.

    The histories begin ``backfill`` seconds ago, each event with its simulated time; they are
    sent as fast as ``rate`` allows and, once they reach the present, in real time (0: in real
    time from now). None: every event is stamped when it is sent (durations shrink to the time
    between calls; what a latency benchmark needs)."""
    seed = random.randrange(2**32) if seed is None else seed
    per_agent = rate / agents if rate > 0 else 0.0
    start = None if backfill is None else datetime.now(UTC) - timedelta(seconds=backfill)
    if processes:
        return _run_processes(settings, agents, sessions, per_agent, duration, seed, progress, start)
    deadline = time.monotonic() + duration if duration else None
    pub = Publisher(settings)
    totals = Totals()
    lock = threading.Lock()

    def agent(index: int) -> None:
        result = _agent(settings, seed + index, sessions, per_agent, deadline, pub, progress, start)
        with lock:
            totals.merge(result)

    threads = [threading.Thread(target=agent, args=(i,), name=f"agent-{i}") for i in range(agents)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    totals.delivered = pub.close(30)
    totals.stats = {k: v for k, v in pub.stats().items() if isinstance(v, int)}
    return totals


def _run_processes(
    settings: ProducerSettings,
    agents: int,
    sessions: int,
    rate: float,
    duration: float | None,
    seed: int,
    progress: Callable[[int], None] | None,
    start: datetime | None,
) -> Totals:
    context = multiprocessing.get_context("spawn")
    counter = context.Value("q", 0)
    results = context.Queue()
    children = [
        context.Process(
            target=_process_main,
            args=(settings, seed + i, sessions, rate, duration, counter, results, start),
        )
        for i in range(agents)
    ]
    for child in children:
        child.start()
    totals, reported, done = Totals(), 0, 0
    while done < agents:
        try:
            totals.merge(results.get(timeout=0.2))
            done += 1
        except queue.Empty:
            if all(not c.is_alive() for c in children) and results.empty():
                break
        if progress:
            value = counter.value
            progress(value - reported)
            reported = value
    for child in children:
        child.join()
    if progress:
        progress(counter.value - reported)
    return totals
