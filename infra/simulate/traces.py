"""Request traffic for the simulator: built-in shapes drawn from a seeded generator, or a recorded trace from CSV.

Arrivals are a non-homogeneous Poisson process (by thinning), so the same seed always gives the same trace and the
count in any window has Poisson statistics that tests can bound. Token lengths are lognormal, the usual fit for LLM
prompt and completion lengths: positive and right-skewed. A day of traffic is a million requests, so the draws are
numpy's (a few ms) and a trace is three columns (:class:`Trace`), not an object per request.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

Shape = Literal["steady", "diurnal", "burst", "ramp"]

DAY_S = 86_400
DIURNAL_SWING = 0.6
BURST_FACTOR = 5.0
BURST_S = 600.0
RAMP = (0.2, 2.0)

AZURE_HEADER = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
PLAIN_HEADER = ("arrival_s", "prompt_tokens", "output_tokens")
_FRACTION = re.compile(r"\.\d{7,}")

Floats = npt.NDArray[np.float64]


class Request(NamedTuple):
    arrival_s: float
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Trace:
    """Requests as columns sorted by arrival: the engine refers to a request by its index."""

    arrival_s: list[float]
    prompt_tokens: list[int]
    output_tokens: list[int]

    @classmethod
    def of(cls, requests: Iterable[Request]) -> Trace:
        """The requests sorted by arrival (stable: ties keep their order)."""
        ordered = sorted(requests, key=lambda r: r[0])
        return cls([r[0] for r in ordered], [r[1] for r in ordered], [r[2] for r in ordered])

    def __len__(self) -> int:
        return len(self.arrival_s)

    def __iter__(self) -> Iterator[Request]:
        return map(Request, self.arrival_s, self.prompt_tokens, self.output_tokens)


def burst_window(duration_s: float) -> tuple[float, float]:
    """The burst's [start, end): ``BURST_S`` centred on the run, or its middle third when the run is shorter than 30 min."""
    width = min(BURST_S, duration_s / 3)
    return (duration_s - width) / 2, (duration_s + width) / 2


def rate_at(name: Shape, t: float, *, duration_s: float, base_rps: float) -> float:
    """Requests per second of shape ``name`` at ``t`` seconds into a run of ``duration_s``.

    - steady: ``base_rps`` throughout.
    - diurnal: ``base × (1 + 0.6·sin(2πt/P − π/2))`` — a trough of 0.4× at the start, a 1.6× peak mid-period. P is a
      day, or the whole run when it is shorter, so an hour-long run still sees one full day compressed into it.
    - burst: ``base_rps`` with ``BURST_FACTOR``× during :func:`burst_window` — a sudden spike the HPA must chase.
    - ramp: linear from 0.2× to 2× base over the run — sustained growth, to see whether scale-up keeps pace.
    """
    return float(_rate(name, duration_s, base_rps)(np.asarray([t], dtype=float))[0])


def _rate(name: Shape, duration_s: float, base_rps: float) -> Callable[[Floats], Floats]:
    """The shape's rate over an array of times."""
    if name == "steady":
        return lambda t: np.full_like(t, base_rps)
    if name == "diurnal":
        omega = 2 * math.pi / _diurnal_period(duration_s)
        return lambda t: base_rps * (1 + DIURNAL_SWING * np.sin(omega * t - math.pi / 2))
    if name == "burst":
        start, end = burst_window(duration_s)
        return lambda t: np.where((start <= t) & (t < end), base_rps * BURST_FACTOR, base_rps)
    if name == "ramp":
        low, high = RAMP
        return lambda t: base_rps * (low + (high - low) * t / duration_s)
    raise ValueError(f"unknown trace shape {name!r}; expected one of steady, diurnal, burst, ramp")


def _diurnal_period(duration_s: float) -> float:
    return min(float(DAY_S), duration_s)


def _pieces(name: Shape, duration_s: int) -> list[float]:
    """Edges of pieces, a minute at most, on which the rate is monotone: its largest end value then bounds it."""
    edges: set[float] = set(range(0, duration_s, 60))
    if name == "burst":
        edges |= set(burst_window(duration_s))
    if name == "diurnal":
        half = _diurnal_period(duration_s) / 2
        edges |= {k * half for k in range(int(duration_s / half) + 1)}
    return [*sorted(e for e in edges if e < duration_s), float(duration_s)]


def _lengths(rng: np.random.Generator, mean: float, sd: float, n: int) -> list[int]:
    """`n` lognormal lengths with the given mean and standard deviation, rounded and clipped to at least 1 token."""
    if mean <= 0 or sd < 0:
        raise ValueError(f"token length needs mean > 0 and sd >= 0, got ({mean}, {sd})")
    sigma = math.sqrt(math.log1p((sd / mean) ** 2))
    mu = math.log(mean) - sigma**2 / 2
    lengths: list[int] = np.maximum(1, np.rint(rng.lognormal(mu, sigma, n))).astype(np.int64).tolist()
    return lengths


def builtin(
    name: Shape,
    *,
    duration_s: int,
    base_rps: float,
    seed: int = 0,
    prompt: tuple[float, float] = (1024, 512),
    output: tuple[float, float] = (256, 128),
) -> Trace:
    """A deterministic trace of shape ``name`` (see :func:`rate_at`); ``prompt``/``output`` are (mean, sd) in tokens.

    Thinning runs piece by piece against each piece's own peak rather than the shape's global one, which keeps the
    process exact while rejecting few candidates (a global 5× envelope would quintuple the work of a burst). Given
    its Poisson count, a piece's candidates are uniform on it, so every piece is drawn at once.
    """
    rate = _rate(name, duration_s, base_rps)
    if duration_s <= 0 or base_rps < 0:
        raise ValueError(f"need duration_s > 0 and base_rps >= 0, got {duration_s}, {base_rps}")
    rng = np.random.default_rng(seed)
    edges = np.asarray(_pieces(name, duration_s))
    starts, ends = edges[:-1], edges[1:]
    peaks = np.maximum(rate(starts), rate(np.nextafter(ends, starts)))
    piece = np.repeat(np.arange(starts.size), rng.poisson(peaks * (ends - starts)))
    t = starts[piece] + rng.random(piece.size) * (ends - starts)[piece]
    keep = (rng.random(piece.size) * peaks[piece] < rate(t)) & (t < ends[piece])
    arrivals = np.sort(t[keep])
    return Trace(arrivals.tolist(), _lengths(rng, *prompt, arrivals.size), _lengths(rng, *output, arrivals.size))


def load_csv(path: str | Path) -> list[Request]:
    """Requests from a CSV, sorted by arrival.

    Two layouts, told apart by the header: the Azure LLM inference trace (``TIMESTAMP,ContextTokens,GeneratedTokens``,
    timestamps like ``2023-11-16 18:15:46.6805900``, made relative to the earliest row) and the plain
    ``arrival_s,prompt_tokens,output_tokens``. A bad row raises ``ValueError`` naming the file, line and column.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = tuple(h.strip() for h in next(reader, ()))
        if header not in (AZURE_HEADER, PLAIN_HEADER):
            raise ValueError(
                f"{path}:1: header {','.join(header)!r} is neither {','.join(AZURE_HEADER)} nor {','.join(PLAIN_HEADER)}"
            )
        azure = header == AZURE_HEADER
        stamps: list[datetime] = []
        seconds: list[float] = []
        tokens: list[tuple[int, int]] = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"{path}:{reader.line_num}"
            if len(row) != 3:
                raise ValueError(f"{where}: expected 3 columns ({','.join(header)}), got {len(row)}")
            cells = [cell.strip() for cell in row]
            if azure:
                stamps.append(_timestamp(cells[0], f"{where}: column {header[0]}", stamps[0] if stamps else None))
            else:
                seconds.append(_seconds(cells[0], f"{where}: column {header[0]}"))
            tokens.append((_tokens(cells[1], f"{where}: column {header[1]}"), _tokens(cells[2], f"{where}: column {header[2]}")))
    if azure and stamps:
        first = min(stamps)
        seconds = [(s - first).total_seconds() for s in stamps]
    return sorted((Request(t, p, o) for t, (p, o) in zip(seconds, tokens, strict=True)), key=lambda r: r.arrival_s)


def _timestamp(cell: str, where: str, first: datetime | None) -> datetime:
    """An ISO-like timestamp; 7-digit fractions (as in the Azure traces) are cut to the microseconds Python keeps."""
    try:
        stamp = datetime.fromisoformat(_FRACTION.sub(lambda m: m.group(0)[:7], cell))
    except ValueError:
        raise ValueError(f"{where}: {cell!r} is not a timestamp like 2023-11-16 18:15:46.6805900") from None
    if first is not None and (stamp.tzinfo is None) != (first.tzinfo is None):
        raise ValueError(f"{where}: {cell!r} mixes timestamps with and without a time zone")
    return stamp


def _seconds(cell: str, where: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: {cell!r} is not a non-negative number of seconds")
    return value


def _tokens(cell: str, where: str) -> int:
    if not (cell.isascii() and cell.isdigit()):
        raise ValueError(f"{where}: {cell!r} is not a non-negative whole number of tokens")
    return int(cell)
