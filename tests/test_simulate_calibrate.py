"""`simulate --calibrate`: load-test JSON in both formats -> factors that reproduce it, written where the catalog reads
them; input it cannot use exits 2 and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import STACKS
from test_platform import load_stack

import infra.simulate.cli as sim_cli
from infra.catalog import Catalog, Factors, read_calibrated
from infra.config import Workload
from infra.simulate import calibrate as cal
from infra.simulate.capacity import replica_capacity, serving_point
from infra.tooling.cli import main

TRUE = Factors(
    decode_bandwidth_efficiency=0.45, prefill_mfu=0.4, host_us_per_sequence=200, step_overhead_ms=2, allreduce_latency_us=0
)
"""The factors the fixture 'server' runs at: calibration must find what predicts it, far from the catalog's."""
PROMPT, OUTPUT = 512, 128
LEVELS = (1, 4, 16)


@pytest.fixture(scope="module")
def gemma(catalog: Catalog) -> Workload:
    return load_stack("prod").workloads["gemma-9b"]


def measured(catalog: Catalog, workload: Workload, concurrency: int) -> tuple[float, float]:
    point = serving_point(replica_capacity(catalog, workload, factors=TRUE), concurrency, PROMPT, OUTPUT)
    return point.tpot_s, point.output_tokens_per_s


def vllm_result(catalog: Catalog, workload: Workload, concurrency: int) -> dict[str, Any]:
    tpot, rate = measured(catalog, workload, concurrency)
    n = 20 * concurrency
    return {
        "model_id": workload.model.hf_id,
        "max_concurrency": concurrency,
        "completed": n,
        "total_input_tokens": n * PROMPT,
        "total_output_tokens": n * OUTPUT,
        "output_throughput": rate,
        "median_tpot_ms": tpot * 1e3,
        "request_throughput": rate / OUTPUT,
    }


def inference_perf_stage(catalog: Catalog, workload: Workload, concurrency: int) -> dict[str, Any]:
    tpot, rate = measured(catalog, workload, concurrency)
    latency = concurrency * OUTPUT / rate
    return {
        "load_summary": {"count": 60, "requested_rate": rate / OUTPUT, "achieved_rate": rate / OUTPUT},
        "successes": {
            "count": 60,
            "latency": {"request_latency": {"mean": latency}, "time_per_output_token": {"median": tpot}},
            "throughput": {"output_tokens_per_sec": rate},
            "prompt_len": {"mean": PROMPT},
            "output_len": {"mean": OUTPUT},
        },
        "failures": {"count": 0},
    }


def write(folder: Path, name: str, data: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data))
    return folder / name


@pytest.mark.parametrize("fmt", ["vllm", "inference-perf"])
def test_calibration_recovers_the_factors_a_load_test_ran_at(fmt: str, catalog: Catalog, gemma: Workload, tmp_path: Path) -> None:
    folder = tmp_path / "benchmarks"
    for c in LEVELS:
        if fmt == "vllm":
            write(folder, f"vllm-c{c}.json", vllm_result(catalog, gemma, c))
        else:
            write(folder, f"stage_{c}_lifecycle_metrics.json", inference_perf_stage(catalog, gemma, c))
    write(folder, "summary_lifecycle_metrics.json", {"not": "a stage"})
    runs = cal.read_runs(folder)
    assert sorted(r.concurrency for r in runs) == list(LEVELS)
    target = tmp_path / "calibrated.yaml"
    entry = cal.calibrate(catalog, gemma, runs, target)
    assert entry["median_error"] <= 1.02 and entry["points"] == 2 * len(LEVELS)
    before = catalog.throughput.factors("vllm", "l4")
    assert abs(entry["decode_bandwidth_efficiency"] - TRUE.decode_bandwidth_efficiency) < abs(
        before.decode_bandwidth_efficiency - TRUE.decode_bandwidth_efficiency
    )
    overrides = read_calibrated(target)
    assert set(overrides) == {"vllm"} and set(overrides["vllm"]) == {"l4"}


def test_replica_capacity_uses_the_override_for_that_accelerator_only(catalog: Catalog, gemma: Workload, tmp_path: Path) -> None:
    target = tmp_path / "calibrated.yaml"
    cal.calibrate(catalog, gemma, [cal._vllm_bench(Path("x.json"), vllm_result(catalog, gemma, 4))], target)
    calibrated = catalog.model_copy(
        update={"throughput": catalog.throughput.model_copy(update={"calibrated": read_calibrated(target)})}
    )
    l4 = calibrated.throughput.calibrated["vllm"]["l4"]
    assert replica_capacity(calibrated, gemma).decode_efficiency == l4.decode_bandwidth_efficiency
    assert replica_capacity(catalog, gemma).decode_efficiency == catalog.throughput.engines["vllm"].decode_bandwidth_efficiency
    h100 = load_stack("prod").workloads["llama-70b"]
    assert replica_capacity(calibrated, h100) == replica_capacity(catalog, h100)


def test_a_second_calibration_keeps_the_first(catalog: Catalog, gemma: Workload, tmp_path: Path) -> None:
    target = tmp_path / "calibrated.yaml"
    runs = [cal._vllm_bench(Path("x.json"), vllm_result(catalog, gemma, 4))]
    cal.calibrate(catalog, gemma, runs, target)
    cal.calibrate(catalog, load_stack("prod").workloads["llama-70b"], runs, target)
    assert set(read_calibrated(target)["vllm"]) == {"l4", "h100-80gb"}


def test_the_workload_is_found_by_model_or_name(catalog: Catalog, gemma: Workload) -> None:
    workloads = dict(load_stack("prod").workloads)
    runs = [cal._vllm_bench(Path("x.json"), vllm_result(catalog, gemma, 1))]
    assert cal.workload_for(workloads, runs, None).name == "gemma-9b"
    assert cal.workload_for(workloads, runs, "llama-70b").name == "llama-70b"
    anonymous = [cal._inference_perf(Path("s.json"), inference_perf_stage(catalog, gemma, 1))]
    with pytest.raises(cal.CalibrationError, match="pass --workload"):
        cal.workload_for(workloads, anonymous, None)
    with pytest.raises(cal.CalibrationError, match="not a workload"):
        cal.workload_for(workloads, runs, "nope")


BAD = {
    "unknown format": ({"hello": 1}, "unknown format"),
    "no successes": ({"load_summary": {}, "successes": {"count": 0}, "failures": {}}, "no run with successful requests"),
    "incomplete": ({"completed": 3, "output_throughput": 1.0, "median_tpot_ms": 1.0}, "incomplete load-test result"),
    "not JSON": ("{", "not a JSON file"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exits_2_with_why_and_writes_nothing(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, why = BAD[case]
    path = tmp_path / "result.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    target = tmp_path / "calibrated.yaml"
    monkeypatch.setattr(sim_cli, "CALIBRATED", target)
    args = ["simulate", "prod", "--stacks-dir", str(STACKS), "--calibrate", str(path), "--workload", "gemma-9b"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and why in result.output, result.output
    assert not target.exists()


def test_the_cli_writes_the_calibration(
    catalog: Catalog, gemma: Workload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "run.json", vllm_result(catalog, gemma, 4))
    target = tmp_path / "calibrated.yaml"
    monkeypatch.setattr(sim_cli, "CALIBRATED", target)
    result = CliRunner().invoke(main, ["simulate", "prod", "--stacks-dir", str(STACKS), "--calibrate", str(path)])
    assert result.exit_code == 0, result.output
    assert "vllm on l4" in result.output and read_calibrated(target)["vllm"]["l4"].points == 2
