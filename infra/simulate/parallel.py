"""Each autoscaled workload's what-if (its traces, then the settings search) as one task; on a machine with two
cores or more, two tasks at a time in worker processes, their progress shown here, one workload after the other.

A task is deterministic and carries everything it reads, so where it runs does not change its outcome. Workers are
spawned, not forked: the plan before a simulation leaves gRPC threads behind, which a fork would copy mid-call.
The search of one workload stays in one process: it decides each setting on what it has already scored.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.queues import Queue
from queue import Empty
from typing import Protocol

from infra.catalog import Catalog
from infra.config import StackConfig
from infra.simulate.capacity import replica_capacity
from infra.simulate.engine import Result
from infra.simulate.hpa import HpaSpec
from infra.simulate.recommend import Progress, Recommendation, recommendation
from infra.simulate.run import replica_rps, run_case, trace_for
from infra.simulate.traces import Trace


@dataclass(frozen=True)
class Task:
    cfg: StackConfig
    catalog: Catalog
    workload: str
    hpa: HpaSpec
    traces: tuple[str, ...]
    """Built-in trace names, or the name of `recorded`."""
    recorded: Trace | None
    hours: float
    recommend_hours: float
    """0: no settings search."""

    def weight(self) -> float:
        """Requests per second the built-in traces carry: what the task's time grows with."""
        workload = self.cfg.workloads[self.workload]
        return replica_rps(replica_capacity(self.catalog, workload)) * self.hpa.min_replicas


@dataclass(frozen=True)
class Outcome:
    results: tuple[tuple[str, Result], ...]
    recommendation: Recommendation | None


def run(task: Task, progress: Progress) -> Outcome:
    """The phases "simulate" (a step per trace), then the search's (see recommend.Progress)."""
    cfg, catalog, hpa = task.cfg, task.catalog, task.hpa
    workload = cfg.workloads[task.workload]
    capacity = replica_capacity(catalog, workload)
    progress.phase("simulate", len(task.traces))
    results = []
    for name in task.traces:
        if task.recorded is None:
            trace, hours = trace_for(name, capacity, hpa, task.hours), task.hours
        else:  # the recorded trace and 10 minutes to drain it
            trace, hours = task.recorded, max(1.0, (max(task.recorded.arrival_s, default=0) + 600) / 3600)
        results.append((name, run_case(cfg, catalog, workload, hpa, trace, hours)))
        progress.step()
    found = recommendation(cfg, catalog, workload, hpa, task.recommend_hours, progress) if task.recommend_hours > 0 else None
    return Outcome(tuple(results), found)


class Shown(Progress, Protocol):
    def done(self) -> None: ...


Event = tuple[str, str, int]
"""(workload, phase, steps) when a phase starts; (workload, "", 0) for a step; (workload, DONE, 0) at the end."""
DONE = "done"
_events: Queue[Event] | None = None


def _listen(events: Queue[Event]) -> None:
    global _events
    _events = events


@dataclass
class _Sent:
    """A worker's progress, sent to the parent."""

    workload: str

    def phase(self, name: str, steps: int) -> None:
        assert _events is not None
        _events.put((self.workload, name, steps))

    def step(self) -> None:
        assert _events is not None
        _events.put((self.workload, "", 0))


def _remote(task: Task) -> Outcome:
    assert _events is not None
    try:
        return run(task, _Sent(task.workload))
    finally:
        _events.put((task.workload, DONE, 0))


def run_all(tasks: list[Task], show: Callable[[str], Shown]) -> list[Outcome]:
    """Every task's outcome, in order; `show(workload)` displays one task's progress (here or from a worker)."""
    if len(tasks) < 2 or (os.cpu_count() or 1) < 2:
        outcomes = []
        for task in tasks:
            shown = show(task.workload)
            outcomes.append(run(task, shown))
            shown.done()
        return outcomes
    context = multiprocessing.get_context("spawn")
    events: Queue[Event] = context.Queue()
    with ProcessPoolExecutor(2, mp_context=context, initializer=_listen, initargs=(events,)) as pool:
        # The heaviest first, so that the last to start is a light one.
        futures = {i: pool.submit(_remote, tasks[i]) for i in sorted(range(len(tasks)), key=lambda i: -tasks[i].weight())}
        early: defaultdict[str, deque[Event]] = defaultdict(deque)
        for i, task in enumerate(tasks):
            shown = show(task.workload)
            for _, name, steps in _of(task.workload, events, early, futures[i]):
                if name:
                    shown.phase(name, steps)
                else:
                    shown.step()
            shown.done()
        return [futures[i].result() for i in range(len(tasks))]


def _of(workload: str, events: Queue[Event], early: defaultdict[str, deque[Event]], future: Future[Outcome]) -> Iterator[Event]:
    """`workload`'s events until its task ends; other workloads' wait in `early`."""
    while True:
        if early[workload]:
            event = early[workload].popleft()
        else:
            try:
                event = events.get(timeout=0.5)
            except Empty:
                if future.done():  # the worker died without a word
                    return
                continue
        if event[0] != workload:
            early[event[0]].append(event)
        elif event[1] == DONE:
            return
        else:
            yield event
