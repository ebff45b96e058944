"""vLLM and Triton workloads: the checked config mapped onto the model-server components, every number derived.

Parallelism from `sizing.gpu_parallelism` (or the TPU slice's chips), pod requests from the machine shape
and the GPUs a pod takes, the startup budget from weight bytes / the loading path's calibrated rate,
the weights' location from the model's Hugging Face id (where the download Job puts them).
"""

from __future__ import annotations

import math
from collections import defaultdict
from functools import partial
from typing import Literal

import pulumi

from components.endpoint_picker import picker_labels
from components.hyperdisk import HyperdiskWeights, HyperdiskWeightsArgs, claim_name
from components.identity import KubernetesAccount, PrefixWriter, PrefixWriterArgs
from components.model_server import Output, ServerPod, Weights
from components.node_pools import COMPUTE_CLASS_KEY, POOL_LABEL
from components.triton import TritonArgs, TritonServer
from components.vllm import HEALTH_PATH, PORT, Batch, EngineFlags, VllmArgs, VllmServer
from components.weights_download import Model, WeightsDownload, WeightsDownloadArgs
from infra import sizing, versions
from infra.catalog import Catalog
from infra.config import NAMESPACE, StackConfig, Workload
from infra.serving.common import checkov_skips, cluster_url, image_exceptions, scaling

GPU_RESOURCE, TPU_RESOURCE = "nvidia.com/gpu", "google.com/tpu"
GPU_ACCELERATOR_KEY = "cloud.google.com/gke-accelerator"
SHM_CAP_MIB = 16 * 1024
"""/dev/shm (NCCL, vLLM's multiprocessing) is memory-backed and counts against the pod's memory: an eighth of
it, at most 16 GiB."""
CACHE_HEADROOM = 1.1
"""A file cache holds the weights plus 10 % (tokenizer, configs, safetensors index)."""
HYPERDISK_HEADROOM = 1.1
"""A Hyperdisk ML volume holds the weights plus 10 % (config, tokenizer, filesystem overhead)."""


def weights_prefix(workload: Workload) -> str:
    """Where the download Job writes a model and servers read it: hf/<Hugging Face id>."""
    return f"hf/{workload.model.hf_id}"


def batch_prefix(workload: Workload) -> str:
    return f"batch/{workload.name}"


def layout(workload: Workload) -> sizing.GpuParallelism:
    """TP x PP and nodes of one replica; on TPU, tensor parallel over the slice's chips on its one VM."""
    if workload.tpu_pools:
        return sizing.GpuParallelism(tensor_parallel=workload.tpu_pools[0].slice.chips, pipeline_parallel=1, nodes=1)
    assert workload.gpu_pool is not None
    return sizing.gpu_parallelism(workload.gpus, workload.gpu_pool.gpus_per_vm, workload.config.tensor_parallel)


def loading_path(workload: Workload) -> str:
    return "hyperdisk-ml" if workload.config.model_loading == "hyperdisk-ml" else "gcsfuse"


def startup(catalog: Catalog, workload: Workload) -> sizing.StartupEstimate:
    """Each node of a replica loads its pipeline stages' share of the weights, in parallel."""
    return sizing.startup_estimate(
        catalog.loading,
        path=loading_path(workload),
        engine=workload.config.engine,
        weight_bytes=sizing.weight_bytes(workload.model, workload.config.weight_dtype),
        hosts=layout(workload).nodes,
    )


def engine_flags(workload: Workload) -> EngineFlags:
    c, parallel = workload.config, layout(workload)
    return EngineFlags(
        model="/models",
        served_model_name=workload.model.name,
        max_model_len=c.max_context,
        gpu_memory_utilization=c.gpu_memory_utilization,
        dtype="bfloat16",
        quantization="fp8" if c.weight_dtype == "fp8" else None,
        kv_cache_dtype="fp8" if c.kv_cache_dtype == "fp8" else "auto",
        max_num_seqs=c.sequences,
        tensor_parallel_size=parallel.tensor_parallel,
        pipeline_parallel_size=parallel.pipeline_parallel,
    )


def placement(cfg: StackConfig, workload: Workload) -> tuple[dict[str, str], tuple[tuple[str, str, str | None], ...]]:
    """The compute class when one selects the pool; else the accelerator label and the pool's own label."""
    if workload.tpu_pools:
        pool_name, taint = workload.tpu_pools[0].name, TPU_RESOURCE
        selector = {
            "cloud.google.com/gke-tpu-accelerator": workload.tpu_pools[0].slice.generation.gke_accelerator,
            "cloud.google.com/gke-tpu-topology": workload.tpu_pools[0].slice.topology,
        }
    else:
        assert workload.gpu_pool is not None
        pool_name, taint = workload.gpu_pool.name, GPU_RESOURCE
        selector = {GPU_ACCELERATOR_KEY: workload.gpu_pool.gpu.gke_accelerator}
    tolerations: list[tuple[str, str, str | None]] = [(taint, "Exists", None)]
    cls = cfg.compute_class_of(pool_name)
    if cls is not None:
        return {COMPUTE_CLASS_KEY: cls}, (*tolerations, (COMPUTE_CLASS_KEY, "Equal", cls))
    return {**selector, POOL_LABEL: pool_name}, tuple(tolerations)


def pod_resources(catalog: Catalog, workload: Workload) -> tuple[tuple[str, int], sizing.Resources]:
    """(accelerator, count) per pod and its CPU/memory: the node's schedulable share in proportion to its GPUs."""
    if workload.tpu_pools:
        slice_ = workload.tpu_pools[0].slice
        return (TPU_RESOURCE, slice_.chips), sizing.schedulable(catalog.machines[slice_.machine_type])
    pool = workload.gpu_pool
    assert pool is not None
    pod = sizing.gpu_pod(catalog.machines[pool.config.machine_type], workload.gpus, pool.gpus_per_vm)
    return (GPU_RESOURCE, pod.devices), pod.resources


def file_cache(workload: Workload) -> Literal["local-ssd", "memory", "none"]:
    """Local SSD where the GPU pool has it; RAM on TPU VMs (no Local SSD, and RAM to spare); else none."""
    if workload.tpu_pools:
        return "memory"
    assert workload.gpu_pool is not None
    return "local-ssd" if workload.gpu_pool.config.local_ssd_count > 0 else "none"


def server_pod(cfg: StackConfig, catalog: Catalog, workload: Workload, image: versions.Image) -> ServerPod:
    accelerator, resources = pod_resources(catalog, workload)
    selector, tolerations = placement(cfg, workload)
    start = startup(catalog, workload)
    cache = file_cache(workload)
    cache_mib = (
        math.ceil(sizing.weight_bytes(workload.model, workload.config.weight_dtype) * CACHE_HEADROOM / sizing.MIB)
        // layout(workload).nodes
    )
    weights = (
        Weights(kind="hyperdisk-ml", claim=claim_name(workload.name))
        if workload.config.model_loading == "hyperdisk-ml"
        else Weights(
            kind="gcsfuse",
            bucket=cfg.bucket_name,
            only_dir=weights_prefix(workload),
            file_cache=cache,
            cache_mib=cache_mib if cache != "none" else 0,
        )
    )
    if weights.file_cache == "memory":
        # The RAM cache is charged to the pod: the server gets the rest of its share.
        resources = sizing.Resources(resources.cpu_millis, resources.memory_mib - weights.cache_mib)
    batch = workload.config.batch
    return ServerPod(
        service_account=workload.service_account,
        image=image.ref,
        command=(),
        args=(),
        ports=(("http", PORT),),
        health_path=HEALTH_PATH,
        accelerator=accelerator,
        cpu_millis=resources.cpu_millis,
        memory_mib=resources.memory_mib,
        shm_mib=min(SHM_CAP_MIB, resources.memory_mib // 8),
        node_selector=selector,
        tolerations=tolerations,
        weights=weights,
        startup_failure_threshold=start.probe_failure_threshold,
        probe_period_s=sizing.PROBE_PERIOD_SECONDS,
        # Weights are local (FUSE or disk): the server never reaches the Hub.
        env={
            "HF_HUB_OFFLINE": "1",
            "VLLM_CACHE_ROOT": "/tmp/vllm",
            **({"VLLM_XLA_CACHE_PATH": "/tmp/xla"} if workload.tpu_pools else {}),
        },
        output=Output(bucket=cfg.bucket_name, prefix=batch_prefix(workload)) if batch else None,
        checkov_skips=checkov_skips(image),
        policy_exceptions=image_exceptions([image]),
    )


def build(
    cfg: StackConfig,
    catalog: Catalog,
    gcp_opts: pulumi.ResourceOptions,
    k8s_opts: pulumi.ResourceOptions,
    pooled: set[str],
    ready: dict[str, list[pulumi.Resource]],
) -> dict[str, pulumi.Input[object]]:
    """Every vLLM and Triton workload, the weights download Jobs, and the serving outputs. `pooled` servers sit behind
    an InferencePool (their picker may scrape them); each server's objects are added to `ready` for the gateway."""
    outputs: dict[str, pulumi.Input[object]] = {}
    servers = {n: w for n, w in cfg.workloads.items() if w.config.engine in ("vllm", "triton")}
    ingress = tuple(x for x in (cfg.network.proxy_only_cidr,) if x)
    for name, workload in servers.items():
        c = workload.config
        opts = k8s_opts
        if c.model_loading == "hyperdisk-ml":
            HyperdiskWeights(
                f"{name}-weights",
                HyperdiskWeightsArgs(
                    namespace=c.namespace,
                    claim=claim_name(name),
                    source_uri=f"gs://{cfg.bucket_name}/{weights_prefix(workload)}/",
                    service_account=workload.service_account,
                    zone=(workload.gpu_pool.zones if workload.gpu_pool else workload.tpu_pools[0].zones)[0],
                    size_gib=math.ceil(sizing.weight_bytes(workload.model, c.weight_dtype) * HYPERDISK_HEADROOM / sizing.GIB),
                ),
                opts,
            )
        start = startup(catalog, workload)
        if c.engine == "triton":
            server = TritonServer(
                name,
                TritonArgs(
                    namespace=c.namespace,
                    bucket=cfg.bucket_name,
                    model_name=workload.model.name,
                    pod=server_pod(cfg, catalog, workload, versions.TRITON_IMAGE),
                    flags=engine_flags(workload),
                    replicas=c.replicas,
                    scaling=scaling(catalog, workload, start),
                    scrape_interval=cfg.observability.scrape_interval,
                    ingress_cidrs=ingress,
                ),
                gcp_opts,
                opts,
            )
            outputs[f"{name}_endpoint"] = server.service.apply(partial(cluster_url, namespace=c.namespace, port=PORT))
            ready[name] = server.ready
            continue
        image = versions.VLLM_TPU_IMAGE if workload.tpu_pools else versions.VLLM_IMAGE
        parallel = layout(workload)
        mode: Literal["server", "multi-node", "batch"] = (
            "batch" if c.batch else ("multi-node" if parallel.nodes > 1 else "server")
        )
        vllm = VllmServer(
            name,
            VllmArgs(
                namespace=c.namespace,
                mode=mode,
                pod=server_pod(cfg, catalog, workload, image),
                flags=engine_flags(workload),
                nodes=parallel.nodes,
                replicas=c.replicas,
                scaling=scaling(catalog, workload, start),
                scrape_interval=cfg.observability.scrape_interval,
                ingress_cidrs=ingress,
                batch=Batch(
                    input_file=f"/results/{c.batch.input}",
                    output_file=f"/results/{c.batch.output}",
                    parallelism=c.batch.parallelism,
                    backoff_limit=c.batch.backoff_limit,
                    deadline_s=math.ceil(c.batch.deadline_hours * 3600),
                )
                if c.batch
                else None,
                scrapers=(picker_labels(name),) if name in pooled else (),
            ),
            opts,
        )
        if c.batch:
            # The Job's own account may write its results folder and nothing else of the bucket.
            PrefixWriter(
                f"{name}-results",
                PrefixWriterArgs(
                    cfg.project,
                    cfg.bucket_name,
                    f"{batch_prefix(workload)}/",
                    KubernetesAccount(c.namespace, workload.service_account),
                ),
                gcp_opts,
            )
        if vllm.service is not None:
            outputs[f"{name}_endpoint"] = vllm.service.apply(partial(cluster_url, namespace=c.namespace, port=PORT))
            ready[name] = vllm.ready
    if cfg.has_hf_token:
        by_namespace: dict[str, dict[str, Model]] = defaultdict(dict)
        for workload in servers.values():
            by_namespace[workload.config.namespace][workload.model.hf_id] = Model(workload.model.hf_id, weights_prefix(workload))
        token = pulumi.Config(NAMESPACE).require_secret("hf_token")
        for namespace, models in sorted(by_namespace.items()):
            WeightsDownload(
                f"weights-{namespace}",
                WeightsDownloadArgs(
                    project=cfg.project,
                    namespace=namespace,
                    bucket=cfg.bucket_name,
                    image=versions.VLLM_IMAGE.ref,
                    token=token,
                    models=tuple(models[k] for k in sorted(models)),
                    checkov_skips=checkov_skips(versions.VLLM_IMAGE),
                ),
                gcp_opts,
                k8s_opts,
            )
    return outputs
