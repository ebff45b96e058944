"""Helpers shared by the vLLM and Triton tests (test_vllm_serving.py, test_model_loading.py).

The shipped stacks cover one GPU (dev llama-8b), one-node tensor parallelism (staging gemma-9b), vLLM on a TPU
slice (dev llama-8b-tpu), Triton (staging llama-8b-triton) and batch (dev llama-8b-batch); one test stack built
from BASE adds a multi-node TP x PP LeaderWorkerSet on H100, a Local SSD GPU pool, Hyperdisk ML weights and a
Hugging Face token (the download Jobs). Each is captured once per session by the `written` and `stacks` fixtures
in conftest.py.
"""

from __future__ import annotations

import copy
import json
import math
import shlex
from dataclasses import dataclass
from typing import Any

from conftest import BASE, H100_POOL, WIDE_WORKLOAD
from google.protobuf import json_format
from serving_helpers import containers, lws_of, named, templates
from test_platform import load_stack

from components.identity import workload_principal
from infra import sizing
from infra.catalog import Catalog
from infra.config import StackConfig, Workload
from infra.tooling import report
from infra.tooling.plan import FAKE_PROJECT_NUMBER, Capture, CapturingMonitor, FakeCloud, StackFile, execute_both

Items = list[dict[str, Any]]
NS = "gke-inference"

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
TOKEN = "hf_PLAINTEXTtoken123"
SHIPPED = ("dev", "staging", "prod")
TEST_STACK = "t"


# ------------------------------------------------------------------------------------------------ the test stack


def build_test_stack() -> dict[str, Any]:
    """BASE without JetStream (so only a multi-node vLLM replica needs the LWS chart), with: `wide` spanning two
    a3-highgpu-8g nodes of an H100 pool in us-east5's H100 zone; `small` on an L4 pool with Local SSD (two nodes); `disk`
    loading from Hyperdisk ML; an hf_token (the download Jobs)."""
    raw = copy.deepcopy(BASE)
    raw.pop(f"{NS}:tpu_pools")
    raw[f"{NS}:workloads"].pop("big")
    raw[f"{NS}:gpu_pools"]["l4"]["local_ssd_count"] = 1
    raw[f"{NS}:gpu_pools"]["l4"]["max_nodes_per_zone"] = 2  # `small` and `disk` take one single-L4 node each
    raw[f"{NS}:gpu_pools"]["h100"] = copy.deepcopy(H100_POOL)
    raw[f"{NS}:workloads"]["wide"] = copy.deepcopy(WIDE_WORKLOAD)
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

    def __init__(self, fake: FakeCloud) -> None:
        super().__init__(fake)
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
    monitors = execute_both(stack_file, monitor=RawObjectMonitor)
    assert all(isinstance(m, RawObjectMonitor) for m in monitors)
    resources = sorted((r for m in monitors for r in m.captured), key=lambda r: (r.parent is not None, r.urn))
    items = [r.as_json() for r in resources]
    objects = {name: {k: unwrap(v) for k, v in inputs.items()} for m in monitors for name, inputs in m.raw.items()}  # type: ignore[attr-defined]
    return Capture(stack_file.stack, cfg, resources), Stack(cfg, items, objects, report.summarize(cfg, items))


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
