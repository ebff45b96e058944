"""vLLM and Triton under mocks, the model servers: engine flags against vLLM 0.33.0, the three GPU strategies and the
multi-node LeaderWorkerSet, Service, probe and monitoring ports, capacity at the HPA ceilings and the refused layouts,
and Triton's model repository, each derived from config, catalog and sizing.

How the servers get their weights, their startup budget, batch Jobs, the HF token and pod security are in
test_model_loading.py; the stacks and shared helpers in model_serving_helpers.py, their fixtures in conftest.py.
"""

from __future__ import annotations

import shlex
from typing import Any

import pytest
from conftest import BASE, mutate
from model_serving_helpers import (
    BUCKET_OBJECT,
    CASES,
    CHART,
    CONFIGS,
    DEPLOYMENT,
    NS,
    ONLINE,
    POD_MONITORING,
    SCALED,
    SHIPPED,
    TEST_STACK,
    Stack,
    engine_container,
    model_json,
    mount,
    nodes_of,
    options,
    pod_templates,
    port_names,
    selects,
    servers,
    serving_template,
    vllm_argv,
)
from serving_helpers import HPA, LWS, SERVICE, containers, lws_of, named, templates
from test_config import problems
from test_platform import of_type

from infra import sizing
from infra.catalog import Catalog
from infra.catalog import load as load_catalog
from infra.config import load_config
from infra.config.schema import RATE_TARGET_SHARE
from infra.serving.common import hpa_target
from infra.serving.models import engine_flags
from infra.simulate.capacity import replica_capacity
from infra.simulate.engine import metric_kind

# `vllm serve` / `vllm run-batch` options that exist in vLLM 0.33.0 (read from its wheel: vllm/engine/arg_utils.py for
# the engine arguments, vllm/entrypoints/openai/cli_args.py for the server's --port, and
# vllm/entrypoints/openai/run_batch.py for -i/--input-file and -o/--output-file). `--model` and `--disable-log-stats`
# are EngineArgs fields of every vLLM release (the `model` and `disable_log_stats` keys of Triton's model.json are
# AsyncEngineArgs fields); the rest are the flags the brief verified against 0.33.0.
VLLM_0_33_ENGINE_FLAGS = frozenset(
    {
        "--model",
        "--served-model-name",
        "--max-model-len",
        "--gpu-memory-utilization",
        "--dtype",
        "--kv-cache-dtype",
        "--max-num-seqs",
        "--tensor-parallel-size",
        "--pipeline-parallel-size",
        "--distributed-executor-backend",
        "--quantization",
        "--disable-log-stats",
    }
)
VLLM_0_33_SERVE_FLAGS = VLLM_0_33_ENGINE_FLAGS | {"--port"}
VLLM_0_33_RUN_BATCH_FLAGS = VLLM_0_33_ENGINE_FLAGS | {"--input-file", "--output-file"}
VLLM_0_33_FLAGS = VLLM_0_33_SERVE_FLAGS | VLLM_0_33_RUN_BATCH_FLAGS
VLLM_HEALTH, VLLM_METRICS = "/health", "/metrics"
"""vLLM 0.33's OpenAI server: /health and /metrics on its one HTTP port."""
TRITON_READY, TRITON_LIVE, TRITON_METRICS_PORT = "/v2/health/ready", "/v2/health/live", 8002
"""Triton's HTTP health endpoints and its default metrics port."""


# ------------------------------------------------------------------------------------------------ 1. engine flags


@pytest.mark.parametrize(("env", "name"), CASES)
def test_engine_flags_are_vllm_0_33_options_and_match_the_layout(stacks: dict[str, Stack], env: str, name: str) -> None:
    """Every option of every vLLM command (and every model.json key of Triton) exists in vLLM 0.33.0; TP x PP = the
    replica's GPUs, each pod's accelerator limit = its share; TP shards the heads; max-model-len = max_context <= the
    model's context length; the engine's dtype options follow the config."""
    stack = stacks[env]
    w = stack.cfg.workloads[name]
    c = w.config
    if c.engine == "triton":
        engine = model_json(stack, w)
        flags = {f"--{k.replace('_', '-')}": str(v) for k, v in engine.items()}
        assert set(flags) <= VLLM_0_33_FLAGS, set(flags) - VLLM_0_33_FLAGS
        tp, pp = engine["tensor_parallel_size"], engine.get("pipeline_parallel_size", 1)
        max_len = engine["max_model_len"]
        per_pod = [int(engine_container(serving_template(stack.items, w), w)["resources"]["limits"]["nvidia.com/gpu"])]
        quantization, kv = engine.get("quantization"), engine["kv_cache_dtype"]
    else:
        argvs = [vllm_argv(containers(t)["vllm"]) for t in pod_templates(stack.items, w).values()]
        (argv,) = (a for a in argvs if a)  # the leader serves; LWS workers only join Ray
        allowed = VLLM_0_33_RUN_BATCH_FLAGS if argv[1] == "run-batch" else VLLM_0_33_SERVE_FLAGS
        opts = options(argv)
        assert set(opts) <= allowed, set(opts) - allowed
        tp, pp = int(opts["--tensor-parallel-size"]), int(opts.get("--pipeline-parallel-size", "1"))
        max_len = int(opts["--max-model-len"])
        resource = "google.com/tpu" if w.tpu_pools else "nvidia.com/gpu"
        per_pod = [int(containers(t)["vllm"]["resources"]["limits"][resource]) for t in pod_templates(stack.items, w).values()]
        quantization, kv = opts.get("--quantization"), opts["--kv-cache-dtype"]
        assert float(opts["--gpu-memory-utilization"]) == c.gpu_memory_utilization
        if c.max_num_seqs:
            assert int(opts["--max-num-seqs"]) == c.max_num_seqs
    if w.tpu_pools:
        assert per_pod == [tp] == [w.tpu_pools[0].slice.chips] and pp == 1
    else:
        gpus = c.gpus or w.gpus
        assert gpus == w.gpus
        assert tp * pp == gpus
        assert all(n == gpus // nodes_of(w) for n in per_pod)
        assert per_pod[0] * nodes_of(w) == gpus
    assert w.model.q_heads % tp == 0
    assert w.model.kv_heads % tp == 0 or tp % w.model.kv_heads == 0
    if c.tensor_parallel:
        assert tp == c.tensor_parallel
    assert max_len == c.max_context <= w.model.context_length
    assert (quantization == "fp8") == (c.weight_dtype == "fp8")
    assert (kv == "fp8") == (c.kv_cache_dtype == "fp8")


# The values vLLM 0.33.0 accepts (its wheel): --dtype is vllm/config/model.py's ModelDType, --kv-cache-dtype a
# CacheDType of vllm/config/cache.py (the fp8 and 16-bit ones this repo can ask for); --quantization "fp8" is Fp8Config
# in vllm/model_executor/layers/quantization/__init__.py.
VLLM_0_33_DTYPES = frozenset({"auto", "half", "float16", "bfloat16", "float", "float32"})
VLLM_0_33_KV_CACHE_DTYPES = frozenset({"auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2"})


@pytest.mark.parametrize("weights", ["bf16", "fp8"])
@pytest.mark.parametrize("kv", ["bf16", "fp8"])
def test_engine_flag_values_are_vllm_0_33_choices_and_follow_the_dtypes(weights: str, kv: str) -> None:
    """Each dtype flag's value is one vLLM accepts (an unknown one stops `vllm serve` at argument parsing); fp8 weights
    are quantized by the engine, else the memory the sizing counted (one byte a weight) is not what the pods use."""
    raw = mutate(mutate(BASE, f"{NS}:workloads.small.weight_dtype", weights), f"{NS}:workloads.small.kv_cache_dtype", kv)
    opts = options(engine_flags(load_config(raw, stack="t").workloads["small"]).args())
    assert opts["--dtype"] in VLLM_0_33_DTYPES and opts["--kv-cache-dtype"] in VLLM_0_33_KV_CACHE_DTYPES
    assert opts.get("--quantization") == ("fp8" if weights == "fp8" else None)
    assert (opts["--kv-cache-dtype"] == "fp8") == (kv == "fp8")


# ------------------------------------------------------------------------------------------------ 2. GPU strategies


def test_three_gpu_strategies_are_rendered(stacks: dict[str, Stack]) -> None:
    """One GPU (dev llama-8b: TP 1, a Deployment), one node of TP (staging gemma-9b: TP 2, a Deployment), and TP x PP
    across nodes (the test stack's `wide`: a LeaderWorkerSet, and no Deployment of that name)."""
    for env, name, want_tp, want_nodes in (("dev", "llama-8b", 1, 1), ("staging", "gemma-9b", 2, 1), (TEST_STACK, "wide", 8, 2)):
        stack = stacks[env]
        w = stack.cfg.workloads[name]
        key = (w.config.namespace, name)
        layout = sizing.gpu_parallelism(w.gpus, w.gpu_pool.gpus_per_vm, w.config.tensor_parallel)  # type: ignore[union-attr]
        assert (layout.tensor_parallel, layout.nodes) == (want_tp, want_nodes) == (layout.tensor_parallel, nodes_of(w))
        opts = options(vllm_argv(containers(serving_template(stack.items, w))["vllm"]))
        assert int(opts["--tensor-parallel-size"]) == layout.tensor_parallel
        assert int(opts.get("--pipeline-parallel-size", "1")) == layout.pipeline_parallel
        assert (key in named(stack.items, DEPLOYMENT)) == (layout.nodes == 1)
        assert (name in lws_of(stack.items)) == (layout.nodes > 1)


def test_multi_node_replica_is_an_lws_running_ray(stacks: dict[str, Stack]) -> None:
    """The loader accepts 16 H100s on two a3-highgpu-8g; the LWS group is one pod per node; the leader starts the Ray
    head for the whole group, then `vllm serve` on the Ray backend; workers join the leader; the Service and the
    PodMonitoring select the leader only; the LWS chart is the platform stack's; the HPA scales the LWS."""
    stack = stacks[TEST_STACK]
    w = stack.cfg.workloads["wide"]
    assert w.gpus == 16 and w.fit.fits
    lws_item = next(r for r in of_type(stack.items, LWS) if r["inputs"]["metadata"]["name"] == w.name)
    lws = lws_item["inputs"]
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == nodes_of(w) > 1
    leader, worker = templates(lws)
    # each pod's one argument is a shell script ($(LWS_...) expanded by the kubelet, && and exec by the shell)
    assert [containers(t)["vllm"]["command"] for t in (leader, worker)] == [["sh", "-c"]] * 2
    script = containers(leader)["vllm"]["args"][0]
    ray_start, _, serve = script.partition(" && exec ")
    assert "multi-node-serving.sh leader" in ray_start and "--ray_cluster_size=$(LWS_GROUP_SIZE)" in ray_start
    serve_opts = options(shlex.split(serve))
    assert shlex.split(serve)[:2] == ["vllm", "serve"]
    assert serve_opts["--distributed-executor-backend"] == "ray"
    assert int(serve_opts["--pipeline-parallel-size"]) * int(serve_opts["--tensor-parallel-size"]) == w.gpus
    worker_script = containers(worker)["vllm"]["args"][0]
    assert "multi-node-serving.sh worker" in worker_script and "--ray_address=$(LWS_LEADER_ADDRESS)" in worker_script
    assert "vllm serve" not in worker_script
    service = named(stack.items, SERVICE)[(w.config.namespace, w.name)]["spec"]["selector"]
    monitoring = named(stack.items, POD_MONITORING)[(w.config.namespace, w.name)]["spec"]["selector"]["matchLabels"]
    for selector in (service, monitoring):
        assert selects(selector, leader) and not selects(selector, worker)
    (chart,) = of_type(stack.items, CHART)
    assert (chart["layer"], lws_item["layer"]) == ("platform", "serving")  # the CRD is deployed first, by the platform
    hpa = named(stack.items, HPA)[(w.config.namespace, w.name)]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": lws["apiVersion"], "kind": "LeaderWorkerSet", "name": w.name}
    assert "replicas" not in lws["spec"]


# ------------------------------------------------------------------------------------------------ 3. wiring


@pytest.mark.parametrize(("env", "name"), ONLINE)
def test_service_ports_probes_and_monitoring_agree(stacks: dict[str, Stack], catalog: Catalog, env: str, name: str) -> None:
    """Service selector within the serving pod's labels, each targetPort a port of the engine container (the
    engine's listen flags say the same number); probes on the engine's health paths on a port of that container;
    PodMonitoring selects the pods and scrapes a declared port at /metrics (vLLM: the HTTP port; Triton: 8002);
    the HPA's metric is an adapter name of a catalog gauge of that engine."""
    stack = stacks[env]
    w = stack.cfg.workloads[name]
    key = (w.config.namespace, w.name)
    template = serving_template(stack.items, w)
    c = engine_container(template, w)
    ports = port_names(c)
    service = named(stack.items, SERVICE)[key]["spec"]
    assert service["selector"] and selects(service["selector"], template)
    for port in service["ports"]:
        assert ports[port["targetPort"]] == port["port"]
    if w.config.engine == "triton":
        opts = options(c["args"])
        assert {ports["http"], ports["grpc"], ports["metrics"]} == {
            int(opts["--http-port"]),
            int(opts["--grpc-port"]),
            int(opts["--metrics-port"]),
        }
        assert ports["metrics"] == int(opts["--metrics-port"]) == TRITON_METRICS_PORT
        paths = {"startupProbe": TRITON_READY, "readinessProbe": TRITON_READY, "livenessProbe": TRITON_LIVE}
    else:
        assert int(options(vllm_argv(c))["--port"]) == ports["http"]
        paths = dict.fromkeys(("startupProbe", "readinessProbe", "livenessProbe"), VLLM_HEALTH)
    for kind, path in paths.items():
        get = c[kind]["httpGet"]
        assert get["path"] == path
        assert get["port"] in ports or get["port"] in ports.values()
    monitoring = named(stack.items, POD_MONITORING)[key]["spec"]
    assert selects(monitoring["selector"]["matchLabels"], template)
    (endpoint,) = monitoring["endpoints"]
    assert endpoint["path"] == VLLM_METRICS and endpoint["interval"] == stack.cfg.observability.scrape_interval
    want = "metrics" if w.config.engine == "triton" else service["ports"][0]["targetPort"]
    assert endpoint["port"] == want and endpoint["port"] in ports
    hpa = named(stack.items, HPA).get(key)
    assert (hpa is not None) == (w.config.autoscaling is not None)
    if hpa:
        ((metric,),) = ([m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]],)
        prefix, name, kind = metric.split("|")
        exported = catalog.metrics[w.config.engine]
        # A gauge is averaged as it is, a counter as the adapter's per-second rate: the suffix names which.
        assert (prefix, kind) == ("prometheus.googleapis.com", "gauge" if name in exported.gauges else "counter")
        assert name == w.metric and name in exported.scalable


# ------------------------------------------------------------------------------------------------ 4. capacity


@pytest.mark.parametrize(("env", "name"), SCALED)
def test_hpa_ceiling_fits_the_pool(stacks: dict[str, Stack], env: str, name: str) -> None:
    """The HPA's bounds are the config's; at its ceiling every replica's nodes (or slices) fit in the pool."""
    stack = stacks[env]
    w = stack.cfg.workloads[name]
    auto = w.config.autoscaling
    assert auto is not None
    spec = named(stack.items, HPA)[(w.config.namespace, w.name)]["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (auto.min_replicas, auto.max_replicas)
    if w.tpu_pools:
        assert spec["maxReplicas"] <= w.tpu_pools[0].config.max_slices
    else:
        pool = w.gpu_pool
        assert pool is not None
        assert spec["maxReplicas"] * nodes_of(w) <= pool.config.max_nodes_per_zone * len(pool.zones)


@pytest.mark.parametrize("env", SHIPPED)
def test_shipped_pools_hold_every_server_at_full_scale_together(env: str) -> None:
    """The loader checks each workload against its pool alone; the shipped stacks also fit all of a pool's servers
    at their ceilings at once (GPUs x max replicas <= the pool's GPUs)."""
    cfg = CONFIGS[env]
    for pool in cfg.gpu_pools.values():
        users = [w for w in servers(cfg).values() if w.gpu_pool == pool]
        ceiling = sum(w.gpus * (w.config.autoscaling.max_replicas if w.config.autoscaling else w.config.replicas) for w in users)
        assert ceiling <= pool.config.max_nodes_per_zone * len(pool.zones) * pool.gpus_per_vm, pool.name


TWO_KEY_BAD_INPUTS: list[tuple[str, list[tuple[str, Any]], list[str]]] = [
    (
        "explicit TP that does not divide the heads",
        [
            (f"{NS}:gpu_pools.l4.machine_type", "g2-standard-96"),
            (f"{NS}:workloads.small.gpus", 6),
            (f"{NS}:workloads.small.tensor_parallel", 3),
        ],
        [
            f"{NS}:workloads.small.tensor_parallel: tensor-parallel size 3 does not divide 32 attention heads "
            "(and 8 KV heads, or a multiple of them); expected a divisor of the heads, got 3"
        ],
    ),
    (
        "default TP (the GPUs) that does not divide the heads",
        [(f"{NS}:gpu_pools.l4.machine_type", "g2-standard-96"), (f"{NS}:workloads.small.gpus", 6)],
        [
            f"{NS}:workloads.small.gpus: tensor-parallel size 6 does not divide 32 attention heads "
            "(and 8 KV heads, or a multiple of them); expected a divisor of the heads, got 6"
        ],
    ),
    (
        "batch Job spanning two nodes",
        [(f"{NS}:gpu_pools.l4.max_nodes_per_zone", 2), (f"{NS}:workloads.small.gpus", 2), (f"{NS}:workloads.small.batch", {})],
        [
            f"{NS}:workloads.small.batch: a batch pod runs on one node; 2 GPUs span 2 g2-standard-8 nodes; "
            "expected <= 1 GPUs (fewer max_num_seqs or a shorter max_context), or a larger machine type, got 2"
        ],
    ),
]
"""Bad inputs that need more than one key changed to yield exactly one problem (BASE's L4 pool has one GPU per VM and
one node: any other TP, or a second node, is refused for that first)."""


@pytest.mark.parametrize(("case", "changes", "messages"), TWO_KEY_BAD_INPUTS, ids=[c[0] for c in TWO_KEY_BAD_INPUTS])
def test_model_server_bad_input_message(case: str, changes: list[tuple[str, Any]], messages: list[str]) -> None:
    raw = BASE
    for path, value in changes:
        raw = mutate(raw, path, value)
    assert problems(raw) == messages


# ------------------------------------------------------------------------------------------------ 5. Triton


def test_triton_reads_the_model_repository_the_stack_writes(stacks: dict[str, Stack]) -> None:
    """staging llama-8b-triton: --model-repository = gs://<bucket>/triton/<workload>, holding <model>/config.pbtxt (the
    vLLM backend) and <model>/1/model.json (the engine arguments: the mounted weights, TP = the GPUs), which the
    Deployment waits for."""
    stack = stacks["staging"]
    w = stack.cfg.workloads["llama-8b-triton"]
    repository = f"triton/{w.name}"
    deployment = next(r for r in of_type(stack.items, DEPLOYMENT) if r["inputs"]["metadata"]["name"] == w.name)
    template = deployment["inputs"]["spec"]["template"]
    c = containers(template)["triton"]
    assert options(c["args"])["--model-repository"] == f"gs://{stack.cfg.bucket_name}/{repository}"
    objects = {r["inputs"]["name"]: r for r in of_type(stack.items, BUCKET_OBJECT)}
    config, engine = (objects[f"{repository}/{w.model.name}/{path}"] for path in ("config.pbtxt", "1/model.json"))
    for obj in (config, engine):
        assert obj["inputs"]["bucket"] == stack.cfg.bucket_name
        assert obj["urn"] in deployment["dependencies"]
    (pbtxt,) = (o["source"]["text"] for o in stack.objects.values() if o["name"] == config["inputs"]["name"])
    assert 'backend: "vllm"' in pbtxt
    engine_args = model_json(stack, w)
    assert engine_args["model"] == mount(c, "weights")["mountPath"]
    assert engine_args["tensor_parallel_size"] == w.gpus == int(c["resources"]["limits"]["nvidia.com/gpu"])
    assert engine_args["max_model_len"] == w.config.max_context
    assert engine_args["served_model_name"] == w.model.name


def test_triton_scales_on_a_token_rate_its_vllm_backend_exports(stacks: dict[str, Stack], catalog: Catalog) -> None:
    """The vLLM backend hands every request to vLLM's loop at once, so Triton's pending-request gauge stays near 0;
    its HPA scales on the per-second rate of a token counter the backend exports with REPORT_CUSTOM_METRICS (on in
    config.pbtxt, with vLLM's statistics on in model.json), at the derived share of one replica's decode throughput.
    The simulator reads the same metric as a token rate."""
    stack = stacks["staging"]
    w = stack.cfg.workloads["llama-8b-triton"]
    exported = catalog.metrics["triton"]
    assert "nv_inference_pending_request_count" not in exported.scalable
    assert w.metric in exported.rates
    hpa = named(stack.items, HPA)[(w.config.namespace, w.name)]
    [metric] = hpa["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == f"prometheus.googleapis.com|{w.metric}|counter"
    assert w.config.autoscaling is not None and w.config.autoscaling.target is None
    decode = replica_capacity(catalog, w).decode_tokens_per_s(w.config.max_context // 2)
    target = float(metric["pods"]["target"]["averageValue"])
    assert target == round(RATE_TARGET_SHARE * decode) and 0 < target < decode
    assert metric_kind(w.metric) == "output_tokens_rate"
    (pbtxt,) = (o["source"]["text"] for o in stack.objects.values() if o["name"].endswith(f"{w.model.name}/config.pbtxt"))
    assert 'key: "REPORT_CUSTOM_METRICS", value: { string_value: "true" }' in pbtxt
    assert model_json(stack, w)["disable_log_stats"] is False


TRITON_WORKLOAD = {"engine": "triton", "model": "llama-3.1-8b", "gpu_pool": "l4", "max_context": 4096, "max_num_seqs": 4}


def test_a_configured_target_overrides_the_derived_one() -> None:
    raw = mutate(BASE, f"{NS}:workloads.tr", TRITON_WORKLOAD | {"autoscaling": {"target": 1234}})
    cfg = load_config(mutate(raw, f"{NS}:gpu_pools.l4.max_nodes_per_zone", 2), stack="t")
    assert hpa_target(load_catalog(), cfg.workloads["tr"]) == 1234
