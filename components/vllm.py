"""vLLM (seed 003): a real-time OpenAI server, a multi-node server on a LeaderWorkerSet running Ray, or a batch Job.

Single GPU and one-node tensor parallelism are a Deployment; a replica wider than one VM is an LWS group
(one pod per node, Ray across them, the leader serves: vLLM's multi-node-serving.sh, as GKE's
llm-multihost-gpus sample runs it); offline inference is an Indexed Job over OpenAI batch files. The
same component serves from a single-host TPU slice with the TPU image.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from components.k8s_types import CamelModel
from components.model_server import ServerPod, container, object_annotations, template
from components.serving_objects import NAME_LABEL, ROLE_LABEL, Endpoint, Scaling, serve

PORT = 8000
"""`vllm serve`'s default port: the OpenAI API, /health and /metrics on one listener."""
HEALTH_PATH = "/health"
RAY_SCRIPT = "/vllm-workspace/examples/online_serving/multi-node-serving.sh"
"""Shipped in the vllm-openai image (its Dockerfile copies examples/ into /vllm-workspace)."""
LWS_API = "leaderworkerset.x-k8s.io/v1"
RAY_HEALTH = ("sh", "-c", 'ray health-check --address="$LWS_LEADER_ADDRESS:6379"')


@dataclass(frozen=True)
class EngineFlags:
    """`vllm serve` / `vllm run-batch` flags (vLLM 0.33.0's arg_utils.py and cli_args.py)."""

    model: str
    served_model_name: str
    max_model_len: int
    gpu_memory_utilization: float
    dtype: str
    quantization: str | None
    kv_cache_dtype: str
    max_num_seqs: int
    tensor_parallel_size: int
    pipeline_parallel_size: int

    def args(self) -> list[str]:
        out = [
            f"--served-model-name={self.served_model_name}",
            f"--max-model-len={self.max_model_len}",
            f"--gpu-memory-utilization={self.gpu_memory_utilization}",
            f"--dtype={self.dtype}",
            f"--kv-cache-dtype={self.kv_cache_dtype}",
            f"--max-num-seqs={self.max_num_seqs}",
            f"--tensor-parallel-size={self.tensor_parallel_size}",
        ]
        if self.quantization:
            out.append(f"--quantization={self.quantization}")
        if self.pipeline_parallel_size > 1:
            # vLLM 0.33 defaults to its multiprocessing backend even across nodes: Ray must be asked for.
            out += [f"--pipeline-parallel-size={self.pipeline_parallel_size}", "--distributed-executor-backend=ray"]
        return out


@dataclass(frozen=True)
class Batch:
    input_file: str
    output_file: str
    parallelism: int
    backoff_limit: int
    deadline_s: int


@dataclass(frozen=True)
class VllmArgs:
    namespace: str
    mode: Literal["server", "multi-node", "batch"]
    pod: ServerPod
    flags: EngineFlags
    nodes: int
    """Pods per replica: 1, or the VMs a multi-node replica spans (the LWS size)."""
    replicas: int
    scaling: Scaling | None
    scrape_interval: str
    ingress_cidrs: tuple[str, ...] = ()
    batch: Batch | None = None
    scrapers: tuple[Mapping[str, str], ...] = ()
    """Pods that read the server's metrics on its serving port: the endpoint picker of its InferencePool."""
    depends_on: tuple[pulumi.Resource, ...] = ()


def labels(workload: str, role: str = "server") -> dict[str, str]:
    return {NAME_LABEL: workload, ROLE_LABEL: role}


def serve_pod(args: VllmArgs) -> ServerPod:
    return replace(args.pod, command=("vllm", "serve"), args=(args.flags.model, *args.flags.args(), f"--port={PORT}"))


def batch_pod(args: VllmArgs) -> ServerPod:
    batch = args.batch
    assert batch is not None
    index = "$(JOB_COMPLETION_INDEX)"
    io = [
        f"--input-file={batch.input_file.replace('{index}', index)}",
        f"--output-file={batch.output_file.replace('{index}', index)}",
    ]
    return replace(args.pod, command=("vllm", "run-batch"), args=(*io, f"--model={args.flags.model}", *args.flags.args()))


class LwsTemplate(CamelModel):
    model_config = CamelModel.model_config | {"arbitrary_types_allowed": True}
    size: int
    restart_policy: Literal["RecreateGroupOnPodRestart"] = "RecreateGroupOnPodRestart"
    leader_template: k8s.core.v1.PodTemplateSpecArgs
    worker_template: k8s.core.v1.PodTemplateSpecArgs


class LwsSpec(CamelModel):
    replicas: int | None = None
    leader_worker_template: LwsTemplate

    def to_k8s(self) -> dict[str, object]:
        return self.model_dump(by_alias=True, exclude_none=True)


def multi_node_spec(args: VllmArgs, name: str) -> LwsSpec:
    """Leader: starts the Ray head, waits for every node, then serves; workers join the head and block."""
    served = serve_pod(args)
    serve = " ".join([*served.command, *served.args])
    leader = replace(
        served, command=("sh", "-c"), args=(f"bash {RAY_SCRIPT} leader --ray_cluster_size=$(LWS_GROUP_SIZE) && exec {serve}",)
    )
    worker = replace(served, command=("sh", "-c"), args=(f"exec bash {RAY_SCRIPT} worker --ray_address=$(LWS_LEADER_ADDRESS)",))
    return LwsSpec(
        replicas=None if args.scaling else args.replicas,
        leader_worker_template=LwsTemplate(
            size=args.nodes,
            leader_template=template(leader, labels(name, "leader"), [container(leader, "vllm")]),
            # Workers serve nothing themselves: they are healthy while their raylet answers the head.
            worker_template=template(worker, labels(name, "worker"), [container(worker, "vllm", probe_command=RAY_HEALTH)]),
        ),
    )


class VllmServer(pulumi.ComponentResource):
    """Deployment (or LWS, or Job), its ClusterIP Service, and the serving objects."""

    service: pulumi.Output[str] | None
    ready: list[pulumi.Resource]
    """The server objects a route or pool to it waits for."""

    def __init__(self, name: str, args: VllmArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:serving:Vllm", name, None, opts)
        managed = {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": "gke-inference"}
        meta = k8s.meta.v1.ObjectMetaArgs(name=name, namespace=args.namespace, labels=managed)
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        if args.mode == "batch":
            self._batch(name, args, meta, child)
            self.service, self.ready = None, []
            self.register_outputs({})
            return
        if args.mode == "multi-node":
            workload: pulumi.Resource = k8s.apiextensions.CustomResource(
                f"{name}-lws",
                api_version=LWS_API,
                kind="LeaderWorkerSet",
                metadata=meta,
                spec=multi_node_spec(args, name).to_k8s(),
                opts=child,
            )
            target = k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(api_version=LWS_API, kind="LeaderWorkerSet", name=name)
            serving = labels(name, "leader")
        else:
            pod = serve_pod(args)
            serving = labels(name)
            workload = k8s.apps.v1.Deployment(
                f"{name}-deployment",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=name,
                    namespace=args.namespace,
                    labels=managed,
                    annotations=object_annotations(pod),
                ),
                spec=k8s.apps.v1.DeploymentSpecArgs(
                    replicas=None if args.scaling else args.replicas,
                    selector=k8s.meta.v1.LabelSelectorArgs(match_labels=serving),
                    # A new replica is useful only once loaded: never take one down before its successor is ready.
                    strategy=k8s.apps.v1.DeploymentStrategyArgs(
                        type="RollingUpdate",
                        rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=1, max_unavailable=0),
                    ),
                    template=template(pod, serving, [container(pod, "vllm")]),
                ),
                opts=child,
            )
            target = k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(api_version="apps/v1", kind="Deployment", name=name)
        endpoint = Endpoint(
            namespace=args.namespace,
            selector=serving,
            ports=(("http", PORT),),
            metrics_port="http",
            scrape_interval=args.scrape_interval,
            scale_target=target,
            scaling=args.scaling,
            ingress_cidrs=args.ingress_cidrs,
            scrapers=args.scrapers,
        )
        service = serve(self, name, endpoint, managed, [workload])
        self.service = service.metadata.name
        self.ready = [workload, service]
        self.register_outputs({"service": self.service})

    def _batch(self, name: str, args: VllmArgs, meta: k8s.meta.v1.ObjectMetaArgs, opts: pulumi.ResourceOptions) -> None:
        """An Indexed Job: each index reads its own input part and writes its own results; no Service, no HPA."""
        batch = args.batch
        assert batch is not None
        pod = batch_pod(args)
        pod_labels = labels(name, "batch")
        spec_template = template(pod, pod_labels, [container(pod, "vllm", probes=False)], restart_policy="Never")
        k8s.batch.v1.Job(
            f"{name}-job",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=name,
                namespace=args.namespace,
                labels=meta.labels,
                annotations=object_annotations(pod),
            ),
            spec=k8s.batch.v1.JobSpecArgs(
                completion_mode="Indexed",
                completions=batch.parallelism,
                parallelism=batch.parallelism,
                backoff_limit=batch.backoff_limit,
                active_deadline_seconds=batch.deadline_s,
                template=spec_template,
            ),
            opts=opts,
        )
        # Nothing calls a batch pod: it only reads the bucket and writes results.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=meta,
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=pod_labels), policy_types=["Ingress"]
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
