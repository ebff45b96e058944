"""Time of the policy pack over every shipped stack, offline (median of repeats), and the slowest policies.

Run: make bench. Goal (issue #4): the pack runs over the largest stack in well under a second.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from tabulate import tabulate

from infra.tooling import policy_runner
from infra.tooling.plan import Captured, StackFile, run
from policies.registry import POLICIES

REPEATS = 20
ROOT = Path(__file__).resolve().parent.parent
STACKS = ROOT / "stacks"
sys.path.insert(0, str(ROOT / "tests" / "policies"))
from fixtures import serving_stack  # noqa: E402  (the tests' compliant serving layer: pools, storage, k8s objects)


def cases() -> list[tuple[str, list[Captured], dict[str, object], dict[str, str]]]:
    """Every shipped stack, and the largest one with the tests' serving layer on top (the stack once it is built)."""
    found = []
    for path in sorted(STACKS.glob("Pulumi.*.yaml")):
        stack_file = StackFile.read(path)
        capture = run(stack_file)
        config = policy_runner.load_config(STACKS / f"policy.{capture.config.environment}.json")
        found.append((path.name, list(capture.resources), config, stack_file.engine_config()))
    name, resources, config, engine_config = max(found, key=lambda case: (len(case[1]), "prod" in case[0]))
    found.append((f"{name} + serving layer", serving_stack(resources), config, engine_config))
    return found


def main() -> None:
    rows, per_policy = [], defaultdict(list)
    for name, resources, config, engine_config in cases():
        policy_runner.run(resources, POLICIES, config, engine_config)  # warm: catalog, imports
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            policy_runner.run(resources, POLICIES, config, engine_config)
            times.append(time.perf_counter() - start)
        for policy in POLICIES:
            start = time.perf_counter()
            policy_runner.run(resources, [policy], {policy.name: config.get(policy.name, {})}, engine_config)
            per_policy[policy.name].append(time.perf_counter() - start)
        median = statistics.median(times)
        rows.append([name, len(resources), len(POLICIES), f"{median * 1000:.1f}", f"{max(times) * 1000:.1f}"])
    print(tabulate(rows, headers=["stack", "resources", "policies", "median ms", "max ms"], tablefmt="github"))
    slowest = sorted(per_policy.items(), key=lambda kv: -sum(kv[1]))[:5]
    print("\nslowest policies (ms, summed over stacks):")
    print(tabulate([[n, f"{sum(t) * 1000:.1f}"] for n, t in slowest], tablefmt="github"))
    print(f"\nmedian of {REPEATS} runs per stack; Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
