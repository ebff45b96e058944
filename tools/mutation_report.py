"""The mutation-testing report: mutmut's results (mutants/**/*.meta) per source file, the score over non-equivalent
mutants, and every surviving mutant with its diff, less the reviewed allow-list of equivalent ones.

Usage: tools/mutation_report.py [--mutants DIR] [--allowlist FILE] [--sample FILE] [--out FILE] [--fail-under PERCENT]

Score = caught / (caught + survived), caught being killed, timed out (a mutant that hangs a run is caught) or
refused by the type checker; allow-listed mutants leave both sides. Mutants not run yet, and those no test reaches,
are counted apart: they are not in the score, and the second are listed (a test must reach them). With --sample
(tools/mutation_sample.py's draw) only the sampled mutants count, and the score comes with its 95 % Wilson interval:
the range the score over every mutant lies in, but for 1 draw in 20.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code

CAUGHT = frozenset({"killed", "timeout", "caught by type check", "segfault"})
LISTED = ("survived", "no tests", "suspicious")
"""Statuses whose mutants the report lists one by one (unless allow-listed)."""


@dataclass
class FileResult:
    path: str
    statuses: Counter[str] = field(default_factory=Counter)
    listed: dict[str, str] = field(default_factory=dict)
    """Mutant name -> status, for the statuses in LISTED."""
    allowed: int = 0

    @property
    def caught(self) -> int:
        return sum(n for s, n in self.statuses.items() if s in CAUGHT)

    @property
    def score(self) -> float | None:
        judged = self.caught + self.statuses["survived"]
        return 100 * self.caught / judged if judged else None


def read_allowlist(path: Path) -> dict[str, str]:
    """Mutant name -> the one-line reason it is equivalent; an entry without a reason is refused."""
    entries = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    missing = [name for name, reason in entries.items() if not isinstance(reason, str) or not reason.strip()]
    if missing:
        raise SystemExit(f"{path}: no reason given for {', '.join(missing)}")
    return dict(entries)


def wilson(caught: int, judged: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion, in percent: unlike the normal approximation it stays inside
    0-100 % and keeps its coverage near the ends, where mutation scores live."""
    if not judged:
        return 0.0, 100.0
    p = caught / judged
    centre = (p + z * z / (2 * judged)) / (1 + z * z / judged)
    half = z * math.sqrt(p * (1 - p) / judged + z * z / (4 * judged * judged)) / (1 + z * z / judged)
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def collect(mutants: Path, allowlist: dict[str, str], only: set[str] | None = None) -> tuple[list[FileResult], set[str]]:
    """Per-file results (of the `only` mutants, when given), and the allow-list entries that matched a survivor."""
    results, used = [], set()
    for meta in sorted(mutants.rglob("*.py.meta")):
        exit_codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        if only is not None:
            exit_codes = {name: code for name, code in exit_codes.items() if name in only}
        if not exit_codes:
            continue
        result = FileResult(str(meta.relative_to(mutants)).removesuffix(".meta"))
        for name, code in sorted(exit_codes.items()):
            status = status_by_exit_code[code]
            if status == "survived" and name in allowlist:
                result.allowed += 1
                used.add(name)
                continue
            result.statuses[status] += 1
            if status in LISTED:
                result.listed[name] = status
        results.append(result)
    return results, used


def overall(results: list[FileResult]) -> FileResult:
    total = FileResult("all")
    for r in results:
        total.statuses.update(r.statuses)
        total.allowed += r.allowed
    return total


def render(
    results: list[FileResult], allowlist: dict[str, str], used: set[str], with_diffs: bool, sampled: int | None = None
) -> str:
    total = overall(results)
    lines = ["# Mutation testing", ""]
    if sampled is not None:
        judged = total.caught + total.statuses["survived"]
        low, high = wilson(total.caught, judged)
        score = "-" if total.score is None else f"{total.score:.1f} %"
        lines += [
            f"A random sample of {sampled} mutants, {judged} judged: score {score}, 95 % interval {low:.1f}-{high:.1f} %.",
            "",
        ]
    lines += [
        "| file | score | caught | survived | equivalent (allow-list) | no tests | not run |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in [*results, total]:
        score = "-" if r.score is None else f"{r.score:.1f} %"
        lines.append(
            f"| {r.path} | {score} | {r.caught} | {r.statuses['survived']} | {r.allowed} | {r.statuses['no tests']} "
            f"| {r.statuses['not checked']} |"
        )
    for r in results:
        if not r.listed:
            continue
        lines += ["", f"## {r.path}", ""]
        for name, status in r.listed.items():
            lines.append(f"- `{name}` ({status})")
            if with_diffs:
                lines += ["", "```diff", get_diff_for_mutant(name).rstrip(), "```", ""]
    stale = sorted(set(allowlist) - used)
    if stale:
        lines += ["", "## Allow-list entries that match no surviving mutant (review and remove)", ""]
        lines += [f"- `{name}`" for name in stale]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"))
    parser.add_argument("--allowlist", type=Path, default=Path("tests/mutation-allowlist.yaml"))
    parser.add_argument("--sample", type=Path, help="count only the mutants named in this file, one a line")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--no-diffs", action="store_true", help="names only (diffs need mutmut's mutants/ copy)")
    parser.add_argument("--fail-under", type=float, default=None, help="exit 1 when the overall score is below this")
    args = parser.parse_args(argv)
    allowlist = read_allowlist(args.allowlist)
    only = set(args.sample.read_text().split()) if args.sample else None
    results, used = collect(args.mutants, allowlist, only)
    if only is not None:
        allowlist = {name: reason for name, reason in allowlist.items() if name in only}
    text = render(results, allowlist, used, with_diffs=not args.no_diffs, sampled=None if only is None else len(only))
    if args.out:
        args.out.write_text(text)
    sys.stdout.write(text)
    total = overall(results)
    if args.fail_under is not None and (total.score or 0.0) < args.fail_under:
        print(f"mutation score {total.score or 0.0:.1f} % < {args.fail_under:g} %", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
