"""vLLM and Triton under mocks: what every rendered model server must agree on, derived from config, catalog and sizing.

The shipped stacks cover one GPU (dev llama-8b), one-node tensor parallelism (staging gemma-9b), vLLM on a TPU
slice (dev llama-8b-tpu), Triton (staging llama-8b-triton) and batch (dev llama-8b-batch); one test stack built
from BASE adds a multi-node TP x PP LeaderWorkerSet on H100, a Local SSD GPU pool, Hyperdisk ML weights and a
Hugging Face token (the download Jobs).
"""

from __future__ import annotations

import copy
import json
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import BASE, STACKS, mutate
from google.protobuf import json_format
from test_config import problems
from test_platform import load_stack, of_type
from test_serving import HPA, LWS, SERVICE, containers, lws_of, named, templates

from components.identity import workload_principal
from components.model_server import GCSFUSE_CACHE_VOLUME, GCSFUSE_DRIVER
from infra import model_serving, report, sizing
from infra.catalog import Catalog
from infra.config import ConfigError, StackConfig, Workload, load_config
from infra.plan import FAKE_PROJECT_NUMBER, SECRET, Capture, CapturingMonitor, FakeCloud, StackFile, execute
from infra.render import write

Items = list[dict[str, Any]]
NS = "gke-inference"

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

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
SECRET_TYPE = "kubernetes:core/v1:Secret"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
POD_MONITORING = "kubernetes:monitoring.googleapis.com/v1:PodMonitoring"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NAMESPACE_TYPE = "kubernetes:core/v1:Namespace"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
DATA_SOURCE = "kubernetes:datalayer.gke.io/v1:GCPDataSource"
CHART = "kubernetes:helm.sh/v4:Chart"
BUCKET_OBJECT = "gcp:storage/bucketObject:BucketObject"
BUCKET_IAM = "gcp:storage/bucketIAMMember:BucketIAMMember"
WRITE_ROLES = ("roles/storage.objectUser", "roles/storage.objectCreator", "roles/storage.objectAdmin", "roles/storage.admin")
READER_ROLE = "roles/storage.objectViewer"
DOWNLOADER = "model-downloader"
TOKEN = "hf_PLAINTEXTtoken123"
PLAINTEXT_REFUSED = f"{NS}:hf_token: a secret stored in plaintext (set it with `pulumi config set --secret`); expected a secure: value, got plaintext"
"""The loader's message for a plaintext token (as test_config.test_secret_in_plaintext_is_refused_and_never_echoed)."""
SHIPPED = ("dev", "staging", "prod")
TEST_STACK = "t"


# ------------------------------------------------------------------------------------------------ the test stack


def build_test_stack() -> dict[str, Any]:
    """BASE without JetStream (so only a multi-node vLLM replica needs the LWS chart), with: `wide` spanning two
    a3-highgpu-8g nodes of an H100 pool in us-east5's H100 zone; `small` on an L4 pool with Local SSD; `disk` loading
    from Hyperdisk ML; an hf_token (the download Jobs)."""
    raw = copy.deepcopy(BASE)
    raw.pop(f"{NS}:tpu_pools")
    raw[f"{NS}:workloads"].pop("big")
    raw[f"{NS}:gpu_pools"]["l4"]["local_ssd_count"] = 1
    raw[f"{NS}:gpu_pools"]["h100"] = {
        "gpu": "h100-80gb",
        "machine_type": "a3-highgpu-8g",
        "zones": ["us-east5-a"],
        "max_nodes_per_zone": 2,
    }
    raw[f"{NS}:workloads"]["wide"] = {
        "engine": "vllm",
        "model": "llama-3.1-70b",
        "gpu_pool": "h100",
        "gpus": 16,
        "max_context": 8192,
        "max_num_seqs": 64,
        "autoscaling": {"min_replicas": 1, "max_replicas": 1},
    }
    raw[f"{NS}:workloads"]["disk"] = {
        "engine": "vllm",
        "model": "llama-3.1-8b",
        "gpu_pool": "l4",
        "max_context": 4096,
        "max_num_seqs": 4,
        "model_loading": "hyperdisk-ml",
    }
    raw[f"{NS}:hf_token"] = TOKEN
    return raw


TEST_STACK_FILE = StackFile(stack=TEST_STACK, config=build_test_stack(), secret_keys=frozenset({f"{NS}:hf_token"}))


# ------------------------------------------------------------------------------------------------ capture


class RawObjectMonitor(CapturingMonitor):
    """Also keeps each BucketObject's registered inputs as the engine receives them: the Triton model repository the
    stack writes (its `source` asset's text) is what Triton will read."""

    def __init__(self) -> None:
        super().__init__(FakeCloud())
        self.raw: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == BUCKET_OBJECT:
            self.raw[request.name] = json_format.MessageToDict(request.object)
        return response


def unwrap(value: Any) -> Any:
    """A wire secret {sig, value} as its value."""
    return value["value"] if isinstance(value, dict) and "value" in value else value


@dataclass
class Stack:
    cfg: StackConfig
    items: Items
    objects: dict[str, dict[str, Any]]
    """BucketObject resource name -> unmasked inputs."""
    summary: dict[str, Any]


def capture(stack_file: StackFile) -> tuple[Capture, Stack]:
    cfg = stack_file.load()
    monitor = execute(stack_file, monitor=RawObjectMonitor())
    assert isinstance(monitor, RawObjectMonitor)
    resources = sorted(monitor.captured, key=lambda r: (r.parent is not None, r.urn))
    items = [r.as_json() for r in resources]
    objects = {name: {k: unwrap(v) for k, v in inputs.items()} for name, inputs in monitor.raw.items()}
    return Capture(stack_file.stack, cfg, resources), Stack(cfg, items, objects, report.summarize(cfg, items))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Stack]:
    """The test stack, captured and written to disk as `plan` writes it."""
    cap, stack = capture(TEST_STACK_FILE)
    out = tmp_path_factory.mktemp("plan")
    write(cap, out)
    return out / TEST_STACK, stack


@pytest.fixture(scope="module")
def stacks(written: tuple[Path, Stack]) -> dict[str, Stack]:
    out = {env: capture(StackFile.read(STACKS / f"Pulumi.{env}.yaml"))[1] for env in SHIPPED}
    return {**out, TEST_STACK: written[1]}


def servers(cfg: StackConfig) -> dict[str, Workload]:
    return {n: w for n, w in cfg.workloads.items() if w.config.engine in ("vllm", "triton")}


def configs() -> dict[str, StackConfig]:
    return {**{env: load_stack(env) for env in SHIPPED}, TEST_STACK: TEST_STACK_FILE.load()}


CONFIGS = configs()
CASES = [(env, name) for env, cfg in CONFIGS.items() for name in servers(cfg)]
ONLINE = [(env, name) for env, name in CASES if CONFIGS[env].workloads[name].config.batch is None]
SCALED = [(env, name) for env, name in ONLINE if CONFIGS[env].workloads[name].config.autoscaling]


# ------------------------------------------------------------------------------------------------ helpers


def nodes_of(w: Workload) -> int:
    """VMs one replica spans: whole GPU VMs, or the one VM of a single-host TPU slice."""
    return 1 if w.tpu_pools else math.ceil(w.gpus / w.gpu_pool.gpus_per_vm)  # type: ignore[union-attr]


def pod_templates(items: Items, w: Workload) -> dict[str, dict[str, Any]]:
    """Role -> pod template of the workload's object: the Deployment's, the Job's, or the LWS leader's and worker's."""
    key = (w.config.namespace, w.name)
    if w.config.batch:
        return {"batch": named(items, JOB)[key]["spec"]["template"]}
    if nodes_of(w) > 1:
        leader, worker = templates(lws_of(items)[w.name])
        return {"leader": leader, "worker": worker}
    return {"server": named(items, DEPLOYMENT)[key]["spec"]["template"]}


def serving_template(items: Items, w: Workload) -> dict[str, Any]:
    """The pod that answers requests: the Deployment's, or the LWS leader."""
    t = pod_templates(items, w)
    return t.get("server") or t["leader"]


def engine_container(template: dict[str, Any], w: Workload) -> dict[str, Any]:
    return containers(template)["triton" if w.config.engine == "triton" else "vllm"]


def vllm_argv(c: dict[str, Any]) -> list[str]:
    """`vllm <sub> ...` as the container runs it: its command + args, or the `vllm` part of an `sh -c` script."""
    argv = [*(c.get("command") or []), *(c.get("args") or [])]
    if argv[:2] == ["sh", "-c"]:
        tokens = shlex.split(argv[2])
        return next((tokens[i:] for i, t in enumerate(tokens) if t == "vllm"), [])
    return argv if argv[:1] == ["vllm"] else []


def options(argv: list[str]) -> dict[str, str]:
    """`--key=value` options of an argv by key (each at most once)."""
    out: dict[str, str] = {}
    for arg in argv:
        if arg.startswith("--"):
            key, _, value = arg.partition("=")
            assert key not in out, f"{key} given twice"
            out[key] = value
    return out


def port_names(c: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in c.get("ports", [])}


def volume(template: dict[str, Any], name: str) -> dict[str, Any]:
    return {v["name"]: v for v in template["spec"]["volumes"]}[name]


def mount(c: dict[str, Any], name: str) -> dict[str, Any]:
    return {m["name"]: m for m in c["volumeMounts"]}[name]


def mount_options(v: dict[str, Any]) -> list[str]:
    return v["csi"]["volumeAttributes"]["mountOptions"].split(",")


def model_json(stack: Stack, w: Workload) -> dict[str, Any]:
    (content,) = (
        o["source"]["text"] for o in stack.objects.values() if o["name"] == f"triton/{w.name}/{w.model.name}/1/model.json"
    )
    return json.loads(content)


def expected_startup(catalog: Catalog, w: Workload) -> sizing.StartupEstimate:
    """Weight bytes over the workload's loading path, read by every node of a replica in parallel."""
    return sizing.startup_estimate(
        catalog.loading,
        path=w.config.model_loading,
        engine=w.config.engine,
        weight_bytes=sizing.weight_bytes(w.model, w.config.weight_dtype),
        hosts=nodes_of(w),
    )


def principal(cfg: StackConfig, namespace: str, ksa: str) -> str:
    return workload_principal(FAKE_PROJECT_NUMBER, cfg.project, namespace, ksa)


def selects(selector: dict[str, str], template: dict[str, Any]) -> bool:
    return selector.items() <= template["metadata"]["labels"].items()


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
    PodMonitoring select the leader only; the LWS waits for the LWS chart; the HPA scales the LWS."""
    stack = stacks[TEST_STACK]
    w = stack.cfg.workloads["wide"]
    assert w.gpus == 16 and w.fit.fits
    lws_item = next(r for r in of_type(stack.items, LWS) if r["inputs"]["metadata"]["name"] == w.name)
    lws = lws_item["inputs"]
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == nodes_of(w) > 1
    leader, worker = templates(lws)
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
    assert chart["urn"] in lws_item["dependencies"]
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
        prefix, gauge, kind = metric.split("|")
        assert (prefix, kind) == ("prometheus.googleapis.com", "gauge")
        assert gauge == w.metric and gauge in catalog.metrics[w.config.engine].gauges


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


def test_hyperdisk_weights_on_a_multi_zone_pool_are_refused() -> None:
    """components/hyperdisk.py: 'The disk is zonal: the loader allows this path only for pools in one zone'. The
    StorageClass is pinned to the pool's first zone, so the pool's other zones can never run the server."""
    raw = mutate(BASE, f"{NS}:gpu_pools.l4.zones", ["us-east5-a", "us-east5-b"])
    raw = mutate(raw, f"{NS}:workloads.small.model_loading", "hyperdisk-ml")
    with pytest.raises(ConfigError, match=r"workloads\.small\.model_loading: a Hyperdisk ML volume is zonal"):
        load_config(raw, stack="t")


# ------------------------------------------------------------------------------------------------ 5. model loading


@pytest.mark.parametrize(("env", "name"), [(e, n) for e, n in CASES if CONFIGS[e].workloads[n].config.model_loading == "gcsfuse"])
def test_weights_come_read_only_from_the_model_bucket(stacks: dict[str, Stack], env: str, name: str) -> None:
    """GCS FUSE: read-only volume and mount of the stack's bucket limited to hf/<hf_id>; the sidecar requested; fsGroup
    set; the file cache (parallel downloads) in RAM on TPU, on Local SSD ephemeral storage where the GPU pool has it,
    none on a GPU pool without (it would fill the boot disk); a cache is bounded by the weights of one node."""
    stack = stacks[env]
    w = stack.cfg.workloads[name]
    for template in pod_templates(stack.items, w).values():
        weights = volume(template, "weights")
        assert weights["csi"]["driver"] == GCSFUSE_DRIVER and weights["csi"]["readOnly"] is True
        assert weights["csi"]["volumeAttributes"]["bucketName"] == stack.cfg.bucket_name
        assert f"only-dir=hf/{w.model.hf_id}" in mount_options(weights)
        m = mount(engine_container(template, w), "weights")
        assert m["readOnly"] is True
        argv = vllm_argv(containers(template)["vllm"]) if w.config.engine == "vllm" else []
        if argv:  # what vLLM loads is what is mounted (`serve MODEL`, `run-batch --model=MODEL`)
            assert (argv[2] if argv[1] == "serve" else options(argv)["--model"]) == m["mountPath"]
        assert template["metadata"]["annotations"]["gke-gcsfuse/volumes"] == "true"
        assert template["spec"]["securityContext"]["fsGroup"]
        local_ssd = w.gpu_pool is not None and w.gpu_pool.config.local_ssd_count > 0
        names = {v["name"] for v in template["spec"]["volumes"]}
        if not (w.tpu_pools or local_ssd):
            assert GCSFUSE_CACHE_VOLUME not in names
            assert not any(o.startswith("file-cache:") for o in mount_options(weights))
            continue
        cache = volume(template, GCSFUSE_CACHE_VOLUME)["emptyDir"]
        assert cache.get("medium") == ("Memory" if w.tpu_pools else None)
        per_node = sizing.weight_bytes(w.model, w.config.weight_dtype) / model_serving.layout(w).nodes
        assert int(cache["sizeLimit"].removesuffix("Mi")) * sizing.MIB >= per_node
        assert f"file-cache:max-size-mb:{cache['sizeLimit'].removesuffix('Mi')}" in mount_options(weights)


def test_both_file_cache_media_are_exercised() -> None:
    """The cases above include a TPU server, a GPU pool without Local SSD and one with it."""
    kinds = {
        "tpu" if w.tpu_pools else ("ssd" if w.gpu_pool and w.gpu_pool.config.local_ssd_count else "ram")
        for cfg in CONFIGS.values()
        for w in servers(cfg).values()
        if w.config.model_loading == "gcsfuse"
    }
    assert kinds == {"tpu", "ssd", "ram"}


def test_hyperdisk_ml_weights_are_populated_from_the_bucket(stacks: dict[str, Stack]) -> None:
    """`disk`: a hyperdisk-ml StorageClass in the pool's zone, a GCPDataSource reading gs://<bucket>/hf/<hf_id>/ as the
    workload's account, a ReadOnlyMany claim of at least the weight bytes populated from it, mounted read-only."""
    stack = stacks[TEST_STACK]
    w = stack.cfg.workloads["disk"]
    assert w.gpu_pool is not None
    template = serving_template(stack.items, w)
    claim_name = volume(template, "weights")["persistentVolumeClaim"]["claimName"]
    assert volume(template, "weights")["persistentVolumeClaim"]["readOnly"] is True
    assert mount(containers(template)["vllm"], "weights")["readOnly"] is True
    assert GCSFUSE_CACHE_VOLUME not in {v["name"] for v in template["spec"]["volumes"]}
    claim = named(stack.items, PVC)[(w.config.namespace, claim_name)]["spec"]
    assert claim["accessModes"] == ["ReadOnlyMany"]
    size = claim["resources"]["requests"]["storage"]
    assert size.endswith("Gi") and int(size[:-2]) * sizing.GIB >= sizing.weight_bytes(w.model, w.config.weight_dtype)
    ref = claim["dataSourceRef"]
    source = named(stack.items, DATA_SOURCE)[(w.config.namespace, ref["name"])]
    assert (ref["apiGroup"], ref["kind"]) == (source["apiVersion"].split("/")[0], source["kind"])
    assert source["spec"]["cloudStorage"] == {
        "serviceAccountName": w.service_account,
        "uri": f"gs://{stack.cfg.bucket_name}/hf/{w.model.hf_id}/",
    }
    storage_class = named(stack.items, STORAGE_CLASS)[("", claim["storageClassName"])]
    assert storage_class["parameters"]["type"] == "hyperdisk-ml"
    ((term,),) = ([t["matchLabelExpressions"] for t in storage_class["allowedTopologies"]],)
    assert term[0]["values"] == list(w.gpu_pool.zones) and len(w.gpu_pool.zones) == 1


# ------------------------------------------------------------------------------------------------ 6. startup


@pytest.mark.parametrize(("env", "name"), ONLINE)
def test_startup_budget_is_the_load_path_estimate(stacks: dict[str, Stack], catalog: Catalog, env: str, name: str) -> None:
    """Every serving pod's startup probe allows the catalog estimate over the workload's loading path and nodes; the
    summary reports the same budget and path."""
    stack = stacks[env]
    w = stack.cfg.workloads[name]
    want = expected_startup(catalog, w)
    assert want == model_serving.startup(catalog, w)
    for template in pod_templates(stack.items, w).values():
        probe = engine_container(template, w)["startupProbe"]
        assert probe["periodSeconds"] == sizing.PROBE_PERIOD_SECONDS
        assert probe["failureThreshold"] * probe["periodSeconds"] == want.budget_s >= want.predicted_s
    (summary,) = (s for s in stack.summary["workloads"] if s["name"] == name)
    assert summary["startup"]["probe_budget_s"] == probe["failureThreshold"] * probe["periodSeconds"]
    assert summary["startup"]["path"] == w.config.model_loading


def test_summary_json_on_disk_reports_the_manifests_budget(written: tuple[Path, Stack]) -> None:
    """summary.json as `plan` writes it: probe_budget_s = failureThreshold x periodSeconds of the written manifests."""
    folder, stack = written
    summary = json.loads((folder / "summary.json").read_text())
    budgets = {s["name"]: s["startup"]["probe_budget_s"] for s in summary["workloads"]}
    for name, w in servers(stack.cfg).items():
        probe = engine_container(serving_template(stack.items, w), w)["startupProbe"]
        assert budgets[name] == probe["failureThreshold"] * probe["periodSeconds"]


# ------------------------------------------------------------------------------------------------ 7. batch


def test_batch_job_reads_and_writes_its_own_prefix(stacks: dict[str, Stack]) -> None:
    """dev llama-8b-batch: an Indexed Job (completions = parallelism) with the config's retries and deadline, `vllm
    run-batch` over per-index files in the results mount, which is a read-write FUSE mount of batch/<workload>; no
    probes, no Service, HPA, PodMonitoring or PDB; a NetworkPolicy admitting nothing; and the Job's account may write
    exactly that prefix."""
    stack = stacks["dev"]
    w = stack.cfg.workloads["llama-8b-batch"]
    batch = w.config.batch
    assert batch is not None
    key = (w.config.namespace, w.name)
    job = named(stack.items, JOB)[key]["spec"]
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == batch.parallelism
    assert job["backoffLimit"] == batch.backoff_limit
    assert job["activeDeadlineSeconds"] == math.ceil(batch.deadline_hours * 3600)
    template = job["template"]
    assert template["spec"]["restartPolicy"] == "Never"
    c = containers(template)["vllm"]
    assert c["command"] == ["vllm", "run-batch"]
    assert not {"startupProbe", "readinessProbe", "livenessProbe"} & set(c)
    results = mount(c, "results")
    assert not results.get("readOnly")
    opts = options(vllm_argv(c))
    for flag, file in (("--input-file", batch.input), ("--output-file", batch.output)):
        assert opts[flag] == f"{results['mountPath']}/{file.replace('{index}', '$(JOB_COMPLETION_INDEX)')}"
    assert opts["--model"] == mount(c, "weights")["mountPath"]
    vol = volume(template, "results")["csi"]
    assert vol["driver"] == GCSFUSE_DRIVER and vol["readOnly"] is False
    assert vol["volumeAttributes"]["bucketName"] == stack.cfg.bucket_name
    assert f"only-dir=batch/{w.name}" in vol["volumeAttributes"]["mountOptions"].split(",")
    for type_ in (SERVICE, HPA, POD_MONITORING, PDB):
        assert key not in named(stack.items, type_), type_
    policy = named(stack.items, NETPOL)[key]["spec"]
    assert selects(policy["podSelector"]["matchLabels"], template)
    assert policy["policyTypes"] == ["Ingress"] and not policy.get("ingress")
    member = principal(stack.cfg, w.config.namespace, w.service_account)
    writes = [
        r["inputs"]
        for r in of_type(stack.items, BUCKET_IAM)
        if r["inputs"]["member"] == member and r["inputs"]["role"] in WRITE_ROLES
    ]
    assert writes, f"no IAM role lets {w.service_account} write batch/{w.name}/ of {stack.cfg.bucket_name}"
    for grant in writes:
        assert grant["bucket"] == stack.cfg.bucket_name
        assert grant["condition"]["expression"] == (
            f'resource.name.startsWith("projects/_/buckets/{stack.cfg.bucket_name}/objects/batch/{w.name}/")'
        )


# ------------------------------------------------------------------------------------------------ 8. the HF token


def test_plaintext_token_is_refused() -> None:
    assert problems(mutate(BASE, f"{NS}:hf_token", TOKEN)) == [PLAINTEXT_REFUSED]


def test_token_is_never_written_in_plaintext(written: tuple[Path, Stack]) -> None:
    """The program is handed the token in clear (as the engine hands it decrypted secret config); no file `plan`
    writes contains it, and the Secret keeps its shape with the value masked."""
    folder, stack = written
    assert TOKEN in TEST_STACK_FILE.engine_config().values()
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files and all(TOKEN not in p.read_text() for p in files)
    assert all(TOKEN not in json.dumps(r) for r in stack.items)
    namespaces = {w.config.namespace for w in servers(stack.cfg).values()}
    secrets = named(stack.items, SECRET_TYPE)
    for namespace in namespaces:
        secret = secrets[(namespace, "hf-token")]
        assert secret["stringData"] == {"token": SECRET}


def test_download_jobs_mount_the_token_and_alone_write_the_weights(stacks: dict[str, Stack]) -> None:
    """One download Job per model a namespace serves, run as model-downloader, writing where the servers read
    (hf/<hf_id>); the token is a read-only secret file, never an environment variable; model-downloader is the only
    unconditional writer of the model bucket, and every serving account reads it only."""
    stack = stacks[TEST_STACK]
    cfg = stack.cfg
    jobs = {k: v for k, v in named(stack.items, JOB).items() if k[1].startswith("download-")}
    by_namespace: dict[str, set[str]] = {}
    for w in servers(cfg).values():
        by_namespace.setdefault(w.config.namespace, set()).add(w.model.hf_id)
    assert {(ns, len(ids)) for ns, ids in by_namespace.items()} == {
        (ns, sum(1 for k in jobs if k[0] == ns)) for ns in by_namespace
    }
    written_dirs = set()
    for (namespace, _), job in jobs.items():
        spec = job["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] == DOWNLOADER
        assert (namespace, DOWNLOADER) in named(stack.items, SERVICE_ACCOUNT)
        (c,) = spec["containers"]
        token = next(v for v in spec["volumes"] if v.get("secret"))
        assert token["secret"]["secretName"] == "hf-token"
        assert mount(c, token["name"])["readOnly"] is True
        for env in c.get("env", []):
            assert "valueFrom" not in env and "TOKEN" not in env["name"].upper()
        bucket = next(v for v in spec["volumes"] if v.get("csi"))
        assert bucket["csi"]["volumeAttributes"]["bucketName"] == cfg.bucket_name
        argv = shlex.split(c["args"][0])
        local_dir = argv[argv.index("--local-dir") + 1]
        root = mount(c, bucket["name"])["mountPath"]
        assert local_dir.startswith(f"{root}/")
        hf_id = argv[argv.index("download") + 1]
        assert local_dir == f"{root}/hf/{hf_id}"
        written_dirs.add((namespace, hf_id))
    assert written_dirs == {(ns, i) for ns, ids in by_namespace.items() for i in ids}
    grants = [r["inputs"] for r in of_type(stack.items, BUCKET_IAM) if r["inputs"]["bucket"] == cfg.bucket_name]
    unconditional_writers = {g["member"] for g in grants if g["role"] in WRITE_ROLES and not g.get("condition")}
    assert unconditional_writers == {principal(cfg, ns, DOWNLOADER) for ns in by_namespace}
    assert {g["role"] for g in grants if g["member"] == principal(cfg, "inference", DOWNLOADER)} == {"roles/storage.objectUser"}
    for w in servers(cfg).values():
        roles = {g["role"] for g in grants if g["member"] == principal(cfg, w.config.namespace, w.service_account)}
        assert roles == {READER_ROLE}, w.name


# ------------------------------------------------------------------------------------------------ 9. security


@pytest.mark.parametrize(("env", "name"), CASES)
def test_every_server_pod_is_restricted_and_guaranteed(stacks: dict[str, Stack], env: str, name: str) -> None:
    """Non-root, read-only root, no escalation, no capabilities, RuntimeDefault seccomp, no API token, the workload's
    own account; requests = limits for CPU, memory and the accelerator; /dev/shm in RAM with a size limit; a PDB
    (servers) and a NetworkPolicy select the pods; the namespace enforces Pod Security `restricted`."""
    stack = stacks[env]
    w = stack.cfg.workloads[name]
    namespace = w.config.namespace
    accelerator = "google.com/tpu" if w.tpu_pools else "nvidia.com/gpu"
    for template in pod_templates(stack.items, w).values():
        spec = template["spec"]
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["securityContext"]["runAsUser"] >= 10000
        assert spec["automountServiceAccountToken"] is False
        assert spec["serviceAccountName"] == w.service_account
        assert (namespace, w.service_account) in named(stack.items, SERVICE_ACCOUNT)
        c = engine_container(template, w)
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert c["resources"]["requests"] == c["resources"]["limits"]
        assert {"cpu", "memory", accelerator} <= set(c["resources"]["limits"])
        shm = volume(template, {m["mountPath"]: m["name"] for m in c["volumeMounts"]}["/dev/shm"])["emptyDir"]
        assert shm["medium"] == "Memory" and shm["sizeLimit"]
        if w.config.batch is None:
            assert selects(named(stack.items, PDB)[(namespace, w.name)]["spec"]["selector"]["matchLabels"], template)
        assert selects(named(stack.items, NETPOL)[(namespace, w.name)]["spec"]["podSelector"]["matchLabels"], template)
    ns = named(stack.items, NAMESPACE_TYPE)[("", namespace)]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


# ------------------------------------------------------------------------------------------------ 10. Triton


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
