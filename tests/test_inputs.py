"""Inputs the program would ignore or mangle (issue #16 part 3): each rule with one change to BASE that fires it, and
one that does not. Exit 2 with the key named and nothing registered is tested once for the CLI at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import BASE, mutate

from infra.cli import main
from infra.config import ConfigError, WorkloadConfig, load_config
from infra.config.checks.applicability import WORKLOAD_FIELDS

NS = "gke-inference"
W = f"{NS}:workloads"


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(raw, stack="test")
    return str(caught.value).splitlines()


def loads(raw: dict[str, Any]) -> None:
    load_config(raw, stack="test")


# ------------------------------------------------------------------------------------------------ 1. keys that do not apply


def test_every_workload_field_is_classified() -> None:
    """A new WorkloadConfig field must say which workloads read it, or it could be accepted and ignored."""
    assert set(WORKLOAD_FIELDS) == set(WorkloadConfig.model_fields)


VLLM_TPU = {"engine": "vllm", "model": "llama-3.1-8b", "tpu_pools": ["one"], "max_context": 4096, "max_num_seqs": 4}
TPU_ONE = {"topology": "2x4", "zones": ["us-east5-b"]}


def with_vllm_tpu(**extra: Any) -> dict[str, Any]:
    return mutate(mutate(BASE, f"{NS}:tpu_pools.one", TPU_ONE), f"{W}.vt", {**VLLM_TPU, **extra})


IGNORED_KEYS: list[tuple[str, dict[str, Any], str]] = [
    (
        "gpus on jetstream",
        mutate(BASE, f"{W}.big.gpus", 2),
        f"{W}.big.gpus: gpus applies to vllm and triton on a GPU pool; this jetstream-pathways workload would ignore it; "
        "expected the key removed, got 2",
    ),
    (
        "max_num_seqs on jetstream",
        mutate(BASE, f"{W}.big.max_num_seqs", 8),
        f"{W}.big.max_num_seqs: max_num_seqs applies to vllm and triton (jetstream-pathways: per_device_batch_size); "
        "this jetstream-pathways workload would ignore it; expected the key removed, got 8",
    ),
    (
        "model_loading on jetstream",
        mutate(BASE, f"{W}.big.model_loading", "gcsfuse"),
        f"{W}.big.model_loading: model_loading applies to vllm and triton; this jetstream-pathways workload would ignore "
        "it; expected the key removed, got 'gcsfuse'",
    ),
    (
        "gpu_memory_utilization on jetstream",
        mutate(BASE, f"{W}.big.gpu_memory_utilization", 0.8),
        f"{W}.big.gpu_memory_utilization: gpu_memory_utilization applies to vllm and triton; this jetstream-pathways "
        "workload would ignore it; expected the key removed, got 0.8",
    ),
    (
        "batch on jetstream",
        mutate(BASE, f"{W}.big.batch", {}),
        f"{W}.big.batch: batch applies to vllm (an offline run-batch Job); this jetstream-pathways batch workload would "
        'ignore it; expected the key removed, got {"backoff_limit": 3, "deadline_hours": 12, "input": '
        '"input-{index}.jsonl", "output": "output-{index}.jsonl", "parallelism": 1}',
    ),
    (
        "per_device_batch_size on vllm",
        mutate(BASE, f"{W}.small.per_device_batch_size", 4),
        f"{W}.small.per_device_batch_size: per_device_batch_size applies to jetstream-pathways (vllm and triton: "
        "max_num_seqs); this vllm workload would ignore it; expected the key removed, got 4",
    ),
    (
        "max_prefill_length on vllm",
        mutate(BASE, f"{W}.small.max_prefill_length", 1024),
        f"{W}.small.max_prefill_length: max_prefill_length applies to jetstream-pathways; this vllm workload would "
        "ignore it; expected the key removed, got 1024",
    ),
    (
        "mode on vllm, even the default",
        mutate(BASE, f"{W}.small.mode", "interleaved"),
        f"{W}.small.mode: mode applies to jetstream-pathways (MaxText's disaggregated server); this vllm workload would "
        "ignore it; expected the key removed, got 'interleaved'",
    ),
    (
        "checkpoint on vllm",
        mutate(BASE, f"{W}.small.checkpoint", "maxtext/llama/int8"),
        f"{W}.small.checkpoint: checkpoint applies to jetstream-pathways (vllm and triton read the Hugging Face weights "
        "under hf/); this vllm workload would ignore it; expected the key removed, got 'maxtext/llama/int8'",
    ),
    (
        "tensor_parallel on vllm on TPU",
        with_vllm_tpu(tensor_parallel=4),
        f"{W}.vt.tensor_parallel: tensor_parallel applies to vllm and triton on a GPU pool (on TPU it is the slice's "
        "chips); this vllm on TPU workload would ignore it; expected the key removed, got 4",
    ),
    (
        "gpu_pool beside tpu_pools",
        with_vllm_tpu(gpu_pool="l4"),
        f"{W}.vt.gpu_pool: gpu_pool applies to vllm and triton on a GPU pool; this vllm on TPU workload would ignore it; "
        "expected the key removed, got 'l4'",
    ),
    (
        "tpu_pools on triton",
        mutate(BASE, f"{W}.small", {**VLLM_TPU, "engine": "triton", "tpu_pools": ["serve"]}),
        f"{W}.small.tpu_pools: tpu_pools applies to jetstream-pathways, and vllm on one single-host TPU pool; this triton "
        'workload would ignore it; expected the key removed, got ["serve"]',
    ),
    (
        "replicas beside autoscaling",
        mutate(BASE, f"{W}.small", {**BASE[W]["small"], "replicas": 1, "autoscaling": {"max_replicas": 1}}),
        f"{W}.small.replicas: replicas applies to a fixed-size server (with autoscaling: min_replicas and max_replicas; "
        "batch: batch.parallelism); this autoscaled vllm workload would ignore it; expected the key removed, got 1",
    ),
    (
        "replicas on a batch Job",
        mutate(BASE, f"{W}.small", {**BASE[W]["small"], "replicas": 1, "batch": {}}),
        f"{W}.small.replicas: replicas applies to a fixed-size server (with autoscaling: min_replicas and max_replicas; "
        "batch: batch.parallelism); this vllm batch workload would ignore it; expected the key removed, got 1",
    ),
    (
        "slo_ttft_s without autoscaling",
        mutate(BASE, f"{W}.small.slo_ttft_s", 2),
        f"{W}.small.slo_ttft_s: slo_ttft_s applies to an autoscaled workload (`gke-inference simulate` scores its HPA on "
        "it); this vllm workload would ignore it; expected the key removed, got 2.0",
    ),
    (
        "objectives without a gateway",
        mutate(BASE, f"{W}.small.objectives", {"interactive": 10}),
        f"{W}.small.objectives: objectives applies to a real-time vllm server behind the gateway (its endpoint picker "
        'reads them); this vllm workload would ignore it; expected the key removed, got {"interactive": 10}',
    ),
    (
        "objectives on jetstream behind the gateway",
        mutate(mutate(BASE, f"{W}.big.objectives", {"interactive": 10}), f"{NS}:gateway", {"enabled": True}),
        f"{W}.big.objectives: objectives applies to a real-time vllm server behind the gateway (its endpoint picker "
        'reads them); this jetstream-pathways workload would ignore it; expected the key removed, got {"interactive": 10}',
    ),
    (
        "gateway keys while it is disabled",
        mutate(BASE, f"{NS}:gateway", {"hostname": "api.example.com"}),
        f"{NS}:gateway.hostname: the gateway is disabled (gateway.enabled: false), so nothing reads this key; expected "
        "the key removed, or gateway.enabled: true, got 'api.example.com'",
    ),
    (
        "HTTP listener port beside TLS",
        mutate(BASE, f"{NS}:gateway", {"enabled": True, "tls": {"certificate": "c"}, "listener_port": 8080}),
        f"{NS}:gateway.listener_port: with gateway.tls the one listener is HTTPS on 443; listener_port is the HTTP "
        "listener's port; expected the key removed, or no tls, got 8080",
    ),
    (
        "picker with no vllm behind the gateway",
        mutate(BASE, f"{NS}:gateway", {"enabled": True, "routes": ["big"], "picker": {"cpu": 1, "memory_gib": 2}}),
        f"{NS}:gateway.picker: no vllm server is behind the gateway, so no endpoint picker runs; expected the key "
        'removed, or a vllm server among the routes, got {"cpu": 1.0, "memory_gib": 2.0}',
    ),
    (
        "cache zones while the cache is off",
        mutate(BASE, f"{NS}:model_storage.anywhere_cache", {"enabled": False, "zones": ["us-east5-a"]}),
        f"{NS}:model_storage.anywhere_cache.zones: Anywhere Cache is disabled (anywhere_cache.enabled: false), so nothing "
        'reads this key; expected the key removed, or enabled: true, got ["us-east5-a"]',
    ),
]


@pytest.mark.parametrize(("case", "raw", "message"), IGNORED_KEYS, ids=[c[0] for c in IGNORED_KEYS])
def test_a_key_the_workload_would_ignore_is_refused(case: str, raw: dict[str, Any], message: str) -> None:
    assert problems(raw) == [message]


APPLIED_KEYS: list[tuple[str, dict[str, Any]]] = [
    ("gpus on vllm", mutate(BASE, f"{W}.small.gpus", 1)),
    ("max_prefill_length on jetstream", mutate(BASE, f"{W}.big.max_prefill_length", 1024)),
    ("mode on jetstream", mutate(BASE, f"{W}.big.mode", "interleaved")),
    ("checkpoint on jetstream", mutate(BASE, f"{W}.big.checkpoint", "maxtext/llama-3.1-405b/int8")),
    ("tpu_pools on vllm", with_vllm_tpu()),
    ("tensor_parallel on a GPU pool", mutate(BASE, f"{W}.small.tensor_parallel", 1)),
    ("batch on vllm", mutate(BASE, f"{W}.small.batch", {})),
    ("replicas without autoscaling", mutate(BASE, f"{W}.small.replicas", 1)),
    ("slo_ttft_s with autoscaling", mutate(BASE, f"{W}.small", {**BASE[W]["small"], "slo_ttft_s": 2, "autoscaling": {}})),
    (
        "objectives on an exposed vllm server",
        mutate(mutate(BASE, f"{W}.small.objectives", {"interactive": 10}), f"{NS}:gateway", {"enabled": True}),
    ),
    ("gateway keys while enabled", mutate(BASE, f"{NS}:gateway", {"enabled": True, "hostname": "api.example.com"})),
    ("listener_port without TLS", mutate(BASE, f"{NS}:gateway", {"enabled": True, "listener_port": 8080})),
    (
        "picker with vllm behind the gateway",
        mutate(BASE, f"{NS}:gateway", {"enabled": True, "picker": {"cpu": 1, "memory_gib": 2}}),
    ),
    ("cache zones while the cache is on", mutate(BASE, f"{NS}:model_storage.anywhere_cache", {"zones": ["us-east5-a"]})),
    ("cache off with nothing else", mutate(BASE, f"{NS}:model_storage.anywhere_cache", {"enabled": False})),
]


@pytest.mark.parametrize(("case", "raw"), APPLIED_KEYS, ids=[c[0] for c in APPLIED_KEYS])
def test_a_key_the_workload_reads_is_accepted(case: str, raw: dict[str, Any]) -> None:
    loads(raw)


# ------------------------------------------------------------------------------------------------ exit 2, nothing registered


def test_the_cli_exits_2_naming_the_key_and_writes_nothing(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text(yaml.safe_dump({"config": mutate(BASE, f"{W}.big.gpus", 2)}))
    result = CliRunner().invoke(main, ["plan", "--stack-file", str(stack), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"{W}.big.gpus: gpus applies to" in result.stderr
    assert not (tmp_path / "out").exists()
