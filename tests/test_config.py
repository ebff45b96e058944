"""The config loader: every shipped stack loads; each bad input yields its exact message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import BASE, ENVIRONMENTS, STACKS, mutate

from infra.config import ConfigError, ProtectionConfig, load_config
from infra.tooling.cli import main

NS = "gke-inference"


def problems(raw: dict[str, Any], secret_keys: frozenset[str] = frozenset(), stack: str = "test") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(raw, stack=stack, secret_keys=secret_keys)
    return str(caught.value).splitlines()


def test_base_config_is_valid() -> None:
    cfg = load_config(BASE, stack="test")
    assert cfg.tpu_pools["serve"].slice.vms == 4
    assert cfg.workloads["big"].fit.fits


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_shipped_stacks_load(env: str) -> None:
    raw = yaml.safe_load((STACKS / f"Pulumi.{env}.yaml").read_text())["config"]
    cfg = load_config(raw, stack=env)
    assert cfg.environment == env
    assert all(w.fit.fits for w in cfg.workloads.values())


BAD_INPUTS: list[tuple[str, str, Any, str]] = [
    (
        "topology vs machine type",
        f"{NS}:tpu_pools.serve.machine_type",
        "ct6e-standard-8t",
        f"{NS}:tpu_pools.serve.machine_type: v6e topology 4x4 is formed by other machine types; expected one of ct6e-standard-4t, got 'ct6e-standard-8t'",
    ),
    (
        "invalid topology",
        f"{NS}:tpu_pools.serve.topology",
        "3x3",
        f"{NS}:tpu_pools.serve.topology: not a v6e slice topology; expected one of 16x16, 1x1, 2x2, 2x4, 4x4, 4x8, 8x16, 8x8, got '3x3'",
    ),
    (
        "node count not a whole slice",
        f"{NS}:tpu_pools.serve.node_count",
        3,
        f"{NS}:tpu_pools.serve.node_count: a v6e 4x4 slice on ct6e-standard-4t is 4 node(s); each node pool holds one whole slice; expected 4, got 3",
    ),
    (
        "multi-host slice in two zones",
        f"{NS}:tpu_pools.serve.zones",
        ["us-east5-a", "us-east5-b"],
        f'{NS}:tpu_pools.serve.zones: a multi-host 4x4 slice lives in exactly one zone; expected exactly one zone, got ["us-east5-a", "us-east5-b"]',
    ),
    (
        "zone without the TPU",
        f"{NS}:tpu_pools.serve.zones",
        ["us-east5-c"],
        f"{NS}:tpu_pools.serve.zones: TPU v6e is not offered in us-east5-c (catalog 2026-11-21); expected zones among us-east5-a, us-east5-b, got 'us-east5-c'",
    ),
    (
        "zone outside the region",
        f"{NS}:tpu_pools.serve.zones",
        ["us-central1-b"],
        f"{NS}:tpu_pools.serve.zones: zone us-central1-b is outside the cluster region us-east5; expected zones of us-east5, got 'us-central1-b'",
    ),
    (
        "multi-host pool autoscaled past one slice",
        f"{NS}:tpu_pools.serve.autoscaling",
        {"min_slices": 0, "max_slices": 2},
        f"{NS}:tpu_pools.serve.autoscaling.max_slices: a multi-host node pool holds exactly one slice; add slices with `slices`; expected 1, got 2",
    ),
    (
        "GPU machine of another family",
        f"{NS}:gpu_pools.l4.machine_type",
        "a2-highgpu-1g",
        f"{NS}:gpu_pools.l4.machine_type: a2-highgpu-1g carries nvidia-tesla-a100; expected one of g2-standard-12, g2-standard-16, g2-standard-24, g2-standard-32, g2-standard-4, g2-standard-48, g2-standard-8, g2-standard-96, got 'a2-highgpu-1g'",
    ),
    (
        "GPU on a machine that takes none",
        f"{NS}:gpu_pools.l4.machine_type",
        "n2-standard-8",
        f"{NS}:gpu_pools.l4.machine_type: n2-standard-8 takes no nvidia-l4; expected one of g2-standard-12, g2-standard-16, g2-standard-24, g2-standard-32, g2-standard-4, g2-standard-48, g2-standard-8, g2-standard-96, got 'n2-standard-8'",
    ),
    (
        "GPU zone that does not offer it",
        f"{NS}:gpu_pools.l4.zones",
        ["us-east5-c"],
        f"{NS}:gpu_pools.l4.zones: nvidia-l4 is not offered in us-east5-c (catalog 2026-11-21); expected zones among us-east5-a, us-east5-b, got 'us-east5-c'",
    ),
    (
        "infeasible shape",
        f"{NS}:tpu_pools.serve.topology",
        "2x4",
        f"{NS}:workloads.big.tpu_pools: llama-3.1-405b (int8 weights, int8 KV, 80 x 2048 tokens) needs 421.2 GiB but a slice of tpu_pools.serve (v6e 2x4) provides 238.4 GiB; expected a slice with >= 421.2 GiB (smallest v6e that fits: 4x4), got 'v6e 2x4'",
    ),
    (
        "unknown top-level key",
        f"{NS}:tpu_pool",
        {},
        f"{NS}:tpu_pool: unknown key (did you mean 'tpu_pools'?); expected one of budget, cluster, compute_classes, environment, gateway, gpu_pools, hf_token, iap_client_secret, model_storage, monitoring, network, observability, platform_stack, protection, tpu_pools, workloads, got 'tpu_pool'",
    ),
    (
        "auto_upgrade off on a channel",
        f"{NS}:cluster.auto_upgrade",
        False,
        f"{NS}:cluster.auto_upgrade: GKE rejects auto_upgrade=false on release channel REGULAR; use a maintenance exclusion; expected true, got false",
    ),
    (
        "no release channel",
        f"{NS}:cluster.release_channel",
        "UNSPECIFIED",
        f"{NS}:cluster.release_channel: new clusters must enrol in a release channel; expected one of RAPID, REGULAR, STABLE, got 'UNSPECIFIED'",
    ),
    (
        "control plane open to the internet",
        f"{NS}:cluster.authorized_networks",
        [{"cidr": "0.0.0.0/0", "name": "all"}],
        f"{NS}:cluster.authorized_networks[0].cidr: opens the control plane to the internet; expected a specific CIDR, got '0.0.0.0/0'",
    ),
    (
        "KMS key in another region",
        f"{NS}:cluster.secrets_encryption_key",
        "projects/p/locations/europe-west4/keyRings/r/cryptoKeys/k",
        f"{NS}:cluster.secrets_encryption_key: key location europe-west4 differs from the resource location; expected a key in us-east5, got 'europe-west4'",
    ),
    (
        "cache zone outside the bucket location",
        f"{NS}:model_storage.anywhere_cache.zones",
        ["us-central1-c"],
        f"{NS}:model_storage.anywhere_cache.zones: zone us-central1-c is not in bucket location US-EAST5; expected zones of us-east5, got 'us-central1-c'",
    ),
    (
        "duplicate cache zone",
        f"{NS}:model_storage.anywhere_cache.zones",
        ["us-east5-a", "us-east5-a"],
        f'{NS}:model_storage.anywhere_cache.zones: one cache per zone per bucket; expected distinct zones, got ["us-east5-a", "us-east5-a"]',
    ),
    (
        "cache zone with no pool",
        f"{NS}:model_storage.anywhere_cache.zones",
        ["us-east5-c"],
        f"{NS}:model_storage.anywhere_cache.zones: no accelerator pool runs in us-east5-c; the cache serves same-zone clients only; expected one of us-east5-a, us-east5-b, got 'us-east5-c'",
    ),
    (
        "HPA min above max",
        f"{NS}:workloads.small.autoscaling",
        {"min_replicas": 5, "max_replicas": 1},
        f"{NS}:workloads.small.autoscaling.min_replicas: min_replicas 5 > max_replicas 1; expected <= 1, got 5",
    ),
    (
        "unknown engine",
        f"{NS}:workloads.small.engine",
        "tgi",
        f"{NS}:workloads.small.engine: not an allowed value; expected jetstream-pathways, vllm or triton, got 'tgi'",
    ),
    (
        "reference to a missing pool",
        f"{NS}:workloads.big.tpu_pools",
        ["nope"],
        f"{NS}:workloads.big.tpu_pools: no TPU pool named nope; expected one of serve, got 'nope'",
    ),
    (
        "replica larger than its GPU pool",
        f"{NS}:workloads.small.gpus",
        3,
        f"{NS}:workloads.small.gpus: one replica needs 3 g2-standard-8 node(s) but gpu_pools.l4 scales to 1; expected <= 1 GPUs, or a larger pool, got 3",
    ),
    (
        "more replicas than slices",
        f"{NS}:workloads.big.replicas",
        2,
        f"{NS}:workloads.big.replicas: 2 replica(s) x 1 slice(s) of tpu_pools.serve each need 2 slices, but the pool holds 1; "
        "expected <= 1 replica(s), or more slices in tpu_pools.serve, got 2",
    ),
    (
        "missing region",
        "gcp:region",
        None,
        "gcp:region: invalid or missing region; expected a GCP region such as us-east5, got nothing",
    ),
    (
        "unknown environment",
        f"{NS}:environment",
        "qa",
        f"{NS}:environment: not an allowed value; expected dev, staging or prod, got 'qa'",
    ),
    (
        "zero slices",
        f"{NS}:tpu_pools.serve.slices",
        0,
        f"{NS}:tpu_pools.serve.slices: input should be greater than or equal to 1; expected a number >= 1, got 0",
    ),
    (
        "overlapping ranges",
        f"{NS}:network.services_cidr",
        "10.0.8.0/24",
        f"{NS}:network.subnet_cidr: overlaps network.services_cidr (10.0.8.0/24); expected disjoint ranges, got '10.0.0.0/20'",
    ),
    (
        "reservation without a name",
        f"{NS}:tpu_pools.serve.provisioning",
        "reservation",
        f"{NS}:tpu_pools.serve.reservation: provisioning 'reservation' needs a reservation name; expected a reservation name, got nothing",
    ),
    (
        "JetStream with a GPU pool",
        f"{NS}:workloads.big.gpu_pool",
        "l4",
        f"{NS}:workloads.big.gpu_pool: gpu_pool applies to vllm and triton on a GPU pool; this jetstream-pathways "
        "workload would ignore it; expected the key removed, got 'l4'",
    ),
    (
        "disaggregated on a shape without a MaxText server",
        f"{NS}:workloads.big",
        {**BASE[f"{NS}:workloads"]["big"], "mode": "disaggregated", "tpu_pools": ["serve", "serve"]},
        f"{NS}:workloads.big.tpu_pools: MaxText's disaggregated server runs prefill and decode on one slice each of fixed shapes; expected slices of v6e with 8 chips, v5e with 16 chips, got 'v6e 4x4 (16 chips)'",
    ),
    (
        "HPA max above the slice inventory",
        f"{NS}:workloads.big.autoscaling",
        {"min_replicas": 1, "max_replicas": 2},
        f"{NS}:workloads.big.autoscaling.max_replicas: 2 replica(s) x 1 slice(s) of tpu_pools.serve each need 2 slices, "
        "but the pool holds 1; expected <= 1 replica(s), or more slices in tpu_pools.serve, got 2",
    ),
    (
        "prefill as long as the context",
        f"{NS}:workloads.big.max_prefill_length",
        2048,
        f"{NS}:workloads.big.max_prefill_length: prefill must leave room for output tokens; expected < max_context (2048), got 2048",
    ),
    (
        "HPA metric of another engine",
        f"{NS}:workloads.big.autoscaling",
        {"metric": "vllm:num_requests_waiting"},
        f"{NS}:workloads.big.autoscaling.metric: not a metric jetstream-pathways exports for an HPA (the latest value of a gauge, or a counter's rate); expected one of jetstream_generate_backlog_size, jetstream_prefill_backlog_size, jetstream_slots_used_percentage, jetstream_transfer_backlog_size, got 'vllm:num_requests_waiting'",
    ),
    (
        "JetStream model without a MaxText tokenizer",
        f"{NS}:workloads.big.model",
        "gemma-2-9b",
        f"{NS}:workloads.big.model: no MaxText config and tokenizer for this model in the catalog; expected a model with maxtext_name and maxtext_tokenizer, got 'gemma-2-9b'",
    ),
    (
        "vLLM tensor parallelism wider than the VM",
        f"{NS}:workloads.small.tensor_parallel",
        2,
        f"{NS}:workloads.small.tensor_parallel: tensor parallelism stays inside one g2-standard-8 (1 GPUs) and divides the replica's 1 GPUs; expected a divisor of 1 that is <= 1, got 2",
    ),
    (
        "vLLM model that fits on no GPU count",
        f"{NS}:workloads.small",
        {**BASE[f"{NS}:workloads"]["small"], "model": "llama-3.1-405b", "max_num_seqs": 4096},
        f"{NS}:workloads.small.gpu_pool: llama-3.1-405b (bf16 weights, bf16 KV, 4096 x 4096 tokens) does not fit on up to 64 l4 GPUs of gpu_pools.l4; expected a pool of a GPU that holds it (the smallest: 64x b200), got 'l4'",
    ),
    (
        "vLLM context beyond the model's",
        f"{NS}:workloads.small",
        {
            **BASE[f"{NS}:workloads"]["small"],
            "max_context": 131073,
            "max_num_seqs": 1,
            "weight_dtype": "fp8",
            "kv_cache_dtype": "fp8",
        },
        f"{NS}:workloads.small.max_context: llama-3.1-8b was trained for 131072 tokens; expected <= 131072, got 131073",
    ),
    (
        "batch Job with an HPA",
        f"{NS}:workloads.small",
        {**BASE[f"{NS}:workloads"]["small"], "batch": {}, "autoscaling": {"max_replicas": 1}},
        f"{NS}:workloads.small.autoscaling: autoscaling applies to real-time servers (a batch Job has no HPA: "
        "batch.parallelism); this autoscaled vllm batch workload would ignore it; expected the key removed, got "
        '{"max_replicas": 1, "metric": null, "min_replicas": 1, "target": null}',
    ),
    (
        "vLLM HPA metric the engine no longer exports",
        f"{NS}:workloads.small.autoscaling",
        {"metric": "vllm:gpu_cache_usage_perc"},
        f"{NS}:workloads.small.autoscaling.metric: not a metric vllm exports for an HPA (the latest value of a gauge, or a counter's rate); expected one of vllm:kv_cache_usage_perc, vllm:num_requests_running, vllm:num_requests_waiting, got 'vllm:gpu_cache_usage_perc'",
    ),
    (
        "GPU server HPA max above the pool's nodes",
        f"{NS}:workloads.small.autoscaling",
        {"max_replicas": 2},
        f"{NS}:workloads.small.autoscaling.max_replicas: 2 replica(s) of 1 GPU(s) need 2 g2-standard-8 node(s), but gpu_pools.l4 scales to 1; expected <= 1 replica(s), or a larger pool, got 2",
    ),
    (
        "int8 weights on vLLM",
        f"{NS}:workloads.small.weight_dtype",
        "int8",
        f"{NS}:workloads.small.weight_dtype: vllm quantizes int8 only from a pre-quantized checkpoint, which the catalog does not describe; expected bf16 or fp8 (vLLM quantizes fp8 on load), got 'int8'",
    ),
    (
        "vLLM on a multi-host TPU slice",
        f"{NS}:workloads.small",
        {"engine": "vllm", "model": "llama-3.1-8b", "tpu_pools": ["serve"], "max_context": 4096, "max_num_seqs": 4},
        f"{NS}:workloads.small.tpu_pools: vLLM serves a replica from one TPU VM; 4x4 spans 4 VMs; expected a single-host slice, got 'serve'",
    ),
    (
        "gateway route to a missing workload",
        f"{NS}:gateway",
        {"enabled": True, "routes": ["nope"]},
        f"{NS}:gateway.routes[0]: no workload named nope; expected one of big, small, got 'nope'",
    ),
    (
        "gateway class that is not a regional one",
        f"{NS}:gateway.gateway_class",
        "gke-l7-global-external-managed",
        f"{NS}:gateway.gateway_class: not an allowed value; expected gke-l7-rilb or gke-l7-regional-external-managed, got 'gke-l7-global-external-managed'",
    ),
    (
        "gateway timeout floor under ten seconds",
        f"{NS}:gateway.min_timeout_s",
        5,
        f"{NS}:gateway.min_timeout_s: input should be greater than or equal to 10; expected a number >= 10, got 5",
    ),
    (
        "gateway decode rate of zero",
        f"{NS}:gateway.tokens_per_second",
        0,
        f"{NS}:gateway.tokens_per_second: input should be greater than 0; expected a number > 0.0, got 0",
    ),
]


@pytest.mark.parametrize(("case", "path", "value", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_message(case: str, path: str, value: Any, message: str) -> None:
    assert problems(mutate(BASE, path, value)) == [message]


def test_gateway_prerequisites_are_all_reported() -> None:
    raw = mutate(BASE, f"{NS}:gateway", {"enabled": True})
    raw = mutate(raw, f"{NS}:network", {"proxy_only_cidr": None})
    raw = mutate(raw, f"{NS}:cluster.gateway_api_channel", "CHANNEL_DISABLED")
    assert problems(raw) == [
        f"{NS}:cluster.gateway_api_channel: the Inference Gateway needs the Gateway API; expected CHANNEL_STANDARD, got 'CHANNEL_DISABLED'",
        f"{NS}:network.proxy_only_cidr: gke-l7-rilb needs an ACTIVE REGIONAL_MANAGED_PROXY subnet in us-east5; expected a CIDR, got nothing",
    ]


def shared_pathways_pool(vllm: dict[str, Any] | None = None) -> dict[str, Any]:
    """BASE plus a single-host pool `one` that a jetstream-pathways workload and a vLLM-on-TPU server both name."""
    raw = mutate(BASE, f"{NS}:tpu_pools.one", {"topology": "2x4", "zones": ["us-east5-b"], "slices": 2})
    pathways = {"engine": "jetstream-pathways", "model": "llama-3.1-8b", "tpu_pools": ["one"], "per_device_batch_size": 4}
    raw = mutate(raw, f"{NS}:workloads.js", pathways)
    return mutate(raw, f"{NS}:workloads.vt", vllm or {"engine": "vllm", "model": "llama-3.1-8b", "tpu_pools": ["one"]})


def test_a_pathways_pool_is_not_shared_with_a_workload_identity_server(tmp_path: Path) -> None:
    """Pathways pools run with Workload Identity off; a vLLM server reading weights as its own Kubernetes account
    cannot share one: refused with the key, the value and what is expected, exit 2, nothing planned."""
    message = (
        f"{NS}:workloads.vt.tpu_pools: tpu_pools.one serves jetstream-pathways workload js: its nodes run with Workload "
        "Identity off as the Pathways node account, and vllm needs its own Kubernetes account's Workload Identity; "
        "expected a TPU pool no jetstream-pathways workload uses, got 'one'"
    )
    assert problems(shared_pathways_pool()) == [message]
    # The same server on a pool of its own loads.
    alone = mutate(shared_pathways_pool(), f"{NS}:tpu_pools.two", {"topology": "2x4", "zones": ["us-east5-b"]})
    load_config(mutate(alone, f"{NS}:workloads.vt.tpu_pools", ["two"]), stack="test")
    stack = tmp_path / "Pulumi.shared.yaml"
    stack.write_text(yaml.safe_dump({"config": shared_pathways_pool()}))
    result = CliRunner().invoke(main, ["plan", "--stack-file", str(stack), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.stderr
    assert not (tmp_path / "out").exists()


def test_every_problem_is_reported_at_once() -> None:
    raw = mutate(BASE, f"{NS}:tpu_pools.serve.topolgy", "4x4")
    raw = mutate(raw, f"{NS}:tpu_pools.serve.topology", None)
    raw = mutate(raw, f"{NS}:cluster.hpa_profil", "NONE")
    raw = mutate(raw, "gcp:project", "X")
    assert problems(raw) == [
        "gcp:project: invalid or missing project id; expected a GCP project id, got 'X'",
        f"{NS}:cluster.hpa_profil: unknown key (did you mean 'hpa_profile'?); expected one of authorized_networks, auto_upgrade, existing, gateway_api_channel, hpa_profile, http_load_balancing, ip_endpoint, maintenance_window, name, node_auto_provisioning, release_channel, secrets_encryption_key, system_pool, got 'hpa_profil'",
        f"{NS}:tpu_pools.serve.topolgy: unknown key (did you mean 'topology'?); expected one of autoscaling, generation, machine_type, node_count, provisioning, reservation, slices, topology, zones, got 'topolgy'",
        f"{NS}:tpu_pools.serve.topology: required key is missing; expected a value, got nothing",
    ]


def test_cross_field_problems_are_all_reported_at_once() -> None:
    raw = mutate(BASE, f"{NS}:cluster.auto_upgrade", False)
    raw = mutate(raw, f"{NS}:tpu_pools.serve.node_count", 2)
    raw = mutate(raw, f"{NS}:gpu_pools.l4.zones", ["us-east5-c"])
    assert [line.split(":")[1].split(" ")[0] for line in problems(raw)] == [
        "cluster.auto_upgrade",
        "gpu_pools.l4.zones",
        "tpu_pools.serve.node_count",
    ]


def test_secret_in_plaintext_is_refused_and_never_echoed() -> None:
    raw = mutate(BASE, f"{NS}:hf_token", "hf_leaky_value")
    lines = problems(raw)
    assert lines == [
        f"{NS}:hf_token: a secret stored in plaintext (set it with `pulumi config set --secret`); expected a secure: value, got plaintext"
    ]
    assert "hf_leaky_value" not in "\n".join(lines)


def test_secret_config_is_accepted() -> None:
    cfg = load_config(mutate(BASE, f"{NS}:hf_token", "[secret]"), stack="t", secret_keys={f"{NS}:hf_token"})
    assert cfg.has_hf_token


def test_engine_json_strings_parse_like_stack_yaml() -> None:
    """The engine passes structured values as JSON strings; the result must be the same config."""
    import json

    as_engine = {k: v if isinstance(v, str) else json.dumps(v) for k, v in BASE.items()}
    assert load_config(as_engine, stack="t").sections == load_config(BASE, stack="t").sections


@pytest.mark.parametrize(("env", "on"), [("dev", False), ("staging", False), ("prod", True)])
def test_protection_defaults_follow_environment(env: str, on: bool) -> None:
    cfg = load_config(mutate(BASE, f"{NS}:environment", env), stack=env)
    assert cfg.protection == ProtectionConfig(protect=on, deletion_protection=on, retain_on_delete=on)


def test_cache_zones_default_to_accelerator_zones() -> None:
    cfg = load_config(BASE, stack="t")
    assert cfg.cache_zones == ("us-east5-a", "us-east5-b")


def test_program_reads_config_the_way_the_language_host_passes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """`pulumi up` hands the program its config as PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS."""
    import contextvars
    import json

    from infra.config import read_pulumi_config

    engine = {k: v if isinstance(v, str) else json.dumps(v) for k, v in BASE.items()} | {f"{NS}:hf_token": "hf_x"}
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(engine))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps([f"{NS}:hf_token"]))
    values, secret = contextvars.Context().run(read_pulumi_config)
    assert secret == {f"{NS}:hf_token"}
    cfg = load_config(values, stack="t", secret_keys=secret)
    assert cfg.sections == load_config(BASE | {f"{NS}:hf_token": "x"}, stack="t", secret_keys=secret).sections.model_copy(
        update={"hf_token": "hf_x"}
    )
