"""The simulated HPA against the Kubernetes documentation's worked examples, plus properties any HPA must keep."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.simulate.hpa import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    HpaController,
    HpaSpec,
    Policy,
    Rules,
    desired_replicas,
    parse_quantity,
)


def run(controller: HpaController, current: int, metrics: list[float | None]) -> list[int]:
    """Step once per sync period from t=0, feeding each answer back as the next current count."""
    seen = []
    for i, metric in enumerate(metrics):
        current = controller.step(i * controller.spec.sync_s, current, metric)
        seen.append(current)
    return seen


# (a) Algorithm details: desiredReplicas = ceil(currentReplicas × currentMetricValue / desiredMetricValue).
def test_replica_calculation_doubles_halves_and_tolerates() -> None:
    assert desired_replicas(1, parse_quantity("200m"), parse_quantity("100m"), 0.1) == 2
    assert desired_replicas(10, parse_quantity("50m"), parse_quantity("100m"), 0.1) == 5
    assert desired_replicas(10, parse_quantity("105m"), parse_quantity("100m"), 0.1) == 10
    assert desired_replicas(10, parse_quantity("91m"), parse_quantity("100m"), 0.1) == 10
    assert desired_replicas(10, parse_quantity("111m"), parse_quantity("100m"), 0.1) == 12


def test_ratios_are_exact_in_milli_units() -> None:
    """0.3/0.1 is 2.9999999999999996 in floats; the controller works in milli-units, where it is 3."""
    assert desired_replicas(3, 0.3, 0.1, 0.1) == 9


def test_zero_replicas_treat_the_metric_as_the_total() -> None:
    assert desired_replicas(0, 7.0, 2.0, 0.1) == 4
    assert desired_replicas(0, 0.0, 2.0, 0.1) == 0


def metric_for(recommendation: int, current: int) -> float:
    """A per-pod metric (target 1) whose raw recommendation at `current` replicas is `recommendation`."""
    metric = (recommendation - 0.5) / current
    assert desired_replicas(current, metric, 1.0, 0.1) == recommendation
    return metric


# (b) Stabilization window: when scaling down, the highest recommendation within the window wins.
def test_scale_down_stabilization_applies_the_highest_recent_recommendation() -> None:
    spec = HpaSpec(1, 20, 1.0, scale_down=replace(DEFAULT_SCALE_DOWN, stabilization_s=60))
    controller = HpaController(spec)
    recommendations = [10, 6, 8, 5, 4, 3, 3, 3, 3]
    current, seen = 10, []
    for i, recommendation in enumerate(recommendations):
        current = controller.step(i * 15, current, metric_for(recommendation, current))
        seen.append(current)
    # t=60 drops the t=0 samples: the window holds 6, 8, 5, 4 → 8; then 8, 5, 4, 3 → 8; 5, 4, 3, 3 → 5; …
    assert seen == [10, 10, 10, 10, 8, 8, 5, 4, 3]
    assert controller.events == [(60, 10, 8), (90, 8, 5), (105, 5, 4), (120, 4, 3)]


def test_without_a_window_scale_down_follows_the_metric() -> None:
    controller = HpaController(HpaSpec(1, 20, 1.0, scale_down=replace(DEFAULT_SCALE_DOWN, stabilization_s=0)))
    assert controller.step(0, 10, metric_for(6, 10)) == 6


def test_the_first_sync_seeds_the_window_with_the_current_count() -> None:
    """A freshly started controller does not scale below today's count until the window has passed."""
    controller = HpaController(HpaSpec(1, 20, 1.0))
    assert run(controller, 10, [0.0] * 22)[-3:] == [10, 1, 1]  # t=300 still holds the t=0 seed; t=315 does not


# (c) Scaling policies: Pods 4 / 60 s and Percent 10 / 60 s, selectPolicy Max (the policy allowing the biggest change).
DOCS_SCALE_DOWN = Rules(0, "Max", (Policy("Pods", 4, 60), Policy("Percent", 10, 60)))


def test_scale_down_policies_from_the_docs() -> None:
    controller = HpaController(HpaSpec(10, 100, 1.0, scale_down=DOCS_SCALE_DOWN))
    seen = run(controller, 80, [0.0] * (4 * 14))
    per_minute = [80, *seen[3::4]]
    # 80 → 72 (10% = 8); 72 → 64 (7.2 rounds up to 8); … below 40 the Pods policy's 4 is the bigger change.
    assert per_minute == [80, 72, 64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16, 12, 10]
    assert all(a - b <= max(4, -(-a // 10)) for a, b in pairwise(per_minute))
    assert all(seen[i] == seen[i - i % 4] for i in range(len(seen)))  # one change per 60 s period, at its start
    assert [a - b for a, b in pairwise(per_minute[6:])] == [4, 4, 4, 4, 4, 4, 4, 2]


def test_select_policy_min_takes_the_smaller_change() -> None:
    controller = HpaController(HpaSpec(10, 100, 1.0, scale_down=replace(DOCS_SCALE_DOWN, select_policy="Min")))
    assert run(controller, 80, [0.0] * 5) == [76, 76, 76, 76, 72]


def test_select_policy_disabled_stops_that_direction_only() -> None:
    spec = HpaSpec(1, 100, 1.0, scale_down=replace(DOCS_SCALE_DOWN, select_policy="Disabled"))
    controller = HpaController(spec)
    assert run(controller, 8, [0.0] * 40) == [8] * 40
    assert controller.step(40 * 15, 8, 2.0) == 16
    assert controller.events == [(600, 8, 16)]


# (d) Default behavior: scale up by at most max(4 pods, 100 %) every 15 s, no stabilization window.
def test_default_scale_up_from_one() -> None:
    controller = HpaController(HpaSpec(1, 100, 1.0))
    assert run(controller, 1, [1000.0] * 8) == [5, 10, 20, 40, 80, 100, 100, 100]
    assert controller.events[:2] == [(0, 1, 5), (15, 5, 10)]


def test_scale_up_limit_counts_the_whole_period() -> None:
    """A 60 s policy allows 4 pods per 60 s in total, not 4 per sync."""
    controller = HpaController(HpaSpec(1, 100, 1.0, scale_up=Rules(0, "Max", (Policy("Pods", 4, 60),))))
    assert run(controller, 1, [1000.0] * 5) == [5, 5, 5, 5, 9]


def test_a_missing_metric_changes_nothing_and_records_nothing() -> None:
    controller = HpaController(HpaSpec(1, 10, 1.0))
    assert run(controller, 3, [None, None]) == [3, 3]
    assert controller.events == []


def test_out_of_range_counts_are_clamped_and_zero_means_disabled() -> None:
    controller = HpaController(HpaSpec(2, 5, 1.0))
    assert controller.step(0, 9, None) == 5
    assert controller.step(15, 1, None) == 2
    assert controller.step(30, 0, 100.0) == 0
    assert controller.events == [(0, 9, 5), (15, 1, 2)]


def test_from_manifest_reads_a_rendered_hpa() -> None:
    spec = HpaSpec.from_manifest(
        {
            "minReplicas": 1,
            "maxReplicas": 2,
            "metrics": [
                {"type": "Pods", "pods": {"metric": {"name": "q"}, "target": {"type": "AverageValue", "averageValue": "500m"}}}
            ],
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "selectPolicy": "Max",
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 79}],
                },
                "scaleDown": {"policies": [{"type": "Percent", "value": 50, "periodSeconds": 30}], "selectPolicy": "Min"},
            },
        }
    )
    assert spec == HpaSpec(
        1, 2, 0.5, scale_up=Rules(0, "Max", (Policy("Pods", 1, 79),)), scale_down=Rules(300, "Min", (Policy("Percent", 50, 30),))
    )


def test_from_manifest_defaults_everything_missing() -> None:
    metrics = [{"type": "Pods", "pods": {"target": {"averageValue": "5"}}}]
    spec = HpaSpec.from_manifest({"maxReplicas": 4, "metrics": metrics}, tolerance=0.05)
    assert spec == HpaSpec(1, 4, 5.0, DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN, tolerance=0.05)
    assert HpaSpec.from_manifest({"maxReplicas": 4, "metrics": metrics, "behavior": {"scaleUp": {}}}).scale_up == DEFAULT_SCALE_UP


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"maxReplicas": 4}, "no metrics"),
        (
            {"maxReplicas": 4, "metrics": [{"type": "Resource", "resource": {"target": {"averageUtilization": 60}}}]},
            "averageValue",
        ),
        ({"maxReplicas": 4, "metrics": [{"type": "Pods", "pods": {"target": {"averageValue": "5 pods"}}}]}, "quantity"),
        (
            {"minReplicas": 5, "maxReplicas": 4, "metrics": [{"type": "Pods", "pods": {"target": {"averageValue": "5"}}}]},
            "minReplicas",
        ),
    ],
)
def test_from_manifest_rejects_what_it_cannot_simulate(manifest: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HpaSpec.from_manifest(manifest)


@pytest.mark.parametrize(
    ("text", "value"), [("5", 5.0), ("500m", 0.5), ("1.5k", 1500.0), ("2Ki", 2048.0), ("1e3", 1000.0), (".5", 0.5)]
)
def test_quantities(text: str, value: float) -> None:
    assert parse_quantity(text) == value


policies = st.lists(
    st.builds(Policy, st.sampled_from(["Pods", "Percent"]), st.integers(1, 200), st.integers(1, 600)), min_size=0, max_size=3
).map(tuple)
rules = st.builds(Rules, st.integers(0, 600), st.sampled_from(["Max", "Min", "Disabled"]), policies)
bounds = st.tuples(st.integers(0, 30), st.integers(1, 30)).map(sorted).filter(lambda b: b[1] >= 1)
metrics = st.lists(st.one_of(st.none(), st.floats(0, 100, allow_nan=False)), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(bounds, st.floats(0.01, 50), rules, rules, metrics, st.data())
def test_replicas_stay_within_bounds(
    b: list[int], target: float, up: Rules, down: Rules, history: list[float | None], data: st.DataObject
) -> None:
    spec = HpaSpec(b[0], b[1], target, up, down)
    start = data.draw(st.integers(max(b[0], 1), b[1]))
    assert all(b[0] <= r <= b[1] for r in run(HpaController(spec), start, history))


@settings(max_examples=200, deadline=None)
@given(bounds, st.floats(0.01, 50), rules, st.integers(0, 900), st.data())
def test_zero_metric_settles_at_min_after_the_window(
    b: list[int], target: float, up: Rules, window: int, data: st.DataObject
) -> None:
    spec = HpaSpec(b[0], b[1], target, up, replace(DEFAULT_SCALE_DOWN, stabilization_s=window))
    start = data.draw(st.integers(max(b[0], 1), b[1]))
    seen = run(HpaController(spec), start, [0.0] * (window // 15 + 5))
    first_clear = window // 15 + 1  # the first sync strictly after the window has passed the t=0 seed
    assert seen[first_clear:] == [b[0]] * (len(seen) - first_clear)


@settings(max_examples=300, deadline=None)
@given(bounds, st.floats(0.01, 50), st.floats(1.0, 4.0), rules, rules, metrics, st.data())
def test_a_higher_target_never_yields_more_replicas(
    b: list[int], target: float, factor: float, up: Rules, down: Rules, history: list[float | None], data: st.DataObject
) -> None:
    start = data.draw(st.integers(max(b[0], 1), b[1]))
    low = run(HpaController(HpaSpec(b[0], b[1], target, up, down)), start, history)
    high = run(HpaController(HpaSpec(b[0], b[1], target * factor, up, down)), start, history)
    assert all(h <= lo for h, lo in zip(high, low, strict=True))
