"""Plan time for every shipped stack, in-process under the mock runtime (median of repeats).

Run: make bench. Goal (sizing-prices G3): all stacks <= 10 s on 2 cores, <= 10 ms per resource.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from infra.tooling import render
from infra.tooling.plan import StackFile, run

REPEATS = 5
STACKS = Path(__file__).resolve().parent.parent / "stacks"


def main() -> None:
    rows, total = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(STACKS.glob("Pulumi.*.yaml")):
            times, count = [], 0
            for _ in range(REPEATS):
                start = time.perf_counter()
                capture = run(StackFile.read(path))
                render.write(capture, Path(tmp))
                times.append(time.perf_counter() - start)
                count = len(capture.resources)
            median = statistics.median(times)
            total += median
            rows.append([path.name, count, f"{median * 1000:.0f}", f"{median * 1000 / count:.1f}"])
    print(tabulate(rows, headers=["stack", "resources", "median ms", "ms/resource"], tablefmt="github"))
    print(f"\nall stacks, warm: {total:.2f} s (median of {REPEATS}; Python {sys.version.split()[0]})")
    cold = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "infra.tooling.cli", "plan", "--out", tmp, "--stacks-dir", str(STACKS)],
                check=True,
                capture_output=True,
            )
            cold.append(time.perf_counter() - start)
    print(f"all stacks, cold CLI process (imports included): {statistics.median(cold):.2f} s (median of 3)")


if __name__ == "__main__":
    main()
