"""Inputs the program would ignore or mangle (issue #16 part 3): each rule with one change to BASE that fires it, and
one that does not. Exit 2 with the key named and nothing registered is tested once for the CLI at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import BASE, mutate

from infra.config import ConfigError, WorkloadConfig, load_config
from infra.config.checks.applicability import WORKLOAD_FIELDS
from infra.tooling.cli import main

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


# ------------------------------------------------------------------------------------------------ 2-4. names, paths, regions

ROOMY = mutate(BASE, f"{NS}:gpu_pools.l4.max_nodes_per_zone", 8)
"""BASE with room in the L4 pool for a second workload (gemma-2-9b needs two L4s) or parallel batch pods."""
EPP_WORKLOAD = {"engine": "vllm", "model": "gemma-2-9b", "gpu_pool": "l4", "max_context": 4096, "max_num_seqs": 4}


def gateway(**keys: Any) -> dict[str, Any]:
    return mutate(ROOMY, f"{NS}:gateway", {"enabled": True, **keys})


BAD_NAMES: list[tuple[str, dict[str, Any], str]] = [
    (
        "gs:// URL as a checkpoint",
        mutate(BASE, f"{W}.big.checkpoint", "gs://acme-test-1-dev-models/maxtext/llama/int8"),
        f"{W}.big.checkpoint: a URL, where an object path inside the model bucket is read (the stack adds "
        "gs://<bucket>/); expected an object path in the model bucket, e.g. 'maxtext/llama-3.1-405b/int8', got "
        "'gs://acme-test-1-dev-models/maxtext/llama/int8'",
    ),
    (
        "checkpoint climbing out of its folder",
        mutate(BASE, f"{W}.big.checkpoint", "maxtext/../other"),
        f"{W}.big.checkpoint: an empty, '.' or '..' segment in an object path; expected an object path in the model "
        "bucket, e.g. 'maxtext/llama-3.1-405b/int8', got 'maxtext/../other'",
    ),
    (
        "batch output as a gs:// URL",
        mutate(BASE, f"{W}.small.batch", {"output": "gs://elsewhere/out.jsonl"}),
        f"{W}.small.batch.output: a URL, where an object path inside the model bucket is read (the stack adds "
        "gs://<bucket>/) (the Job reads and writes batch/small/ only); expected a file name under batch/small/, e.g. "
        "'output-{index}.jsonl', got 'gs://elsewhere/out.jsonl'",
    ),
    (
        "parallel batch pods writing one file",
        mutate(ROOMY, f"{W}.small.batch", {"parallelism": 2, "output": "out.jsonl"}),
        f"{W}.small.batch.output: 2 pods would all write the same results file; expected a file name with {{index}} "
        "(each pod's completion index), got 'out.jsonl'",
    ),
    (
        "URL as the gateway hostname",
        gateway(hostname="https://api.example.com"),
        f"{NS}:gateway.hostname: a URL, not a hostname; expected a DNS name such as api.example.com or *.example.com "
        "(Gateway API Hostname), got 'https://api.example.com'",
    ),
    (
        "hostname with a port",
        gateway(hostname="api.example.com:443"),
        f"{NS}:gateway.hostname: a hostname carries no port or path; expected a DNS name such as api.example.com or "
        "*.example.com (Gateway API Hostname), got 'api.example.com:443'",
    ),
    (
        "hostname in capitals",
        gateway(hostname="API.example.com"),
        f"{NS}:gateway.hostname: Gateway API hostnames are lowercase; expected a DNS name such as api.example.com or "
        "*.example.com (Gateway API Hostname), got 'API.example.com'",
    ),
    (
        "IP address as the hostname",
        gateway(hostname="10.0.0.7"),
        f"{NS}:gateway.hostname: Gateway API hostnames are DNS names, not IP addresses; expected a DNS name such as "
        "api.example.com or *.example.com (Gateway API Hostname), got '10.0.0.7'",
    ),
    (
        "wildcard in the middle",
        gateway(hostname="api.*.example.com"),
        f"{NS}:gateway.hostname: not an RFC 1123 DNS name; expected a DNS name such as api.example.com or "
        "*.example.com (Gateway API Hostname), got 'api.*.example.com'",
    ),
    (
        "global certificate on a regional gateway",
        gateway(tls={"certificate": "projects/acme-test-1/locations/global/certificates/api"}),
        f"{NS}:gateway.tls.certificate: a gke-l7-rilb gateway is regional: it uses certificates of its own region, not "
        "global; expected a Certificate Manager certificate name, or projects/P/locations/us-east5/certificates/NAME, "
        "got 'projects/acme-test-1/locations/global/certificates/api'",
    ),
    (
        "certificate given as a URL",
        gateway(tls={"certificate": "https://certificatemanager.googleapis.com/v1/projects/p/locations/us-east5/certificates/c"}),
        f"{NS}:gateway.tls.certificate: not a Certificate Manager certificate name or resource name; expected a "
        "Certificate Manager certificate name, or projects/P/locations/us-east5/certificates/NAME, got "
        "'https://certificatemanager.googleapis.com/v1/projects/p/locations/us-east5/certificates/c'",
    ),
    (
        "bucket name as a gs:// URL",
        mutate(BASE, f"{NS}:model_storage.bucket_name", "gs://models"),
        f"{NS}:model_storage.bucket_name: a URL, not a bucket name; expected the bucket's name without gs://, got 'gs://models'",
    ),
    (
        "bucket name too long for its scratch bucket",
        mutate(BASE, f"{NS}:model_storage.bucket_name", "m" * 60),
        f"{NS}:model_storage.bucket_name: the Pathways scratch bucket {'m' * 60}-scratch would be longer than GCS' 63 "
        f"characters; expected at most 55 characters, got '{'m' * 60}'",
    ),
    (
        "workload in kube-system",
        mutate(BASE, f"{W}.small.namespace", "kube-system"),
        f"{W}.small.namespace: kube-system is a namespace the cluster owns: the stack would create or relabel it (Pod "
        "Security, gateway routes) and delete it on destroy; expected a namespace of your own, not default, kube-*, "
        "gke-*, gmp-public, custom-metrics, gmp-system, inference-gateway, lws-system, got 'kube-system'",
    ),
    (
        "workload in a gke- namespace",
        mutate(BASE, f"{W}.small.namespace", "gke-managed-x"),
        f"{W}.small.namespace: gke-managed-x is a namespace the cluster owns: the stack would create or relabel it (Pod "
        "Security, gateway routes) and delete it on destroy; expected a namespace of your own, not default, kube-*, "
        "gke-*, gmp-public, custom-metrics, gmp-system, inference-gateway, lws-system, got 'gke-managed-x'",
    ),
    (
        "workload in the gateway's namespace",
        mutate(BASE, f"{W}.small.namespace", "inference-gateway"),
        f"{W}.small.namespace: inference-gateway is the Inference Gateway's namespace: the stack would create or relabel "
        "it (Pod Security, gateway routes) and delete it on destroy; expected a namespace of your own, not default, "
        "kube-*, gke-*, gmp-public, custom-metrics, gmp-system, inference-gateway, lws-system, got "
        "'inference-gateway'",
    ),
    (
        "workload in the LWS controller's namespace",
        mutate(BASE, f"{W}.big.namespace", "lws-system"),
        f"{W}.big.namespace: lws-system is the LeaderWorkerSet controller's namespace: the stack would create or relabel "
        "it (Pod Security, gateway routes) and delete it on destroy; expected a namespace of your own, not default, "
        "kube-*, gke-*, gmp-public, custom-metrics, gmp-system, inference-gateway, lws-system, got "
        "'lws-system'",
    ),
    (
        "workload named like another's endpoint picker",
        mutate(gateway(routes=["small", "small-epp"]), f"{W}.small-epp", EPP_WORKLOAD),
        f"{W}.small-epp: small-epp is also the name of Deployment, NetworkPolicy, PodDisruptionBudget, PodMonitoring, "
        "Service, ServiceAccount of the endpoint picker of workload small in namespace inference: one would overwrite "
        "the other; expected a name no other workload's objects use (not <workload>-epp, <workload>-<objective>, "
        "model-downloader, ...), got 'small-epp'",
    ),
    (
        "objectives of two workloads joining alike",
        mutate(
            mutate(gateway(routes=["small", "small-a"]), f"{W}.small.objectives", {"a-b": 1}),
            f"{W}.small-a",
            {**EPP_WORKLOAD, "objectives": {"b": 2}},
        ),
        f"{W}.small-a.objectives.b: small-a-b is also the name of InferenceObjective of objective a-b of workload small "
        "in namespace inference: one would overwrite the other; expected a name no other workload's objects use (not "
        "<workload>-epp, <workload>-<objective>, model-downloader, ...), got 'small-a-b'",
    ),
    (
        "namespace and workload joining into one binding name",
        mutate(
            mutate(ROOMY, f"{W}.small.namespace", "team-x"),
            f"{W}.x-small",
            {**EPP_WORKLOAD, "namespace": "team"},
        ),
        f"{W}.x-small: namespace team and workload x-small join into the bucket binding name team-x-small, as "
        "workload small in its namespace does; expected a workload or namespace name that keeps <namespace>-<workload> "
        "unique, got 'x-small'",
    ),
    (
        "existing cluster in another region",
        mutate(
            mutate(BASE, f"{NS}:cluster.existing", {"name": "c", "location": "europe-west4"}),
            f"{NS}:network.existing",
            {"network": "n", "subnetwork": "s", "pods_range_name": "p", "services_range_name": "v"},
        ),
        f"{NS}:cluster.existing.location: the stack's pools, bucket, subnets and gateway are in us-east5; expected "
        "us-east5 or one of its zones, got 'europe-west4'",
    ),
]


@pytest.mark.parametrize(("case", "raw", "message"), BAD_NAMES, ids=[c[0] for c in BAD_NAMES])
def test_a_name_path_or_location_of_the_wrong_kind_is_refused(case: str, raw: dict[str, Any], message: str) -> None:
    assert problems(raw) == [message]


def test_a_workload_named_like_the_weights_downloader_is_refused() -> None:
    raw = mutate(mutate(ROOMY, f"{W}.model-downloader", EPP_WORKLOAD), f"{NS}:hf_token", "[secret]")
    with pytest.raises(ConfigError) as caught:
        load_config(raw, stack="test", secret_keys={f"{NS}:hf_token"})
    assert str(caught.value).splitlines() == [
        f"{W}.model-downloader: model-downloader is also the name of ServiceAccount of the weights download in inference "
        "in namespace inference: one would overwrite the other; expected a name no other workload's objects use (not "
        "<workload>-epp, <workload>-<objective>, model-downloader, ...), got 'model-downloader'"
    ]
    # Without the token there is no download, and the name is free.
    loads(mutate(raw, f"{NS}:hf_token", None))


GOOD_NAMES: list[tuple[str, dict[str, Any]]] = [
    ("checkpoint as an object path", mutate(BASE, f"{W}.big.checkpoint", "maxtext/llama-3.1-405b/int8/")),
    ("parallel batch pods with {index}", mutate(ROOMY, f"{W}.small.batch", {"parallelism": 2})),
    ("wildcard hostname", gateway(hostname="*.example.com")),
    ("bare certificate name", gateway(tls={"certificate": "api-cert"})),
    (
        "regional certificate resource name",
        gateway(tls={"certificate": "projects/acme-test-1/locations/us-east5/certificates/api"}),
    ),
    ("bucket name of 55 characters", mutate(BASE, f"{NS}:model_storage.bucket_name", "m" * 55)),
    ("a namespace of one's own", mutate(BASE, f"{W}.small.namespace", "serving")),
    ("a workload named -epp with no picker (no gateway)", mutate(ROOMY, f"{W}.small-epp", EPP_WORKLOAD)),
    ("a -epp name in another namespace", mutate(gateway(), f"{W}.small-epp", {**EPP_WORKLOAD, "namespace": "other"})),
    (
        "existing cluster in a zone of the region",
        mutate(
            mutate(BASE, f"{NS}:cluster.existing", {"name": "c", "location": "us-east5-a"}),
            f"{NS}:network.existing",
            {"network": "n", "subnetwork": "s", "pods_range_name": "p", "services_range_name": "v"},
        ),
    ),
]


@pytest.mark.parametrize(("case", "raw"), GOOD_NAMES, ids=[c[0] for c in GOOD_NAMES])
def test_a_name_path_or_location_of_the_right_kind_is_accepted(case: str, raw: dict[str, Any]) -> None:
    loads(raw)


# ------------------------------------------------------------------------------------------------ 5. derived numbers

BAD_NUMBERS: list[tuple[str, dict[str, Any], str]] = [
    (
        "gateway decode rate so slow the timeout passes the load balancer's ceiling",
        gateway(tokens_per_second=0.01),
        f"{NS}:gateway.tokens_per_second: workload small's GCPBackendPolicy timeoutSec would be 4096 tokens / 0.01 "
        "tokens/s = 409600 s, above the 86400 s Google's load balancers allow for a request; expected >= 0.0474 "
        "tokens/s, got 0.01",
    ),
    (
        "scrape interval of zero",
        mutate(BASE, f"{NS}:observability.scrape_interval", "0s"),
        f"{NS}:observability.scrape_interval: string should match pattern '^[1-9]\\d*(s|m)$'; expected a string "
        "matching ^[1-9]\\d*(s|m)$, got '0s'",
    ),
    (
        "HPA target below a milli-unit",
        mutate(BASE, f"{W}.small.autoscaling", {"target": 0.0001}),
        f"{W}.small.autoscaling.target: the HPA's averageValue would be the quantity 0; expected a target >= 0.001, got 0.0001",
    ),
    (
        "HPA target finer than a milli-unit",
        mutate(BASE, f"{W}.small.autoscaling", {"target": 2.0005}),
        f"{W}.small.autoscaling.target: a Kubernetes quantity keeps milli-units: the HPA would hold 2001m, not 2.0005; "
        "expected a multiple of 0.001, got 2.0005",
    ),
    (
        "KV-cache share target above 1",
        mutate(BASE, f"{W}.small.autoscaling", {"metric": "vllm:kv_cache_usage_perc", "target": 80}),
        f"{W}.small.autoscaling.target: vllm:kv_cache_usage_perc is a share from 0 to 1: the HPA would never scale up; "
        "expected a target <= 1, got 80.0",
    ),
    (
        "picker CPU below a millicore",
        gateway(picker={"cpu": 0.0001, "memory_gib": 2}),
        f"{NS}:gateway.picker.cpu: the picker's CPU request is a whole number of millicores; 0.0001 CPU would be 0m; "
        "expected a multiple of 0.001, at least 0.001, got 0.0001",
    ),
    (
        "soft delete shorter than GCS allows",
        mutate(BASE, f"{NS}:model_storage.soft_delete_days", 3),
        f"{NS}:model_storage.soft_delete_days: GCS keeps soft-deleted objects for 7 to 90 days, or not at all; 3 days "
        "is 259200 s, below the API's 604800 s; expected 0, or 7 to 90, got 3",
    ),
]


@pytest.mark.parametrize(("case", "raw", "message"), BAD_NUMBERS, ids=[c[0] for c in BAD_NUMBERS])
def test_a_derived_number_beyond_its_fields_bound_is_refused(case: str, raw: dict[str, Any], message: str) -> None:
    assert problems(raw) == [message]


GOOD_NUMBERS: list[tuple[str, dict[str, Any]]] = [
    ("a slow but bounded decode rate", gateway(tokens_per_second=0.05)),
    ("a one-second scrape interval", mutate(BASE, f"{NS}:observability.scrape_interval", "1s")),
    ("a milli-unit HPA target", mutate(BASE, f"{W}.small.autoscaling", {"target": 0.5})),
    ("a KV-cache share target", mutate(BASE, f"{W}.small.autoscaling", {"metric": "vllm:kv_cache_usage_perc", "target": 0.8})),
    ("a picker of one millicore", gateway(picker={"cpu": 0.001, "memory_gib": 2})),
    ("soft delete off", mutate(BASE, f"{NS}:model_storage.soft_delete_days", 0)),
    ("soft delete for a week", mutate(BASE, f"{NS}:model_storage.soft_delete_days", 7)),
]


@pytest.mark.parametrize(("case", "raw"), GOOD_NUMBERS, ids=[c[0] for c in GOOD_NUMBERS])
def test_a_derived_number_within_its_fields_bound_is_accepted(case: str, raw: dict[str, Any]) -> None:
    loads(raw)


# ------------------------------------------------------------------------------------------------ 6. justification

# vLLM's llama-3.1-8b on 2 L4s (ratio 2.16 at 4 x 4096 tokens): over the ratio; on 1 L4 (1.19) it is not.
OVER = mutate(ROOMY, f"{W}.small.gpus", 2)
OVER_LINE = (
    f"{W}.small.justification: 2x l4 provides 2.16 x the 20.7 GiB llama-3.1-8b needs, above 2 (half the chips or GPUs "
    "would hold it) with no reason given; expected a justification (throughput, disaggregation or latency), or a "
    "smaller shape, got nothing"
)


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_unjustified_over_provisioning_is_an_error_outside_dev(env: str) -> None:
    raw = mutate(OVER, f"{NS}:environment", env)
    assert problems(raw) == [OVER_LINE]


def test_unjustified_over_provisioning_is_an_advisory_in_dev() -> None:
    cfg = load_config(OVER, stack="test")
    assert cfg.advisories == (OVER_LINE,)


def test_a_justification_makes_over_provisioning_deliberate() -> None:
    cfg = load_config(mutate(mutate(OVER, f"{NS}:environment", "prod"), f"{W}.small.justification", "throughput"), stack="t")
    assert cfg.advisories == ()


def test_a_justification_with_nothing_to_justify_is_refused() -> None:
    assert problems(mutate(BASE, f"{W}.small.justification", "latency")) == [
        f"{W}.small.justification: 1x l4 provides 1.19 x the 18.8 GiB llama-3.1-8b needs, within 2: nothing is "
        "over-provisioned; expected the key removed, got 'latency'"
    ]


def test_disaggregation_justifies_only_a_disaggregated_workload() -> None:
    assert problems(mutate(OVER, f"{W}.small.justification", "disaggregation")) == [
        f"{W}.small.justification: the workload does not serve disaggregated; expected throughput or latency, got "
        "'disaggregation'"
    ]


# ------------------------------------------------------------------------------------------------ exit 2, nothing registered


def test_the_cli_exits_2_naming_the_key_and_writes_nothing(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text(yaml.safe_dump({"config": mutate(BASE, f"{W}.big.gpus", 2)}))
    result = CliRunner().invoke(main, ["plan", "--stack-file", str(stack), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"{W}.big.gpus: gpus applies to" in result.stderr
    assert not (tmp_path / "out").exists()
