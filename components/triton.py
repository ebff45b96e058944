"""Triton Inference Server with its vLLM backend (seed 002), behind the same interface as vLLM.

The model repository lives in the stack's model bucket and is written by the stack: `config.pbtxt`
and `1/model.json` (the vLLM engine arguments, derived like vLLM's own flags). Triton reads it over
`gs://` with the workload's read-only identity; the weights come through the same GCS FUSE mount as
vLLM's. The vLLM backend is decoupled and batches continuously inside vLLM (`max_num_seqs`): Triton's
`dynamic_batching` applies to stateless models with `max_batch_size > 0`, not to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from components.model_server import ServerPod, container, object_annotations, template
from components.serving_objects import NAME_LABEL, ROLE_LABEL, Endpoint, Scaling, serve
from components.vllm import EngineFlags

HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002
READY_PATH, LIVE_PATH = "/v2/health/ready", "/v2/health/live"


def model_json(flags: EngineFlags) -> str:
    """vLLM AsyncEngineArgs as the backend takes them (snake_case keys); statistics on, for Triton's /metrics."""
    engine = {
        "model": flags.model,
        "served_model_name": flags.served_model_name,
        "max_model_len": flags.max_model_len,
        "gpu_memory_utilization": flags.gpu_memory_utilization,
        "dtype": flags.dtype,
        "kv_cache_dtype": flags.kv_cache_dtype,
        "max_num_seqs": flags.max_num_seqs,
        "tensor_parallel_size": flags.tensor_parallel_size,
        "disable_log_stats": False,
    }
    if flags.quantization:
        engine["quantization"] = flags.quantization
    return json.dumps(engine, indent=2, sort_keys=True) + "\n"


CONFIG_PBTXT = """backend: "vllm"
instance_group [ { count: 1, kind: KIND_MODEL } ]
parameters: { key: "REPORT_CUSTOM_METRICS", value: { string_value: "true" } }
"""
"""The vLLM backend's model configuration: one engine instance on the pod's GPUs, vLLM's metrics on Triton's /metrics."""


@dataclass(frozen=True)
class TritonArgs:
    namespace: str
    bucket: str
    model_name: str
    pod: ServerPod
    flags: EngineFlags
    replicas: int
    scaling: Scaling | None
    scrape_interval: str
    ingress_cidrs: tuple[str, ...] = ()


class TritonServer(pulumi.ComponentResource):
    """The model repository objects in the bucket, the Deployment, its Service and the serving objects."""

    service: pulumi.Output[str]

    def __init__(self, name: str, args: TritonArgs, gcp_opts: pulumi.ResourceOptions, opts: pulumi.ResourceOptions):
        super().__init__("gke-inference:serving:Triton", name, None, opts)
        repository = f"triton/{name}"
        in_gcp = pulumi.ResourceOptions.merge(gcp_opts, pulumi.ResourceOptions(parent=self))
        objects = [
            gcp.storage.BucketObject(
                f"{name}-{kind}",
                bucket=args.bucket,
                name=f"{repository}/{args.model_name}/{path}",
                # An asset, not `content`: the provider marks `content` secret, and reviewers should see the repository.
                source=pulumi.StringAsset(content),
                content_type=content_type,
                # A new `source` replaces the object under the same name: deleting the old one after writing the new
                # one would delete the new one. Triton reads its repository only when it starts.
                opts=pulumi.ResourceOptions.merge(in_gcp, pulumi.ResourceOptions(delete_before_replace=True)),
            )
            for kind, path, content, content_type in (
                ("config", "config.pbtxt", CONFIG_PBTXT, "text/plain"),
                ("engine", "1/model.json", model_json(args.flags), "application/json"),
            )
        ]
        pod = replace(
            args.pod,
            command=("tritonserver",),
            args=(
                f"--model-repository=gs://{args.bucket}/{repository}",
                f"--http-port={HTTP_PORT}",
                f"--grpc-port={GRPC_PORT}",
                f"--metrics-port={METRICS_PORT}",
                "--model-control-mode=none",
                "--strict-readiness=true",
                "--exit-on-error=true",
            ),
            ports=(("http", HTTP_PORT), ("grpc", GRPC_PORT), ("metrics", METRICS_PORT)),
            health_path=READY_PATH,
            liveness_path=LIVE_PATH,
        )
        serving = {NAME_LABEL: name, ROLE_LABEL: "server"}
        managed = {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": "gke-inference"}
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=name, namespace=args.namespace, labels=managed, annotations=object_annotations(pod)
            ),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=None if args.scaling else args.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=serving),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate", rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=1, max_unavailable=0)
                ),
                template=template(pod, serving, [container(pod, "triton")]),
            ),
            # Triton loads the repository at start: the objects must exist first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=objects),
        )
        endpoint = Endpoint(
            namespace=args.namespace,
            selector=serving,
            ports=(("http", HTTP_PORT), ("grpc", GRPC_PORT)),
            metrics_port="metrics",
            scrape_interval=args.scrape_interval,
            scale_target=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(api_version="apps/v1", kind="Deployment", name=name),
            scaling=args.scaling,
            ingress_cidrs=args.ingress_cidrs,
        )
        service = serve(self, name, endpoint, managed, [deployment])
        self.service = service.metadata.name
        self.ready: list[pulumi.Resource] = [service]
        self.register_outputs({"service": self.service})
