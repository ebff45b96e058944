"""The pod of a GPU or TPU model server (vLLM, Triton): weights volume, hardening, resources, probes.

Every number arrives derived in `ServerPod` (requests from the machine shape, accelerator count from
the parallelism, probe budget from weight bytes / load rate); this module shapes the pod template the
vLLM Deployment, the multi-node LeaderWorkerSet, the batch Job and Triton share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pulumi_kubernetes as k8s

from components.pod_security import restricted_container, restricted_pod

RUN_AS = 10001
"""Unprivileged UID/GID (checkov CKV_K8S_40 asks for >= 10000); HOME and every cache live on emptyDirs."""
GCSFUSE_DRIVER = "gcsfuse.csi.storage.gke.io"
GCSFUSE_CACHE_VOLUME = "gke-gcsfuse-cache"
"""The volume name the GCS FUSE sidecar takes as its file cache (gcs-fuse-csi-driver sidecar_spec.go)."""
METADATA_OPTIONS = (
    "implicit-dirs",
    "metadata-cache:ttl-secs:-1",
    "metadata-cache:stat-cache-max-size-mb:-1",
    "metadata-cache:type-cache-max-size-mb:-1",
)
"""Weights never change under a mounted path: metadata is cached for good."""
FILE_CACHE_OPTIONS = (
    "file-cache:enable-parallel-downloads:true",
    "file-cache:parallel-downloads-per-file:100",
    "file-cache:max-parallel-downloads:-1",
    "file-cache:download-chunk-size-mb:10",
)
"""GKE's model-serving options (kubernetes-engine-samples ai-ml/vllm-tpu): parallel downloads into the file cache."""
WEIGHTS_PATH = "/models"
CHECKOV_SKIP = "checkov.io/skip{n}"


@dataclass(frozen=True)
class Weights:
    """Where the weights are mounted from: the bucket through GCS FUSE, or a Hyperdisk ML claim."""

    kind: Literal["gcsfuse", "hyperdisk-ml"]
    bucket: str = ""
    claim: str = ""
    file_cache: Literal["local-ssd", "memory", "none"] = "none"
    """The FUSE file cache (needed for parallel downloads): on the node's Local SSD ephemeral storage, in RAM (TPU
    VMs have no Local SSD), or none (reads stream: a GPU pool without Local SSD would fill its boot disk)."""
    cache_mib: int = 0
    """Size of the file cache: the weights plus headroom; in RAM it is taken out of the server's memory request."""
    only_dir: str = ""


@dataclass(frozen=True)
class Output:
    """A read-write GCS FUSE mount for results (batch), limited by IAM to one prefix of the bucket."""

    bucket: str
    prefix: str
    mount_path: str = "/results"


@dataclass(frozen=True)
class ServerPod:
    service_account: str
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    ports: tuple[tuple[str, int], ...]
    """(name, number); the first is the one probes and the Service use."""
    health_path: str
    """Readiness (and startup): the server can take requests."""
    accelerator: tuple[str, int]
    """(resource, count), e.g. ('nvidia.com/gpu', 2) or ('google.com/tpu', 8)."""
    cpu_millis: int
    memory_mib: int
    shm_mib: int
    node_selector: Mapping[str, str]
    tolerations: tuple[tuple[str, str, str | None], ...]
    weights: Weights
    startup_failure_threshold: int
    probe_period_s: int
    env: Mapping[str, str] = field(default_factory=dict)
    output: Output | None = None
    liveness_path: str = ""
    """Liveness, when the server has a separate 'alive' check (Triton); else the health path."""
    checkov_skips: Mapping[str, str] = field(default_factory=dict)
    """checkov check id -> the reason it does not apply, written into the manifest (no '=' in the reason)."""
    policy_exceptions: Mapping[str, str] = field(default_factory=dict)
    """Policy-pack policy -> the reason this workload is an exception (e.g. an image with no published digest)."""


def checkov_annotations(skips: Mapping[str, str]) -> dict[str, str]:
    """checkov reads one `checkov.io/skipN: ID=reason` annotation per check."""
    return {CHECKOV_SKIP.format(n=i): f"{check}={why}" for i, (check, why) in enumerate(sorted(skips.items()), start=1)}


def object_annotations(p: ServerPod) -> dict[str, str] | None:
    """The workload object's annotations: its checkov skips and its named policy exceptions."""
    policy = {f"policy.gke-inference.dev/{k}": v for k, v in p.policy_exceptions.items()}
    return {**checkov_annotations(p.checkov_skips), **policy} or None


def _fuse_volume(name: str, bucket: str, options: tuple[str, ...], read_only: bool) -> k8s.core.v1.VolumeArgs:
    return k8s.core.v1.VolumeArgs(
        name=name,
        csi=k8s.core.v1.CSIVolumeSourceArgs(
            driver=GCSFUSE_DRIVER,
            read_only=read_only,
            volume_attributes={"bucketName": bucket, "mountOptions": ",".join(options)},
        ),
    )


def volumes(p: ServerPod) -> tuple[list[k8s.core.v1.VolumeArgs], list[k8s.core.v1.VolumeMountArgs]]:
    core = k8s.core.v1
    vols = [
        core.VolumeArgs(name="tmp", empty_dir=core.EmptyDirVolumeSourceArgs()),
        core.VolumeArgs(name="shm", empty_dir=core.EmptyDirVolumeSourceArgs(medium="Memory", size_limit=f"{p.shm_mib}Mi")),
    ]
    mounts = [core.VolumeMountArgs(name="tmp", mount_path="/tmp"), core.VolumeMountArgs(name="shm", mount_path="/dev/shm")]
    w = p.weights
    if w.kind == "gcsfuse":
        cached = w.file_cache != "none"
        options = (
            METADATA_OPTIONS
            + ((*FILE_CACHE_OPTIONS, f"file-cache:max-size-mb:{w.cache_mib}") if cached else ())
            + ((f"only-dir={w.only_dir}",) if w.only_dir else ())
        )
        vols.append(_fuse_volume("weights", w.bucket, options, read_only=True))
        if cached:
            medium = "Memory" if w.file_cache == "memory" else None
            cache = core.EmptyDirVolumeSourceArgs(medium=medium, size_limit=f"{w.cache_mib}Mi")
            vols.append(core.VolumeArgs(name=GCSFUSE_CACHE_VOLUME, empty_dir=cache))
    else:
        vols.append(
            core.VolumeArgs(
                name="weights",
                persistent_volume_claim=core.PersistentVolumeClaimVolumeSourceArgs(claim_name=w.claim, read_only=True),
            )
        )
    mounts.append(core.VolumeMountArgs(name="weights", mount_path=WEIGHTS_PATH, read_only=True))
    if p.output is not None:
        vols.append(_fuse_volume("results", p.output.bucket, ("implicit-dirs", f"only-dir={p.output.prefix}"), read_only=False))
        mounts.append(core.VolumeMountArgs(name="results", mount_path=p.output.mount_path))
    return vols, mounts


def uses_gcsfuse(p: ServerPod) -> bool:
    return p.weights.kind == "gcsfuse" or p.output is not None


def pod_annotations(p: ServerPod) -> dict[str, str]:
    """The GCS FUSE sidecar is injected on request; it runs restricted (UID 65534, read-only root, no capabilities)."""
    fuse = (
        {"gke-gcsfuse/volumes": "true", "gke-gcsfuse/cpu-limit": "0", "gke-gcsfuse/memory-limit": "0"} if uses_gcsfuse(p) else {}
    )
    return {**fuse, **checkov_annotations(p.checkov_skips)}


def _probe(p: ServerPod, period: int, threshold: int, path: str = "", command: tuple[str, ...] = ()) -> k8s.core.v1.ProbeArgs:
    """HTTP on the server's first port, or a command for pods that serve nothing themselves (Ray workers)."""
    core = k8s.core.v1
    if command:
        return core.ProbeArgs(
            exec_=core.ExecActionArgs(command=list(command)),
            period_seconds=period,
            failure_threshold=threshold,
            timeout_seconds=10,
        )
    return core.ProbeArgs(
        http_get=core.HTTPGetActionArgs(path=path or p.health_path, port=p.ports[0][0]),
        period_seconds=period,
        failure_threshold=threshold,
        timeout_seconds=5,
    )


def container(p: ServerPod, name: str, *, probe_command: tuple[str, ...] = (), probes: bool = True) -> k8s.core.v1.ContainerArgs:
    """The server container: non-root, read-only root, nothing added; Guaranteed QoS (limits = requests)."""
    core = k8s.core.v1
    resource, count = p.accelerator
    quantities = {"cpu": f"{p.cpu_millis}m", "memory": f"{p.memory_mib}Mi", resource: str(count)}
    env = {"HOME": "/tmp", "XDG_CACHE_HOME": "/tmp/.cache", **p.env}
    _, mounts = volumes(p)
    return core.ContainerArgs(
        name=name,
        image=p.image,
        image_pull_policy="IfNotPresent",
        command=list(p.command) or None,
        args=list(p.args),
        env=[core.EnvVarArgs(name=k, value=v) for k, v in env.items()],
        ports=[core.ContainerPortArgs(name=n, container_port=port, protocol="TCP") for n, port in p.ports],
        resources=core.ResourceRequirementsArgs(requests=quantities, limits=quantities),
        security_context=restricted_container(),
        volume_mounts=mounts,
        # Startup within the derived budget; readiness every period; liveness slower and more tolerant (it starts only
        # once the startup probe has passed, so it never kills a loading server).
        # A batch pod serves nothing: no probes, which could only kill it mid-run.
        startup_probe=_probe(p, p.probe_period_s, p.startup_failure_threshold, command=probe_command) if probes else None,
        readiness_probe=_probe(p, p.probe_period_s, 3, command=probe_command) if probes else None,
        liveness_probe=_probe(p, 60, 5, p.liveness_path, command=probe_command) if probes else None,
    )


def pod_spec(
    p: ServerPod, containers: list[k8s.core.v1.ContainerArgs], *, restart_policy: str | None = None
) -> k8s.core.v1.PodSpecArgs:
    core = k8s.core.v1
    vols, _ = volumes(p)
    return core.PodSpecArgs(
        service_account_name=p.service_account,
        automount_service_account_token=False,
        node_selector=dict(p.node_selector),
        tolerations=[core.TolerationArgs(key=k, operator=op, value=v, effect="NoSchedule") for k, op, v in p.tolerations],
        # fsGroup: the FUSE mounts and the sidecar's cache volume are group-owned by it (gcs-fuse-csi-driver docs).
        security_context=restricted_pod(RUN_AS),
        volumes=vols,
        containers=containers,
        restart_policy=restart_policy,
    )


def template(
    p: ServerPod, labels: Mapping[str, str], containers: list[k8s.core.v1.ContainerArgs], **kw: str
) -> k8s.core.v1.PodTemplateSpecArgs:
    return k8s.core.v1.PodTemplateSpecArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(labels=dict(labels), annotations=pod_annotations(p) or None),
        spec=pod_spec(p, containers, **kw),
    )
