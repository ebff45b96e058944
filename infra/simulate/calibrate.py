"""`gke-inference simulate ENV --calibrate RESULTS`: fit an engine's factors on one accelerator to a load test.

RESULTS is a JSON file, or a folder of them (a load test's output copied from benchmarks/<workload>/<timestamp>/), in
either format:
- inference-perf's per-stage lifecycle report (stage_<n>_lifecycle_metrics.json: load_summary, successes with
  latency.time_per_output_token / time_to_first_token in seconds, throughput.output_tokens_per_sec, prompt_len and
  output_len means); the summary_* and *_prometheus_* files beside it are skipped (read at kubernetes-sigs/
  inference-perf @7de5ef2, inference_perf/reportgen/base.py);
- vLLM's `vllm bench serve --save-result` JSON (model_id, max_concurrency, completed, total_input_tokens,
  total_output_tokens, output_throughput, median_tpot_ms; vllm 0.33.0 vllm/benchmarks/serve.py).

Each run gives two measurements, the median TPOT and the output tokens/s, at its concurrency (the stage's or
--max-concurrency; for an open-loop rate, Little's law: request rate x mean latency) and mean prompt and output
lengths. Their fit (infra.simulate.fit) is written to the catalog's calibrated.yaml under engine -> accelerator, with
the source, the date and the fit's median error; replica_capacity uses it from then on for that accelerator.
"""

from __future__ import annotations

import datetime
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.catalog import CALIBRATED, Catalog, Factors, Metric
from infra.config import Workload
from infra.simulate.capacity import ReplicaCapacity, replica_capacity
from infra.simulate.fit import Measurement, errors, fit_factors


class CalibrationError(ValueError):
    """Input that cannot be calibrated from: the CLI prints it and exits 2."""


@dataclass(frozen=True)
class Run:
    """One load-test run at one load level, reduced to what the capacity model predicts."""

    source: str
    model_id: str | None
    concurrency: int
    prompt_tokens: int
    output_tokens: int
    tpot_ms: float
    output_tokens_per_s: float


def _inference_perf(path: Path, data: dict[str, Any]) -> Run:
    ok = data["successes"]
    load, latency = data["load_summary"], ok["latency"]
    concurrency = load.get("concurrency") or load["achieved_rate"] * latency["request_latency"]["mean"]
    return Run(
        source=str(path),
        model_id=None,
        concurrency=max(1, round(concurrency)),
        prompt_tokens=round(ok["prompt_len"]["mean"]),
        output_tokens=round(ok["output_len"]["mean"]),
        tpot_ms=latency["time_per_output_token"]["median"] * 1e3,
        output_tokens_per_s=ok["throughput"]["output_tokens_per_sec"],
    )


def _vllm_bench(path: Path, data: dict[str, Any]) -> Run:
    done = data["completed"]
    concurrency = data.get("max_concurrency") or data["request_throughput"] * data["mean_e2el_ms"] / 1e3
    return Run(
        source=str(path),
        model_id=data.get("model_id"),
        concurrency=max(1, round(concurrency)),
        prompt_tokens=round(data["total_input_tokens"] / done),
        output_tokens=round(data["total_output_tokens"] / done),
        tpot_ms=data["median_tpot_ms"],
        output_tokens_per_s=data["output_throughput"],
    )


def _run(path: Path) -> Run | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CalibrationError(f"{path}: not a JSON file ({error})") from error
    try:
        if isinstance(data, dict) and {"load_summary", "successes"} <= data.keys():
            if not data["successes"].get("count"):
                return None
            return _inference_perf(path, data)
        if isinstance(data, dict) and {"output_throughput", "median_tpot_ms", "completed"} <= data.keys():
            return _vllm_bench(path, data) if data["completed"] else None
    except (KeyError, TypeError, ZeroDivisionError) as error:
        raise CalibrationError(f"{path}: incomplete load-test result, missing {error}") from error
    raise CalibrationError(
        f"{path}: unknown format: expected an inference-perf stage report (load_summary, successes) "
        "or a `vllm bench serve` result (completed, output_throughput, median_tpot_ms)"
    )


def read_runs(results: Path) -> list[Run]:
    """Every run with successful requests in `results` (a file, or the JSON files of a folder)."""
    if results.is_dir():
        files = [f for f in sorted(results.glob("*.json")) if not f.name.startswith("summary_") and "prometheus" not in f.name]
    elif results.exists():
        files = [results]
    else:
        raise CalibrationError(f"{results}: no such file or folder")
    runs = [r for r in map(_run, files) if r is not None]
    if not runs:
        raise CalibrationError(f"{results}: no run with successful requests to calibrate from")
    return runs


def workload_for(workloads: dict[str, Workload], runs: list[Run], name: str | None) -> Workload:
    """The workload the runs measured: the one named, else the one serving the runs' model, else the only one."""
    if name is not None:
        if name not in workloads:
            raise CalibrationError(f"--workload {name}: not a workload of this environment ({', '.join(sorted(workloads))})")
        return workloads[name]
    ids = {r.model_id for r in runs if r.model_id}
    matching = [w for w in workloads.values() if w.model.hf_id in ids] if ids else list(workloads.values())
    if len(matching) != 1:
        what = f"serving {', '.join(sorted(ids))}" if ids else "in this environment"
        found = ", ".join(sorted(w.name for w in matching)) or "none"
        raise CalibrationError(f"which workload ran the load test? {len(matching)} {what} ({found}): pass --workload")
    return matching[0]


def measurements(catalog: Catalog, workload: Workload, runs: list[Run]) -> list[Measurement]:
    def capacity(factors: Factors) -> ReplicaCapacity:
        return replica_capacity(catalog, workload, factors=factors)

    return [
        Measurement(capacity, r.concurrency, r.prompt_tokens, r.output_tokens, metric, value)
        for r in runs
        for metric, value in _metrics(r)
    ]


def _metrics(run: Run) -> tuple[tuple[Metric, float], ...]:
    return (("tpot_ms", run.tpot_ms), ("output_tokens_per_s", run.output_tokens_per_s))


def accelerator_of(workload: Workload) -> str:
    return workload.gpu_pool.gpu.name if workload.gpu_pool else workload.tpu_pools[0].slice.generation.name


def calibrate(catalog: Catalog, workload: Workload, runs: list[Run], target: Path = CALIBRATED) -> dict[str, Any]:
    """Fit the workload's engine on its accelerator to `runs` and merge the factors into `target`; returns the entry."""
    engine, accelerator = workload.config.engine, accelerator_of(workload)
    start = catalog.throughput.factors(engine, accelerator)
    found = measurements(catalog, workload, runs)
    factors = fit_factors(found, start)
    entry = {
        **{name: round(getattr(factors, name), 4) for name in Factors.model_fields},
        "source": f"load test of workload {workload.name}: {', '.join(sorted({Path(r.source).name for r in runs}))}",
        "date": datetime.date.today().isoformat(),
        "points": len(found),
        "median_error": round(statistics.median(errors(found, factors)), 3),
    }
    existing = yaml.safe_load(target.read_text()) if target.exists() else None
    data = existing or {"engines": {}}
    data["engines"].setdefault(engine, {})[accelerator] = entry
    header = "# Written by `gke-inference simulate ENV --calibrate RESULTS`: engine -> accelerator -> fitted factors.\n"
    target.write_text(header + yaml.safe_dump(data, sort_keys=True))
    return entry
