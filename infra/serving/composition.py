"""Serving composition: the model servers of a checked StackConfig, on what the platform hands over.

Takes only the platform's handles (Kubernetes provider, model bucket, node pools' names and compute
classes, the serving namespaces and their service accounts) and maps each workload onto its
engine's component, deriving every number from the catalog through `infra.sizing`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

import pulumi

from components import pathways
from components.identity import BucketMember, GoogleAccount, KubernetesAccount
from components.node_pools import COMPUTE_CLASS_KEY, POOL_LABEL
from components.serving_namespace import PodSecurityLevel
from infra import sizing, versions
from infra.catalog import Catalog
from infra.catalog import load as load_catalog
from infra.config import StackConfig, Workload
from infra.names import scratch_bucket_name
from infra.serving import gateway as gateway_serving
from infra.serving import load_tests, monitoring
from infra.serving import models as model_serving
from infra.serving.common import cluster_url, image_exceptions, scaling

TPU_ACCELERATOR_KEY = "cloud.google.com/gke-tpu-accelerator"
TPU_TOPOLOGY_KEY = "cloud.google.com/gke-tpu-topology"
SCRATCH_TTL_DAYS = 7
"""Pathways scratch objects (compilation and transfer state) expire after a week."""
SERVE_MULTIHOST_TUTORIAL = "https://docs.cloud.google.com/kubernetes-engine/docs/tutorials/serve-multihost-tpu-jetstream"
PATHWAYS_NODE_IDENTITY_REASON = (
    "Pathways with JetStream and MaxText runs with Workload Identity Federation for GKE disabled (GKE tutorial: "
    '"Node pools that run Pathways with JetStream and MaxText should disable Workload Identity Federation for GKE", '
    f"{SERVE_MULTIHOST_TUTORIAL}); the config lets no other server onto the pool, and its own node service account "
    "holds only GKE's node role, image pulls, read on the model bucket and write on the scratch bucket"
)
"""Why the pools that serve Pathways are an exception to inf-gke-workload-identity; written on each such pool."""


PATHWAYS_IMAGES = (
    versions.PATHWAYS_PROXY_IMAGE,
    versions.PATHWAYS_SERVER_IMAGE,
    versions.JETSTREAM_PATHWAYS_IMAGE,
    versions.JETSTREAM_HTTP_IMAGE,
)
"""In the order of pathways.Images: proxy, server, jetstream, http."""


@dataclass(frozen=True)
class PlatformHandles:
    """What the serving layer deploys through, from the platform stack's contract (infra/contract.py)."""

    gcp: pulumi.ResourceOptions
    k8s: pulumi.ResourceOptions
    """Options carrying the serving stack's providers: Kubernetes on the platform's cluster."""
    subnetwork: pulumi.Input[str] | None = None
    """The node subnet: an internal gateway's address is reserved in it."""


def pathways_pools(cfg: StackConfig) -> frozenset[str]:
    """The TPU pools a jetstream-pathways workload runs on: Workload Identity off, the Pathways node account."""
    return frozenset(p.name for w in cfg.workloads.values() if w.config.engine == "jetstream-pathways" for p in w.tpu_pools)


def on_workload_identity_nodes(cfg: StackConfig, workload: Workload) -> bool:
    """Whether the workload's pods may run on nodes with Workload Identity on, and so act as their Kubernetes account.

    Every engine but Pathways does. Pathways pods do only where a compute class may auto-create node pools for them:
    GKE creates those with the GKE metadata server (a ComputeClass's nodePoolConfig cannot turn it off).
    """
    if workload.config.engine != "jetstream-pathways":
        return True
    classes = (cfg.compute_class_of(p.name) for p in workload.tpu_pools)
    return any(c is not None and cfg.compute_classes[c].node_pool_auto_creation for c in classes)


def bucket_members(
    cfg: StackConfig, workloads: Iterable[Workload], pathways_nodes: GoogleAccount | None
) -> tuple[BucketMember, ...]:
    """Who acts for these workloads on a bucket: each one's Kubernetes account where its pods may run with Workload
    Identity, and the Pathways pools' node account when one of them is Pathways (its pods act as the node there)."""
    listed = list(workloads)
    accounts: list[BucketMember] = sorted(
        {KubernetesAccount(w.config.namespace, w.service_account) for w in listed if on_workload_identity_nodes(cfg, w)},
        key=str,
    )
    if pathways_nodes is not None and any(w.config.engine == "jetstream-pathways" for w in listed):
        accounts.append(pathways_nodes)
    return tuple(accounts)


def checkpoint_path(cfg: StackConfig, workload: Workload) -> str:
    """gs:// path of the MaxText checkpoint: the workload's `checkpoint` in the bucket, else where MaxText's
    scripts put it (README, Checkpoints): the converter's checkpoint manager writes `<dir>/0/items` (bf16);
    load_and_quantize_checkpoint.py writes the quantized parameters at `<dir>` itself."""
    c = workload.config
    default = f"maxtext/{workload.model.name}/{c.weight_dtype}" + ("/0/items" if c.weight_dtype == "bf16" else "")
    return f"gs://{cfg.bucket_name}/{(c.checkpoint or default).strip('/')}"


def placement(cfg: StackConfig, workload: Workload) -> pathways.Placement:
    """The compute class when one selects the pool, else accelerator + topology + the pool's own label."""
    pool = workload.tpu_pools[0]
    tolerations: list[tuple[str, str, str | None]] = [(pathways.TPU_RESOURCE, "Exists", None)]
    cls = cfg.compute_class_of(pool.name)
    if cls is not None:
        tolerations.append((COMPUTE_CLASS_KEY, "Equal", cls))
        return pathways.Placement({COMPUTE_CLASS_KEY: cls}, tuple(tolerations))
    selector = {
        TPU_ACCELERATOR_KEY: pool.slice.generation.gke_accelerator,
        TPU_TOPOLOGY_KEY: pool.slice.topology,
        POOL_LABEL: pool.name,
    }
    return pathways.Placement(selector, tuple(tolerations))


def layout(workload: Workload) -> pathways.PathwaysLayout:
    slice_, slices = workload.tpu_pools[0].slice, len(workload.tpu_pools)
    ici = sizing.maxtext_parallelism(workload.model, slice_.chips)
    return pathways.PathwaysLayout(
        instance_type=sizing.pathways_flags(slice_, slices).instance_type,
        slices=slices,
        vms_per_slice=slice_.vms,
        chips_per_vm=slice_.chips_per_vm,
        group_size=sizing.lws_group_size(slice_, slices),
        ici=(ici.fsdp, ici.autoregressive, ici.tensor),
    )


def startup(catalog: Catalog, workload: Workload) -> sizing.StartupEstimate:
    return sizing.jetstream_startup(catalog.loading, workload.model, workload.config.weight_dtype, workload.tpu_pools[0].slice)


def pathways_args(cfg: StackConfig, catalog: Catalog, workload: Workload) -> pathways.JetStreamPathwaysArgs:
    c, slice_ = workload.config, workload.tpu_pools[0].slice
    start = startup(catalog, workload)
    pods = sizing.pathways_pod_resources(catalog.machines[slice_.machine_type])
    assert workload.model.maxtext_name and workload.model.maxtext_tokenizer  # checked by the loader
    settings = catalog.pathways
    return pathways.JetStreamPathwaysArgs(
        namespace=c.namespace,
        service_account=workload.service_account,
        mode=c.mode,
        layout=layout(workload),
        placement=placement(cfg, workload),
        server=pathways.MaxTextServer(
            config_file=settings.maxtext_configs.for_model(workload.model.name).path,
            model_name=workload.model.maxtext_name,
            tokenizer_path=workload.model.maxtext_tokenizer,
            load_parameters_path=checkpoint_path(cfg, workload),
            max_prefill_predict_length=c.max_prefill_length or c.max_context // 2,
            max_target_length=c.max_context,
            per_device_batch_size=c.per_device_batch_size or 1,
            quantization=None if c.weight_dtype == "bf16" else c.weight_dtype,
            quantize_kvcache=c.kv_cache_dtype != "bf16",
            inference_server=sizing.disaggregated_server(slice_) if c.mode == "disaggregated" else None,
        ),
        images=pathways.Images(*(i.ref for i in PATHWAYS_IMAGES)),
        scratch_location=f"gs://{scratch_bucket_name(cfg.bucket_name)}/{workload.name}",
        startup_failure_threshold=start.probe_failure_threshold,
        probe_period_s=sizing.PROBE_PERIOD_SECONDS,
        leader=pathways.PodRequests(pods.leader.cpu_millis, pods.leader.memory_mib),
        worker=pathways.PodRequests(pods.worker.cpu_millis, pods.worker.memory_mib),
        replicas=c.replicas,
        scaling=scaling(catalog, workload, start),
        scrape_interval=cfg.observability.scrape_interval,
        proxy_xla_flags=settings.proxy_flags(workload.model.name, slice_, c.mode),
        ingress_cidrs=tuple(x for x in (cfg.network.proxy_only_cidr,) if x),
        exceptions=image_exceptions(list(PATHWAYS_IMAGES)),
    )


def pod_security(workloads: list[Workload]) -> tuple[PodSecurityLevel, str | None]:
    """The Pod Security level a namespace can enforce for these workloads, and why when not `restricted`."""
    disaggregated = sorted(
        w.name for w in workloads if w.config.engine == "jetstream-pathways" and w.config.mode == "disaggregated"
    )
    if not disaggregated:
        return "restricted", None
    caps = ", ".join(pathways.DISAGGREGATED_CAPABILITIES)
    return "privileged", f"{', '.join(disaggregated)}: the disaggregated JetStream server runs as root with {caps} (seed 001)"


def uses_leader_worker_sets(cfg: StackConfig) -> bool:
    """Whether any workload is a LeaderWorkerSet: JetStream on Pathways, or a vLLM replica spanning nodes."""
    return any(w.config.engine == "jetstream-pathways" or model_serving.layout(w).nodes > 1 for w in cfg.workloads.values())


def build(cfg: StackConfig, platform: PlatformHandles, catalog: Catalog | None = None) -> dict[str, pulumi.Input[object]]:
    """Every workload's server and the gateway; returns the serving outputs (each workload's in-cluster endpoint).

    The namespaces, their accounts, the LeaderWorkerSet API and the metrics adapter are the platform stack's,
    deployed before this one (infra/platform/composition.py)."""
    catalog = catalog or load_catalog()
    jetstream = {n: w for n, w in cfg.workloads.items() if w.config.engine == "jetstream-pathways"}
    pooled = {n for n, w in gateway_serving.exposed(cfg).items() if gateway_serving.uses_pool(w)}
    ready: dict[str, list[pulumi.Resource]] = {}
    outputs = model_serving.build(cfg, catalog, platform.gcp, platform.k8s, pooled, ready)
    if jetstream:
        outputs |= jetstream_servers(cfg, catalog, platform, jetstream, ready)
    if cfg.gateway.enabled:
        multi_node = {
            n for n, w in cfg.workloads.items() if w.config.engine != "jetstream-pathways" and model_serving.layout(w).nodes > 1
        }
        outputs |= gateway_serving.build(cfg, platform.gcp, platform.k8s, platform.subnetwork, ready, multi_node)
        both = pulumi.ResourceOptions.merge(platform.gcp, platform.k8s)
        load_tests.build(cfg, catalog, both, pulumi.Output.from_input(outputs["gateway_endpoint"]).apply(str))
    monitoring.build(cfg, catalog, platform.gcp)
    return outputs


def jetstream_servers(
    cfg: StackConfig,
    catalog: Catalog,
    platform: PlatformHandles,
    jetstream: dict[str, Workload],
    ready: dict[str, list[pulumi.Resource]],
) -> dict[str, pulumi.Input[object]]:
    """Each JetStream workload (the scratch bucket its servers share is the platform's)."""
    outputs: dict[str, pulumi.Input[object]] = {}
    for name, workload in jetstream.items():
        server = pathways.JetStreamPathways(name, pathways_args(cfg, catalog, workload), platform.k8s)
        outputs[f"{name}_endpoint"] = server.service.apply(
            partial(cluster_url, namespace=workload.config.namespace, port=pathways.HTTP_PORT)
        )
        ready[name] = server.ready
    return outputs
