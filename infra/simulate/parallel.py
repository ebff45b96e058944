"""Each autoscaled workload's what-if as separate pieces of work (a run per trace, the settings search), spread over
two worker processes on a machine with two cores or more, their progress shown here, one workload after the other.

A piece is deterministic and carries everything it reads, so where it runs does not change its outcome. Workers are
spawned, not forked: the plan before a simulation leaves gRPC threads behind, which a fork would copy mid-call. They
start before the plan (:func:`workers`), so that their imports overlap it. The heaviest pieces go first (the searches,
then the longest traces), so that the two workers end close together. The search of one workload stays one piece:
it decides each setting on what it has already scored.
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
from types import TracebackType
from typing import Protocol

from infra.catalog import Catalog
from infra.config import StackConfig
from infra.simulate.capacity import replica_capacity
from infra.simulate.engine import Result
from infra.simulate.hpa import HpaSpec
from infra.simulate.recommend import Progress, Recommendation, recommendation
from infra.simulate.run import replica_rps, run_case, trace_for
from infra.simulate.traces import Trace

SEARCH_RUNS = 20
"""What a settings search costs, in runs of its trace length: about 30 settings on two traces, most stopped early
(measured on the prod stack: 17 to 24)."""


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

    def rps(self) -> float:
        """Requests per second the built-in traces carry: what a run's time grows with, beside its length."""
        workload = self.cfg.workloads[self.workload]
        return replica_rps(replica_capacity(self.catalog, workload)) * self.hpa.min_replicas


@dataclass(frozen=True)
class Outcome:
    results: tuple[tuple[str, Result], ...]
    recommendation: Recommendation | None


def run_trace(task: Task, name: str) -> Result:
    cfg, catalog, hpa = task.cfg, task.catalog, task.hpa
    workload = cfg.workloads[task.workload]
    if task.recorded is None:
        trace, hours = trace_for(name, replica_capacity(catalog, workload), hpa, task.hours), task.hours
    else:  # the recorded trace and 10 minutes to drain it
        trace, hours = task.recorded, max(1.0, (max(task.recorded.arrival_s, default=0) + 600) / 3600)
    return run_case(cfg, catalog, workload, hpa, trace, hours)


def run_search(task: Task, progress: Progress) -> Recommendation:
    """The search's phases (see recommend.Progress)."""
    return recommendation(task.cfg, task.catalog, task.cfg.workloads[task.workload], task.hpa, task.recommend_hours, progress)


def run(task: Task, progress: Progress) -> Outcome:
    """In this process: the phase "simulate" (a step per trace), then the search's."""
    progress.phase("simulate", len(task.traces))
    results = []
    for name in task.traces:
        results.append((name, run_trace(task, name)))
        progress.step()
    found = run_search(task, progress) if task.recommend_hours > 0 else None
    return Outcome(tuple(results), found)


class Shown(Progress, Protocol):
    def done(self) -> None: ...


Event = tuple[str, str, int]
"""(workload, phase, steps) when a search phase starts; (workload, "", 0) for a step; (workload, DONE, 0) at the end."""
DONE = "done"
_events: Queue[Event] | None = None


def _listen(events: Queue[Event]) -> None:
    global _events
    _events = events


def _warm() -> None:
    """Nothing: submitted once per worker so that each starts, and imports the simulator, right away."""


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


def _remote_search(task: Task) -> Recommendation:
    assert _events is not None
    try:
        return run_search(task, _Sent(task.workload))
    finally:
        _events.put((task.workload, DONE, 0))


class Workers:
    """Two spawned worker processes and the queue their progress comes back on."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.events: Queue[Event] = context.Queue()
        self.pool = ProcessPoolExecutor(2, mp_context=context, initializer=_listen, initargs=(self.events,))
        for _ in range(2):  # a process per submission while none is idle
            self.pool.submit(_warm)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.pool.shutdown(cancel_futures=True)


def workers() -> Workers | None:
    """The workers, started now (before the plan), or None on a single core."""
    return Workers() if (os.cpu_count() or 1) >= 2 else None


def run_all(tasks: list[Task], show: Callable[[str], Shown], on: Workers | None = None) -> list[Outcome]:
    """Every task's outcome, in order; `show(workload)` displays one task's progress. With `on`, the runs and searches
    go to its workers, the heaviest first; without, they run here."""
    if on is None:
        outcomes = []
        for task in tasks:
            shown = show(task.workload)
            outcomes.append(run(task, shown))
            shown.done()
        return outcomes
    pieces: list[tuple[float, int, str | None]] = []
    """(weight, task, trace name or None for the search)."""
    for i, task in enumerate(tasks):
        pieces += [(task.rps() * task.hours, i, name) for name in task.traces]
        if task.recommend_hours > 0:
            pieces.append((task.rps() * task.recommend_hours * SEARCH_RUNS, i, None))
    traces: dict[tuple[int, str], Future[Result]] = {}
    searches: dict[int, Future[Recommendation]] = {}
    for _, i, name in sorted(pieces, key=lambda piece: -piece[0]):  # stable: ties keep their order
        if name is None:
            searches[i] = on.pool.submit(_remote_search, tasks[i])
        else:
            traces[i, name] = on.pool.submit(run_trace, tasks[i], name)
    early: defaultdict[str, deque[Event]] = defaultdict(deque)
    outcomes = []
    for i, task in enumerate(tasks):
        shown = show(task.workload)
        shown.phase("simulate", len(task.traces))
        results = []
        for name in task.traces:
            results.append((name, traces[i, name].result()))
            shown.step()
        found = None
        if i in searches:
            for _, name, steps in _of(task.workload, on.events, early, searches[i]):
                if name:
                    shown.phase(name, steps)
                else:
                    shown.step()
            found = searches[i].result()
        shown.done()
        outcomes.append(Outcome(tuple(results), found))
    return outcomes


def _of(
    workload: str, events: Queue[Event], early: defaultdict[str, deque[Event]], future: Future[Recommendation]
) -> Iterator[Event]:
    """`workload`'s events until its search ends; other workloads' wait in `early`."""
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
