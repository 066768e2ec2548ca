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
from typing import Any

from producer.histories import EVENT_TYPE_OF, Call, agent_calls
from producer.publisher import Publisher
from producer.settings import ProducerSettings


@dataclass
class Totals:
    events: int = 0
    sessions: int = 0
    stats: dict[str, int] = field(default_factory=dict)

    def merge(self, other: Totals) -> None:
        self.events += other.events
        self.sessions += other.sessions
        for name, value in other.stats.items():
            if isinstance(value, int):
                self.stats[name] = self.stats.get(name, 0) + value


def drive(
    publisher: Publisher,
    calls: Iterator[Call],
    rate: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> Totals:
    """Make the calls on ``publisher`` at ``rate`` events/s (0: as fast as the sender keeps up:
    a simulation waits for the queue rather than overflow it)."""
    totals = Totals()
    started = time.monotonic()
    pending = 0
    high_water = publisher.settings.queue_size // 2
    for method, kwargs in calls:
        getattr(publisher, method)(**kwargs)
        if method == "session_completed":
            totals.sessions += 1
        if method in EVENT_TYPE_OF:
            totals.events += 1
            pending += 1
            if pending >= 256:
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
) -> Totals:
    own = publisher is None
    pub = publisher or Publisher(settings)

    def stop() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    try:
        return drive(pub, agent_calls(random.Random(seed), sessions, stop=stop), rate, progress)
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
) -> None:
    deadline = time.monotonic() + duration if duration else None

    def progress(n: int) -> None:
        with counter.get_lock():
            counter.value += n

    pub = Publisher(settings)
    totals = _agent(settings, seed, sessions, rate, deadline, pub, progress)
    pub.close(30)
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
) -> Totals:
    """Run ``agents`` simulated agents of ``sessions`` sessions each, ``rate`` events/s in total
    (0: unlimited), for at most ``duration`` seconds. Threads share one Publisher (one agent
    process); processes have one each."""
    seed = random.randrange(2**32) if seed is None else seed
    per_agent = rate / agents if rate > 0 else 0.0
    if processes:
        return _run_processes(settings, agents, sessions, per_agent, duration, seed, progress)
    deadline = time.monotonic() + duration if duration else None
    pub = Publisher(settings)
    totals = Totals()
    lock = threading.Lock()

    def agent(index: int) -> None:
        result = _agent(settings, seed + index, sessions, per_agent, deadline, pub, progress)
        with lock:
            totals.merge(result)

    threads = [threading.Thread(target=agent, args=(i,), name=f"agent-{i}") for i in range(agents)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pub.close(30)
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
) -> Totals:
    context = multiprocessing.get_context("spawn")
    counter = context.Value("q", 0)
    results = context.Queue()
    children = [
        context.Process(
            target=_process_main, args=(settings, seed + i, sessions, rate, duration, counter, results)
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
