"""Cost: the stack's node pools at full scale, priced from the catalog, against the configured monthly budget.

Prices and the hourly arithmetic come from ``infra.catalog`` and ``infra.sizing`` (the same functions
the plan report uses); only the pool shape is read back from the captured NodePool inputs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass

from pulumi.runtime import get_config
from pulumi_policy import Severity, StackValidationArgs

from infra import sizing
from infra.catalog import Provisioning
from infra.catalog import load as load_catalog
from policies.base import Config, Finding, Meta, get, stack_policy
from policies.inventory import Pool, Stack

STACK_BUDGET_KEY = "gke-inference:budget"
"""The stack's own budget (stack config); the engine hands stack config to policy packs."""


@dataclass(frozen=True)
class PoolCost:
    pool: str
    hourly: float | None
    """None when the catalog has no price for the pool's machine in its region."""


def _region(pool: Pool) -> str:
    location = str(get(pool.props, "location") or "")
    return location.rsplit("-", 1)[0] if location.count("-") == 2 else location


def pool_cost(pool: Pool) -> PoolCost:
    """Hourly price of the pool at its autoscaling ceiling (reservations and flex-start at the on-demand rate)."""
    catalog, region, nodes = load_catalog(), _region(pool), pool.max_nodes()
    provisioning: Provisioning = "spot" if pool.spot else "on_demand"
    if pool.tpu is not None:
        slices = math.ceil(nodes / pool.tpu.vms)  # a partial slice is inf-tpu-pool-shape's finding; price it whole
        return PoolCost(pool.name, sizing.tpu_pool_hourly(catalog, pool.tpu, region, provisioning, slices))
    return PoolCost(pool.name, sizing.machine_pool_hourly(catalog, pool.machine_type, region, provisioning, nodes))


def stack_budget() -> float | None:
    """The stack config's budget.monthly_usd, as the engine passes stack config to the policy pack."""
    raw = get_config(STACK_BUDGET_KEY)
    if not raw:
        return None
    value = (json.loads(raw) if isinstance(raw, str) else raw).get("monthly_usd")
    return float(value) if value is not None else None


def _budget(args: StackValidationArgs, cfg: Config) -> Iterator[Finding]:
    stack = Stack(args.resources)
    costs = [pool_cost(p) for p in stack.pools]
    for p, cost in zip(stack.pools, costs, strict=True):
        if cost.hourly is None:
            yield Finding(
                f"no catalog price for {p.machine_type} in {_region(p)}: pool {p.name} is left out of the estimate", p.resource
            )
    budgets = {
        name: float(value)
        for name, value in (("policy config monthlyBudgetUsd", cfg.get("monthlyBudgetUsd")), (STACK_BUDGET_KEY, stack_budget()))
        if value is not None
    }
    if not budgets:
        return
    source, budget = min(budgets.items(), key=lambda item: item[1])
    monthly = sum(c.hourly or 0.0 for c in costs) * sizing.HOURS_PER_MONTH
    if monthly > budget:
        largest = max(costs, key=lambda c: c.hourly or 0.0)
        yield Finding(
            f"estimated {monthly:,.0f} USD/month at full scale exceeds the budget of {budget:,.0f} USD ({source}); "
            f"largest pool: {largest.pool} at {(largest.hourly or 0.0) * sizing.HOURS_PER_MONTH:,.0f} USD/month"
        )


POLICIES = [
    stack_policy(
        Meta(
            "inf-stack-cost-budget",
            "The stack's node pools at full scale cost no more per month than its budget.",
            Severity.HIGH,
            "Lower pool ceilings (max slices / nodes per zone), use spot or a cheaper shape, or raise budget.monthly_usd "
            "in the stack file with the owner's approval.",
            params={
                "monthlyBudgetUsd": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "Environment ceiling in USD per month; the stack's own budget.monthly_usd also applies.",
                }
            },
        ),
        _budget,
    ),
]
