"""Pathways + JetStream on a LeaderWorkerSet (seed 001), for one workload.

One LWS group serves one model copy: a leader pod (IFRT proxy, Pathways resource manager, the
MaxText/JetStream server and its HTTP front) and one Pathways worker pod per TPU VM of every
slice. Every number here (group size, TPU limit, Pathways flags, ICI mesh, probe budget, pod
requests) arrives derived in the args, and every setting copied from GKE's samples (the server's
MaxText config file, the proxy's tuned XLA flags) arrives chosen from the catalog; this module only
shapes the objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from components.k8s_types import CamelModel
from components.pod_security import restricted_pod
from components.serving_objects import NAME_LABEL, ROLE_LABEL, Endpoint, Scaling, serve

LWS_API = "leaderworkerset.x-k8s.io/v1"
NODEPOOL_KEY = "cloud.google.com/gke-nodepool"
EXCLUSIVE = "leaderworkerset.sigs.k8s.io/exclusive-topology"
SUBGROUP_EXCLUSIVE = "leaderworkerset.sigs.k8s.io/subgroup-exclusive-topology"
EXCEPTION_ANNOTATION = "policy.gke-inference.dev/{policy}"
TPU_RESOURCE = "google.com/tpu"

# Ports of seed 001; named so Service, probes and PodMonitoring refer to the same thing.
PROXY_PORT, RM_PORT, WORKER_PORT, GRPC_PORT, HTTP_PORT, METRICS_PORT = 38681, 38677, 38679, 9000, 8000, 9100
"""METRICS_PORT is MaxText's `prometheus_port` (seed 001 sets none: JetStream then exports nothing)."""
HEALTH_PATH = "/healthcheck"
"""Served by jetstream-http on HTTP_PORT; it answers once the JetStream server behind it is up."""
RUN_AS = 1000
"""Unprivileged UID/GID for the containers; HOME points at the writable /tmp emptyDir."""

DISAGGREGATED_CAPABILITIES: Mapping[str, str] = {
    "NET_ADMIN": "seed 001's disaggregated JetStream server is configured with it for the prefill-to-decode "
    "KV-cache transfer between the two slices",
    "SYS_PTRACE": "seed 001's disaggregated JetStream server is configured with it",
    "SYS_TIME": "seed 001's disaggregated JetStream server is configured with it",
}
"""Capabilities the experimental disaggregated server (`ExperimentalMaxtextDisaggregatedServer_*`) is
given in seed 001, and why each is kept. Capabilities only take effect for root, so that container
also runs as UID 0: the two exceptions are named on the object for the policy pack, and the
namespace cannot enforce Pod Security `restricted`. Interleaved serving needs neither."""
DISAGGREGATED_EXCEPTIONS = ("inf-k8s-capabilities", "inf-k8s-nonroot-readonly")


@dataclass(frozen=True)
class PathwaysLayout:
    """What the slices imply (infra.sizing): the composition derives it from topology and machine type."""

    instance_type: str
    """Pathways `--instance_type`, e.g. tpuv6e:4x4."""
    slices: int
    """`--instance_count`: one for interleaved serving, two (prefill + decode) disaggregated."""
    vms_per_slice: int
    chips_per_vm: int
    """The worker's google.com/tpu limit."""
    group_size: int
    """LWS size: every VM of every slice, plus the leader."""
    ici: tuple[int, int, int]
    """MaxText (fsdp, autoregressive, tensor) ICI parallelism; the product is the chips of one slice."""


@dataclass(frozen=True)
class Placement:
    node_selector: Mapping[str, str]
    tolerations: tuple[tuple[str, str, str | None], ...]
    """(key, operator, value) tolerations with effect NoSchedule."""


@dataclass(frozen=True)
class MaxTextServer:
    """The MaxText/JetStream server's settings: a config file in the image, then overrides (keys of MaxText's base.yml)."""

    config_file: str
    """The MaxText config file the server starts from, a path in the jetstream-pathways image (its first argument);
    the key=value overrides below apply on top of it."""
    model_name: str
    tokenizer_path: str
    load_parameters_path: str
    max_prefill_predict_length: int
    max_target_length: int
    per_device_batch_size: int
    quantization: str | None
    """'int8' for an int8 checkpoint (then checkpoint_is_quantized), None for bf16."""
    quantize_kvcache: bool
    inference_server: str | None = None
    """Disaggregated serving: the MaxText server that puts prefill and decode on a slice each."""


@dataclass(frozen=True)
class PodRequests:
    """CPU and memory one pod (or one container) requests; memory is also its limit."""

    cpu_millis: int
    memory_mib: int

    def share(self, fraction: float) -> PodRequests:
        return PodRequests(int(self.cpu_millis * fraction), int(self.memory_mib * fraction))


LEADER_CONTAINER_SHARES: Mapping[str, float] = {
    "jax-tpu": 0.5,
    "pathways-proxy": 1 / 6,
    "pathways-rm": 1 / 6,
    "jetstream-http": 1 / 6,
}
"""How the leader pod's requests split over its containers: the JAX client (tokenizer, batching, host
buffers of the Pathways programs) takes half; the proxy, resource manager and HTTP front relay."""


@dataclass(frozen=True)
class Images:
    proxy: str
    server: str
    jetstream: str
    http: str


@dataclass(frozen=True)
class JetStreamPathwaysArgs:
    namespace: str
    service_account: str
    mode: Literal["interleaved", "disaggregated"]
    layout: PathwaysLayout
    placement: Placement
    server: MaxTextServer
    images: Images
    scratch_location: str
    """gs:// prefix the Pathways servers write temporary state to (a bucket the stack owns)."""
    startup_failure_threshold: int
    """Startup probes allow threshold x PROBE_PERIOD seconds: the derived load + warmup budget."""
    probe_period_s: int
    leader: PodRequests
    """The leader pod's requests, split over its containers by LEADER_CONTAINER_SHARES."""
    worker: PodRequests
    replicas: int
    scaling: Scaling | None
    scrape_interval: str
    proxy_xla_flags: tuple[str, ...] = ()
    """`--xla_*` flags the IFRT proxy compiles the server's programs with, after its Pathways flags (GKE's
    disaggregated sample passes MaxText's autotuned set for the model and slice it runs); none by default."""
    ingress_cidrs: tuple[str, ...] = ()
    exceptions: Mapping[str, str] = field(default_factory=dict)
    """Policy name -> reason, for exceptions the composition decides (e.g. images without a published digest)."""
    depends_on: tuple[pulumi.Resource, ...] = ()
    """The LeaderWorkerSet API (CRD + webhook) the LWS needs first."""


class SubGroupPolicy(CamelModel):
    sub_group_size: int


class LeaderWorkerTemplate(CamelModel):
    model_config = CamelModel.model_config | {"arbitrary_types_allowed": True}
    size: int
    sub_group_policy: SubGroupPolicy | None = None
    leader_template: k8s.core.v1.PodTemplateSpecArgs
    worker_template: k8s.core.v1.PodTemplateSpecArgs


class LeaderWorkerSetSpec(CamelModel):
    replicas: int | None = None
    """Left out when an HPA owns the scale subresource (server-side apply would fight it)."""
    leader_worker_template: LeaderWorkerTemplate

    def to_k8s(self) -> dict[str, object]:
        # Pod templates stay typed args: the SDK serializes them with their camelCase names.
        return self.model_dump(by_alias=True, exclude_none=True, round_trip=False)


def labels(workload: str, role: str) -> dict[str, str]:
    return {NAME_LABEL: workload, ROLE_LABEL: role}


def maxtext_args(server: MaxTextServer, layout: PathwaysLayout) -> list[str]:
    """The JetStream server's MaxText config file, then key=value overrides of it, seed 001's per mode."""
    fsdp, autoregressive, tensor = layout.ici
    args = [
        server.config_file,
        f"model_name={server.model_name}",
        f"tokenizer_path={server.tokenizer_path}",
        f"load_parameters_path={server.load_parameters_path}",
        f"max_prefill_predict_length={server.max_prefill_predict_length}",
        f"max_target_length={server.max_target_length}",
        "async_checkpointing=false",
        "steps=1",
        f"ici_fsdp_parallelism={fsdp}",
        f"ici_autoregressive_parallelism={autoregressive}",
        f"ici_tensor_parallelism={tensor}",
        "scan_layers=false",
        "weight_dtype=bfloat16",
        f"per_device_batch_size={server.per_device_batch_size}",
    ]
    if not server.inference_server:
        args.append("enable_single_controller=true")
    if server.quantization:
        args += [f"quantization={server.quantization}", "checkpoint_is_quantized=true"]
    args.append(f"quantize_kvcache={'true' if server.quantize_kvcache else 'false'}")
    if server.inference_server:
        args += [
            "compute_axis_order=0,2,1,3",
            "ar_cache_axis_order=0,2,1,3",
            "stack_prefill_result_cache=true",
            f"inference_server={server.inference_server}",
            # Misnamed but needed (MaxText max_utils.py): skips jax.distributed initialisation, which the
            # Pathways proxy replaces, and meshes the devices as one slice per engine.
            "inference_benchmark_test=true",
        ]
    args += ["enable_model_warmup=true", f"prometheus_port={METRICS_PORT}"]
    return args


def _port(name: str, number: int) -> k8s.core.v1.ContainerPortArgs:
    return k8s.core.v1.ContainerPortArgs(name=name, container_port=number, protocol="TCP")


def _probe(port: str | int, http: bool, period: int, threshold: int) -> k8s.core.v1.ProbeArgs:
    core = k8s.core.v1
    if http:
        return core.ProbeArgs(
            http_get=core.HTTPGetActionArgs(path=HEALTH_PATH, port=port),
            period_seconds=period,
            failure_threshold=threshold,
            timeout_seconds=5,
        )
    return core.ProbeArgs(
        tcp_socket=core.TCPSocketActionArgs(port=port), period_seconds=period, failure_threshold=threshold, timeout_seconds=5
    )


def _security(capabilities: tuple[str, ...] = ()) -> k8s.core.v1.SecurityContextArgs:
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=not capabilities,
        run_as_user=0 if capabilities else None,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"], add=list(capabilities) or None),
    )


def _resources(requests: PodRequests, tpu: int | None = None) -> k8s.core.v1.ResourceRequirementsArgs:
    accelerator = {TPU_RESOURCE: str(tpu)} if tpu else {}
    cpu, memory = f"{requests.cpu_millis}m", f"{requests.memory_mib}Mi"
    return k8s.core.v1.ResourceRequirementsArgs(
        requests={"cpu": cpu, "memory": memory, **accelerator}, limits={"memory": memory, **accelerator}
    )


def _scratch_flags(args: JetStreamPathwaysArgs) -> list[str]:
    return [f"--resource_manager_address=$(LWS_LEADER_ADDRESS):{RM_PORT}", f"--gcs_scratch_location={args.scratch_location}"]


WRITABLE = (("tmp", "/tmp"), ("shm", "/dev/shm"))
"""emptyDirs for a read-only root filesystem: /tmp (also HOME) and a memory-backed /dev/shm."""


def _container(
    args: JetStreamPathwaysArgs,
    name: str,
    image: str,
    container_args: list[str],
    ports: list[k8s.core.v1.ContainerPortArgs],
    probe_port: str | int,
    *,
    requests: PodRequests,
    http_probe: bool = False,
    env: Mapping[str, str] | None = None,
    tpu: int | None = None,
    capabilities: tuple[str, ...] = (),
) -> k8s.core.v1.ContainerArgs:
    variables = {"HOME": "/tmp", **(env or {})}
    return k8s.core.v1.ContainerArgs(
        name=name,
        image=image,
        image_pull_policy="IfNotPresent",
        args=container_args or None,
        env=[k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in variables.items()],
        ports=ports,
        resources=_resources(requests, tpu),
        security_context=_security(capabilities),
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name=v, mount_path=p) for v, p in WRITABLE],
        # Startup within the derived load + warmup budget; readiness every period; a slower, more tolerant liveness.
        startup_probe=_probe(probe_port, http_probe, args.probe_period_s, args.startup_failure_threshold),
        readiness_probe=_probe(probe_port, http_probe, args.probe_period_s, 3),
        liveness_probe=_probe(probe_port, http_probe, 60, 10),
    )


def _pod(
    args: JetStreamPathwaysArgs, role: str, workload: str, containers: list[k8s.core.v1.ContainerArgs]
) -> k8s.core.v1.PodTemplateSpecArgs:
    core = k8s.core.v1
    return core.PodTemplateSpecArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels(workload, role)),
        spec=core.PodSpecArgs(
            service_account_name=args.service_account,
            automount_service_account_token=False,
            node_selector=dict(args.placement.node_selector),
            tolerations=[
                core.TolerationArgs(key=k, operator=op, value=v, effect="NoSchedule") for k, op, v in args.placement.tolerations
            ],
            security_context=restricted_pod(RUN_AS),
            volumes=[
                core.VolumeArgs(name="tmp", empty_dir=core.EmptyDirVolumeSourceArgs()),
                core.VolumeArgs(name="shm", empty_dir=core.EmptyDirVolumeSourceArgs(medium="Memory")),
            ],
            containers=containers,
        ),
    )


def leader_template(args: JetStreamPathwaysArgs, workload: str) -> k8s.core.v1.PodTemplateSpecArgs:
    layout, images = args.layout, args.images
    r = {name: args.leader.share(fraction) for name, fraction in LEADER_CONTAINER_SHARES.items()}
    rm_args = [
        f"--server_port={RM_PORT}",
        f"--gcs_scratch_location={args.scratch_location}",
        "--node_type=resource_manager",
        f"--instance_count={layout.slices}",
        f"--instance_type={layout.instance_type}",
    ]
    capabilities = tuple(DISAGGREGATED_CAPABILITIES) if args.mode == "disaggregated" else ()
    return _pod(
        args,
        "leader",
        workload,
        [
            _container(
                args,
                "pathways-proxy",
                images.proxy,
                [*_scratch_flags(args), f"--server_port={PROXY_PORT}", *args.proxy_xla_flags],
                [_port("proxy", PROXY_PORT)],
                "proxy",
                requests=r["pathways-proxy"],
            ),
            _container(
                args,
                "pathways-rm",
                images.server,
                rm_args,
                [_port("rm", RM_PORT)],
                "rm",
                requests=r["pathways-rm"],
                env={"HOST_ADDRESS": "$(LWS_LEADER_ADDRESS)", "TPU_SKIP_MDS_QUERY": "true"},
            ),
            _container(
                args,
                "jax-tpu",
                images.jetstream,
                maxtext_args(args.server, layout),
                [_port("grpc", GRPC_PORT), _port("metrics", METRICS_PORT)],
                # The kubelet resolves a probe's port name among the container's own ports only: jetstream-http's
                # port, which answers for this server, is given by number (the pod shares one network namespace).
                HTTP_PORT,
                requests=r["jax-tpu"],
                http_probe=True,
                env={"LOG_LEVEL": "INFO"},
                capabilities=capabilities,
            ),
            _container(args, "jetstream-http", images.http, [], [_port("http", HTTP_PORT)], "http", requests=r["jetstream-http"]),
        ],
    )


def worker_template(args: JetStreamPathwaysArgs, workload: str) -> k8s.core.v1.PodTemplateSpecArgs:
    return _pod(
        args,
        "worker",
        workload,
        [
            _container(
                args,
                "worker",
                args.images.server,
                [f"--server_port={WORKER_PORT}", *_scratch_flags(args)],
                [_port("worker", WORKER_PORT)],
                "worker",
                requests=args.worker,
                tpu=args.layout.chips_per_vm,
            )
        ],
    )


def lws_spec(args: JetStreamPathwaysArgs, workload: str) -> LeaderWorkerSetSpec:
    disaggregated = args.mode == "disaggregated"
    return LeaderWorkerSetSpec(
        replicas=None if args.scaling else args.replicas,
        leader_worker_template=LeaderWorkerTemplate(
            size=args.layout.group_size,
            sub_group_policy=SubGroupPolicy(sub_group_size=args.layout.vms_per_slice) if disaggregated else None,
            leader_template=leader_template(args, workload),
            worker_template=worker_template(args, workload),
        ),
    )


def lws_annotations(args: JetStreamPathwaysArgs) -> dict[str, str]:
    """One slice (node pool) per group, or per subgroup when prefill and decode get a slice each."""
    exceptions = {EXCEPTION_ANNOTATION.format(policy=p): why for p, why in args.exceptions.items()}
    if args.mode == "interleaved":
        return {EXCLUSIVE: NODEPOOL_KEY, **exceptions}
    reason = "; ".join(f"{cap}: {why}" for cap, why in DISAGGREGATED_CAPABILITIES.items())
    exceptions |= {EXCEPTION_ANNOTATION.format(policy=p): f"{reason}; seed 001" for p in DISAGGREGATED_EXCEPTIONS}
    return {SUBGROUP_EXCLUSIVE: NODEPOOL_KEY, **exceptions}


class JetStreamPathways(pulumi.ComponentResource):
    """LeaderWorkerSet, the ClusterIP Service in front of the leader, and the serving objects."""

    service: pulumi.Output[str]

    def __init__(self, name: str, args: JetStreamPathwaysArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:serving:JetStreamPathways", name, None, opts)
        managed = {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": "gke-inference"}
        lws = k8s.apiextensions.CustomResource(
            f"{name}-lws",
            api_version=LWS_API,
            kind="LeaderWorkerSet",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=name, namespace=args.namespace, labels=managed, annotations=lws_annotations(args)
            ),
            spec=lws_spec(args, name).to_k8s(),
            # The LWS webhook refuses to add, remove or resize subGroupSize on update: a change there replaces the set.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=list(args.depends_on), replace_on_changes=["spec.leaderWorkerTemplate.subGroupPolicy"]
            ),
        )
        endpoint = Endpoint(
            namespace=args.namespace,
            selector=labels(name, "leader"),
            ports=(("http", HTTP_PORT),),
            metrics_port="metrics",
            scrape_interval=args.scrape_interval,
            scale_target=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                api_version=LWS_API, kind="LeaderWorkerSet", name=name
            ),
            scaling=args.scaling,
            ingress_cidrs=args.ingress_cidrs,
        )
        service = serve(self, name, endpoint, managed, [lws])
        self.service = service.metadata.name
        self.ready: list[pulumi.Resource] = [service]
        self.register_outputs({"service": self.service})
