"""One replica's continuous batching over one step of the simulator's clock, in the engine's three ways.

- Prefill apart (JetStream interleaved, and the default): a waiting request joins when a slot is free, paying its
  whole prefill on the replica's one timeline; decode steps run in between.
- Chunked prefill (vLLM, `max_batched_tokens`): every engine step takes one token for each decoding sequence and
  fills the rest of the token budget with prompt chunks, first come first served; a request's first token comes
  at the end of the step that takes its last chunk.
- Disaggregated (JetStream, `disaggregated`): prefill runs on its own slice, one request after another, beside the
  decode steps; a prefilled request joins the decode batch at the first decode step after its prefill.

KV-bound admission (`kv_capacity_tokens`): a request joins only if its prompt + output fit beside what the
admitted sequences will hold at their end, so a batch never outgrows the cache and nothing is preempted (vLLM
admits by the blocks in use and preempts on overflow: this admits a little less, never more). A request that does
not fit an empty replica still joins it alone, as vLLM serves any request within its model length.

Speed (a day of traffic is a million requests, and the settings search replays a few hours of it some thirty
times): decode steps between two events (a finish, a join, the end of the time) run as one jump; a request is an
index into the trace's columns and a running sequence an int in a heap (see SHIFT); everything a loop reads is a
local. Each function keeps the arithmetic of a plain step-by-step loop, so the results do not depend on the jumps.
The three loops repeat their few lines of finish and decode-jump bookkeeping on purpose: they run once per request
and jump, and a function call there would cost about a fifth of a day's simulation.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from heapq import heappop, heappush

from infra.simulate.capacity import ReplicaCapacity
from infra.simulate.traces import Trace

SHIFT = 32
KV_MASK = (1 << SHIFT) - 1
"""A running sequence is one int in its replica's heap: the decode-step count at which it finishes, shifted left by
SHIFT, or'ed with the KV tokens it then holds (prompt + output after the first token)."""


class Replica:
    """One replica's engine state. Requests are indices into the trace's columns."""

    __slots__ = (
        "carry",
        "context",
        "emitted",
        "finish",
        "partial",
        "pending",
        "prefill_free",
        "ready_at",
        "reserved",
        "waiting",
    )

    def __init__(self, ready_at: float) -> None:
        self.ready_at = ready_at
        self.waiting: deque[int] = deque()
        self.finish: list[int] = []
        """Heap of the decoding sequences (see SHIFT)."""
        self.emitted = 0
        """Decode steps so far: each emitted one token for every decoding sequence."""
        self.context = 0
        """Tokens in the KV cache of the running sequences."""
        self.reserved = 0
        """KV tokens the admitted sequences hold at their end: what KV-bound admission counts."""
        self.carry = 0.0
        """Time left over (or owed, after a long prefill or step) from the previous step."""
        self.partial = 0
        """Chunked prefill: prompt tokens of the head of `waiting` already prefilled (it holds a slot and its KV)."""
        self.pending: deque[tuple[float, int]] = deque()
        """Disaggregated: (when its prefill ends, request) of the requests on or past the prefill slice, in order."""
        self.prefill_free = 0.0
        """Disaggregated: when the prefill slice is next free."""

    def running(self) -> int:
        """Sequences holding a slot: decoding, partly prefilled, or on the prefill slice."""
        return len(self.finish) + (self.partial > 0) + len(self.pending)

    def load(self) -> int:
        return len(self.waiting) + self.running()


@dataclass
class Served:
    """What every replica of a run has done: first tokens, misses, token counters (what the engines export)."""

    trace: Trace
    slo_ttft_s: float
    ttfts: list[float] = field(default_factory=list)
    late: list[float] = field(default_factory=list)
    """Arrival times of the requests whose first token came after the objective."""
    output_tokens: int = 0
    prompt_tokens: int = 0


Serve = Callable[[Replica, float], None]
"""Runs a replica's engine over one step of the simulator's clock, from `now`."""


def _reads(
    capacity: ReplicaCapacity, served: Served
) -> tuple[list[float], list[int], list[int], list[float], list[float], float, int, float]:
    """What every engine step reads, bound once as locals of its closure: the trace's columns, where first tokens and
    misses go, the objective, the slots and the KV capacity (inf: unbounded)."""
    trace = served.trace
    kv = math.inf if capacity.kv_capacity_tokens is None else capacity.kv_capacity_tokens
    return (
        trace.arrival_s,
        trace.prompt_tokens,
        trace.output_tokens,
        served.ttfts,
        served.late,
        served.slo_ttft_s,
        capacity.max_concurrency,
        kv,
    )


def serial(capacity: ReplicaCapacity, served: Served, dt: float) -> Serve:
    """Prefill apart: a request joins whenever a slot (and its KV) is free, paying its prefill; decode runs between."""
    arrivals, prompts, outputs, ttfts, late, slo, slots, kv = _reads(capacity, served)
    step_s = capacity.stepper()
    prefill_of: dict[int, float] = {}
    """A prompt's prefill time by its length: prompts repeat, and a lookup is cheaper than a step."""

    def serve(replica: Replica, now: float) -> None:
        budget = dt + replica.carry
        spent = 0.0
        finish, waiting = replica.finish, replica.waiting
        emitted, context, reserved = replica.emitted, replica.context, replica.reserved
        prompt_total = output_total = 0
        while True:
            while finish and finish[0] >> SHIFT <= emitted:
                held = heappop(finish) & KV_MASK
                context -= held
                reserved -= held + 1
            while waiting and len(finish) < slots and budget > 0:
                i = waiting[0]
                p, o = prompts[i], outputs[i] - 1
                if o < 0:
                    o = 0
                if finish and reserved + p + o + 1 > kv:
                    break
                waiting.popleft()
                prefill = prefill_of.get(p)
                if prefill is None:
                    prefill = prefill_of[p] = step_s(0, 0, p)
                budget -= prefill
                spent += prefill
                # The first token comes out of the prefill, at this point of the step.
                a = arrivals[i]
                ttft = (a if a > now else now) + spent - a
                ttfts.append(ttft)
                if ttft > slo:
                    late.append(a)
                prompt_total += p
                output_total += 1
                heappush(finish, (emitted + o) << SHIFT | (p + o))
                context += p
                reserved += p + o + 1
            if not finish or budget <= 0:
                break
            batch = len(finish)
            step = step_s(batch, context, 0)
            # Decode until the next sequence finishes (freeing a slot) or the budget runs out.
            steps = (finish[0] >> SHIFT) - emitted
            fit = int(budget / step)
            if fit < steps:
                steps = fit
            if steps <= 0:
                break
            emitted += steps
            context += steps * batch
            output_total += steps * batch
            budget -= steps * step
            spent += steps * step
        # Leftover time carries while sequences run (a step may outlast dt); a debt from a long prefill always carries.
        replica.carry = budget if finish else min(budget, 0.0)
        replica.emitted, replica.context, replica.reserved = emitted, context, reserved
        served.prompt_tokens += prompt_total
        served.output_tokens += output_total

    return serve


def chunked(capacity: ReplicaCapacity, served: Served, dt: float) -> Serve:
    """Chunked prefill: each engine step decodes one token per running sequence and prefills prompt chunks, first
    come first served, in what is left of `max_batched_tokens`; decode-only steps between events run as one jump."""
    assert capacity.max_batched_tokens is not None
    arrivals, prompts, outputs, ttfts, late, slo, slots, kv = _reads(capacity, served)
    step_s, tokens_per_step = capacity.stepper(), capacity.max_batched_tokens

    def serve(replica: Replica, now: float) -> None:
        budget = dt + replica.carry
        spent = 0.0
        finish, waiting = replica.finish, replica.waiting
        emitted, context, reserved, partial = replica.emitted, replica.context, replica.reserved, replica.partial
        prompt_total = output_total = 0
        joined: list[int] = []
        while budget > 0:
            while finish and finish[0] >> SHIFT <= emitted:
                held = heappop(finish) & KV_MASK
                context -= held
                reserved -= held + 1
            batch = len(finish)
            room = tokens_per_step - batch
            chunk = 0
            seqs = batch + (partial > 0)
            while waiting and room > 0:
                i = waiting[0]
                p = prompts[i]
                if not partial:  # the request joins now: a slot and its KV
                    o = outputs[i] - 1
                    if o < 0:
                        o = 0
                    if seqs >= slots or (seqs and reserved + p + o + 1 > kv):
                        break
                    reserved += p + o + 1
                    seqs += 1
                left = p - partial
                if left > room:
                    partial += room
                    chunk += room
                    break
                room -= left
                chunk += left
                partial = 0
                waiting.popleft()
                joined.append(i)
            if chunk or joined:
                step = step_s(batch, context, chunk)
                budget -= step
                spent += step
                emitted += 1
                context += batch + chunk
                output_total += batch + len(joined)
                prompt_total += chunk
                for i in joined:
                    a = arrivals[i]
                    ttft = (a if a > now else now) + spent - a
                    ttfts.append(ttft)
                    if ttft > slo:
                        late.append(a)
                    o = outputs[i] - 1
                    if o < 0:
                        o = 0
                    heappush(finish, (emitted + o) << SHIFT | (prompts[i] + o))
                joined.clear()
                continue
            if not finish:
                break
            step = step_s(batch, context, 0)
            steps = min((finish[0] >> SHIFT) - emitted, int(budget / step))
            if steps <= 0:
                break
            emitted += steps
            context += steps * batch
            output_total += steps * batch
            budget -= steps * step
            spent += steps * step
        replica.carry = budget if finish or partial else min(budget, 0.0)
        replica.emitted, replica.context, replica.reserved, replica.partial = emitted, context, reserved, partial
        served.prompt_tokens += prompt_total
        served.output_tokens += output_total

    return serve


def disaggregated(capacity: ReplicaCapacity, served: Served, dt: float) -> Serve:
    """Disaggregated: the prefill slice prefills one request after another while a decode slot is free for it; the
    first token comes from the prefill; the request joins the decode batch at the first decode step after it."""
    arrivals, prompts, outputs, ttfts, late, slo, slots, kv = _reads(capacity, served)
    step_s = capacity.stepper()
    prefill_of: dict[int, float] = {}
    """A prompt's prefill time by its length: prompts repeat, and a lookup is cheaper than a step."""

    def serve(replica: Replica, now: float) -> None:
        budget = dt + replica.carry
        spent = 0.0
        end = now + dt
        finish, waiting, pending = replica.finish, replica.waiting, replica.pending
        emitted, context, reserved, prefill_free = replica.emitted, replica.context, replica.reserved, replica.prefill_free
        prompt_total = output_total = 0
        while True:
            while finish and finish[0] >> SHIFT <= emitted:
                held = heappop(finish) & KV_MASK
                context -= held
                reserved -= held + 1
            t = now + spent
            while pending and pending[0][0] <= t:
                i = pending.popleft()[1]
                o = max(0, outputs[i] - 1)
                heappush(finish, (emitted + o) << SHIFT | (prompts[i] + o))
                context += prompts[i]
            while waiting and len(finish) + len(pending) < slots and max(prefill_free, t) < end:
                i = waiting[0]
                p, o = prompts[i], max(0, outputs[i] - 1)
                if (finish or pending) and reserved + p + o + 1 > kv:
                    break
                waiting.popleft()
                reserved += p + o + 1
                prefill = prefill_of.get(p)
                if prefill is None:
                    prefill = prefill_of[p] = step_s(0, 0, p)
                prefill_free = max(prefill_free, t) + prefill
                a = arrivals[i]
                ttft = max(now, a) + (prefill_free - now) - a
                ttfts.append(ttft)
                if ttft > slo:
                    late.append(a)
                prompt_total += p
                output_total += 1
                pending.append((prefill_free, i))
            if budget <= 0:
                break
            if not finish:
                if pending and pending[0][0] - t < budget:  # idle until the next prefill ends
                    budget -= pending[0][0] - t
                    spent = pending[0][0] - now
                    continue
                break
            batch = len(finish)
            step = step_s(batch, context, 0)
            steps = min((finish[0] >> SHIFT) - emitted, int(budget / step))
            if pending:
                steps = min(steps, max(1, math.ceil((pending[0][0] - t) / step)))
            if steps <= 0:
                break
            emitted += steps
            context += steps * batch
            output_total += steps * batch
            budget -= steps * step
            spent += steps * step
        replica.carry = budget if finish else min(budget, 0.0)
        replica.emitted, replica.context, replica.reserved, replica.prefill_free = emitted, context, reserved, prefill_free
        served.prompt_tokens += prompt_total
        served.output_tokens += output_total

    return serve


def serve_for(capacity: ReplicaCapacity, served: Served, dt: float) -> Serve:
    """One step of `dt` of a replica, in the batching its engine does (see the module docstring)."""
    if capacity.max_batched_tokens is not None:
        return chunked(capacity, served, dt)
    if capacity.disaggregated:
        return disaggregated(capacity, served, dt)
    return serial(capacity, served, dt)
