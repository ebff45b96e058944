"""Pure functions that derive every number the stack uses from the catalog.

Memory model (sizing-prices.md §3):
  required = weights x (1 + quantization scales) + KV cache + runtime reserve
  weights  = params x bytes(weight dtype)
  KV cache = sequences x max context x 2 x layers x kv_heads x head_dim x bytes(kv dtype)
The KV term uses the full context on every layer (sliding-window layers included): the safe upper
bound, since not every engine caps local-attention layers at their window.
Usable memory is HBM x the engine's usable fraction (vLLM gpu_memory_utilization, 1.0 for JetStream).
Capacity is counted in bytes from the catalog's decimal GB (the conservative reading of "32 GB").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from infra.catalog import Catalog, GpuType, Loading, MachineShape, ModelArch, Provisioning, TpuSlice

Dtype = Literal["bf16", "fp8", "int8", "int4"]
Engine = Literal["jetstream-pathways", "vllm", "triton"]

BYTES_PER_PARAM: dict[str, float] = {"bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
QUANT_SCALE_OVERHEAD = 0.01
"""Quantization scales add about 1-2 % to quantized weights (sizing-prices §3.1); 1 % is used."""
GB = 1e9
GIB = 2**30
HOURS_PER_MONTH = 730
OVERPROVISION_RATIO = 2.0
"""Provisioned / required accelerator memory above which a workload must say why (`justification`). Slice shapes and
GPU counts step in powers of two, so a replica above 2.0 would still fit on half its chips or GPUs (less the engine's
reserve): that is a deliberate choice (throughput, disaggregation, latency), not sizing. Error in staging and prod, an
advisory in dev."""
MAX_BACKEND_TIMEOUT_S = 86_400
"""Ceiling of a GCPBackendPolicy `timeoutSec`. The CRD and the Compute API take up to 2147483647 s, but Google's load
balancing documentation recommends no backend service timeout above 24 hours (86,400 s): its proxies are restarted
for maintenance and longer requests are cut anyway (cloud.google.com/load-balancing/docs/https#timeout-bes)."""


def backend_timeout_s(max_context: int, tokens_per_second: float, floor_s: int) -> int:
    """A gateway backend's timeout: long enough to stream max_context tokens at a conservative rate, never under the floor."""
    return max(floor_s, math.ceil(max_context / tokens_per_second))


@dataclass(frozen=True)
class EngineProfile:
    """How an engine spends accelerator memory."""

    usable_fraction: float
    """Share of HBM the engine allocates (vLLM's gpu_memory_utilization default is 0.90)."""
    reserve_gb_per_device: float
    """Activations, CUDA graphs and workspace held outside weights and KV (1-3 GB typical on GPU)."""


ENGINES: dict[str, EngineProfile] = {
    "jetstream-pathways": EngineProfile(usable_fraction=1.0, reserve_gb_per_device=0.0),
    "vllm": EngineProfile(usable_fraction=0.90, reserve_gb_per_device=2.0),
    "triton": EngineProfile(usable_fraction=0.90, reserve_gb_per_device=2.0),
}


def weight_bytes(model: ModelArch, dtype: Dtype) -> float:
    scales = 0.0 if dtype == "bf16" else QUANT_SCALE_OVERHEAD
    return model.params_b * 1e9 * BYTES_PER_PARAM[dtype] * (1 + scales)


def kv_bytes_per_token(model: ModelArch, kv_dtype: Dtype) -> float:
    return 2 * model.layers * model.kv_heads * model.head_dim * BYTES_PER_PARAM[kv_dtype]


def params_from_dims(model: ModelArch) -> float:
    """Parameter count recomputed from the architecture (checks the catalog's published figure)."""
    q = model.q_heads * model.head_dim
    kv = model.kv_heads * model.head_dim
    attention = model.hidden * q * 2 + model.hidden * kv * 2
    mlp = 3 * model.hidden * model.mlp * model.experts
    router = model.hidden * model.experts if model.experts > 1 else 0
    embeddings = model.vocab * model.hidden * (1 if model.tied_embeddings else 2)
    return model.layers * (attention + mlp + router) + embeddings


@dataclass(frozen=True)
class MemoryFit:
    """Required versus provisioned accelerator memory for one model replica (or one slice)."""

    shape: str
    sequences: int
    weights_bytes: float
    kv_bytes: float
    reserve_bytes: float
    provisioned_bytes: float
    usable_bytes: float

    @property
    def required_bytes(self) -> float:
        return self.weights_bytes + self.kv_bytes + self.reserve_bytes

    @property
    def fits(self) -> bool:
        return self.required_bytes <= self.usable_bytes

    @property
    def ratio(self) -> float:
        """Provisioned / required memory: 1.0 is a perfect fit, below it does not fit."""
        return self.provisioned_bytes / self.required_bytes

    @property
    def required_gib(self) -> float:
        return self.required_bytes / GIB

    @property
    def usable_gib(self) -> float:
        return self.usable_bytes / GIB


def memory_fit(
    *,
    model: ModelArch,
    weight_dtype: Dtype,
    kv_dtype: Dtype,
    max_context: int,
    sequences: int,
    devices: int,
    device_memory_gb: float,
    engine: EngineProfile,
    shape: str,
) -> MemoryFit:
    provisioned = devices * device_memory_gb * GB
    return MemoryFit(
        shape=shape,
        sequences=sequences,
        weights_bytes=weight_bytes(model, weight_dtype),
        kv_bytes=sequences * max_context * kv_bytes_per_token(model, kv_dtype),
        reserve_bytes=devices * engine.reserve_gb_per_device * GB,
        provisioned_bytes=provisioned,
        usable_bytes=provisioned * engine.usable_fraction,
    )


def tpu_fit(
    model: ModelArch,
    slice_: TpuSlice,
    *,
    weight_dtype: Dtype,
    kv_dtype: Dtype,
    max_context: int,
    per_device_batch_size: int,
) -> MemoryFit:
    """Fit of one JetStream model copy on one slice; it serves per_device_batch_size x chips sequences."""
    return memory_fit(
        model=model,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        max_context=max_context,
        sequences=per_device_batch_size * slice_.chips,
        devices=slice_.chips,
        device_memory_gb=slice_.generation.hbm_gb_per_chip,
        engine=ENGINES["jetstream-pathways"],
        shape=slice_.shape,
    )


def smallest_tpu_slice(
    catalog: Catalog,
    generation: str,
    model: ModelArch,
    *,
    weight_dtype: Dtype,
    kv_dtype: Dtype,
    max_context: int,
    per_device_batch_size: int,
) -> TpuSlice | None:
    """The smallest shape of the generation (fewest chips, then fewest VMs) that holds the model."""
    for slice_ in catalog.tpu_slices(generation):
        fit = tpu_fit(
            model,
            slice_,
            weight_dtype=weight_dtype,
            kv_dtype=kv_dtype,
            max_context=max_context,
            per_device_batch_size=per_device_batch_size,
        )
        if fit.fits:
            return slice_
    return None


def gpu_fit(
    model: ModelArch,
    gpu: GpuType,
    gpus: int,
    *,
    engine: Engine,
    weight_dtype: Dtype,
    kv_dtype: Dtype,
    max_context: int,
    max_num_seqs: int,
    gpu_memory_utilization: float | None = None,
) -> MemoryFit:
    profile = ENGINES[engine]
    if gpu_memory_utilization is not None:
        profile = EngineProfile(gpu_memory_utilization, profile.reserve_gb_per_device)
    return memory_fit(
        model=model,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        max_context=max_context,
        sequences=max_num_seqs,
        devices=gpus,
        device_memory_gb=gpu.memory_gb,
        engine=profile,
        shape=f"{gpus}x {gpu.name}",
    )


def valid_tensor_parallel(model: ModelArch, tp: int) -> bool:
    """vLLM shards attention heads: TP must divide the query heads, and either divide the KV heads or be a multiple
    of them (vLLM then replicates each KV head over TP / kv_heads ranks)."""
    return tp >= 1 and model.q_heads % tp == 0 and (model.kv_heads % tp == 0 or tp % model.kv_heads == 0)


def tpu_server_fit(
    model: ModelArch,
    slice_: TpuSlice,
    *,
    weight_dtype: Dtype,
    kv_dtype: Dtype,
    max_context: int,
    max_num_seqs: int,
    gpu_memory_utilization: float,
) -> MemoryFit:
    """Fit of one vLLM replica on a single-host slice: every chip of the VM holds a tensor-parallel shard."""
    return memory_fit(
        model=model,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        max_context=max_context,
        sequences=max_num_seqs,
        devices=slice_.chips,
        device_memory_gb=slice_.generation.hbm_gb_per_chip,
        engine=EngineProfile(gpu_memory_utilization, ENGINES["vllm"].reserve_gb_per_device),
        shape=slice_.shape,
    )


MAX_GPUS_PER_REPLICA = 64
"""The most GPUs the fewest-that-fit search tries for one replica."""


def smallest_tpu_server_slice(
    catalog: Catalog,
    generation: str,
    model: ModelArch,
    *,
    weight_dtype: Dtype,
    kv_dtype: Dtype,
    max_context: int,
    max_num_seqs: int,
    gpu_memory_utilization: float,
) -> TpuSlice | None:
    """The smallest single-host shape of the generation that holds a vLLM replica, tensor parallel over its chips."""
    for slice_ in catalog.tpu_slices(generation):
        fit = tpu_server_fit(
            model,
            slice_,
            weight_dtype=weight_dtype,
            kv_dtype=kv_dtype,
            max_context=max_context,
            max_num_seqs=max_num_seqs,
            gpu_memory_utilization=gpu_memory_utilization,
        )
        if not slice_.multi_host and fit.fits and valid_tensor_parallel(model, slice_.chips):
            return slice_
    return None


def smallest_gpu_count(
    model: ModelArch,
    gpu: GpuType,
    *,
    engine: Engine,
    weight_dtype: Dtype,
    kv_dtype: Dtype,
    max_context: int,
    max_num_seqs: int,
    gpu_memory_utilization: float | None = None,
    limit: int = MAX_GPUS_PER_REPLICA,
) -> int | None:
    """Fewest GPUs (a power of two that is a valid tensor-parallel size) that hold one replica."""
    count = 1
    while count <= limit:
        fit = gpu_fit(
            model,
            gpu,
            count,
            engine=engine,
            weight_dtype=weight_dtype,
            kv_dtype=kv_dtype,
            max_context=max_context,
            max_num_seqs=max_num_seqs,
            gpu_memory_utilization=gpu_memory_utilization,
        )
        if fit.fits and valid_tensor_parallel(model, count):
            return count
        count *= 2
    return None


@dataclass(frozen=True)
class GpuParallelism:
    """vLLM's layout for a replica spanning `gpus` GPUs on VMs with `gpus_per_vm` each."""

    tensor_parallel: int
    pipeline_parallel: int
    nodes: int


def gpu_parallelism(gpus: int, gpus_per_vm: int, tensor_parallel: int | None = None) -> GpuParallelism:
    """One node: TP = GPUs. Across nodes: TP = GPUs per node, PP = nodes (vLLM distributed docs). An explicit TP
    splits the rest into pipeline stages."""
    nodes = math.ceil(gpus / gpus_per_vm)
    if tensor_parallel is None:
        return GpuParallelism(tensor_parallel=min(gpus, gpus_per_vm), pipeline_parallel=nodes, nodes=nodes)
    return GpuParallelism(tensor_parallel=tensor_parallel, pipeline_parallel=max(1, gpus // tensor_parallel), nodes=nodes)


def lws_group_size(slice_: TpuSlice, slices: int = 1, *, pathways_leader: bool = True) -> int:
    """LeaderWorkerSet size: one worker pod per VM of every slice, plus the Pathways leader pod."""
    return slices * slice_.vms + (1 if pathways_leader else 0)


@dataclass(frozen=True)
class PathwaysFlags:
    instance_type: str
    instance_count: int


def pathways_flags(slice_: TpuSlice, slices: int = 1) -> PathwaysFlags:
    return PathwaysFlags(f"{slice_.generation.pathways_type}:{slice_.topology}", slices)


@dataclass(frozen=True)
class MaxTextParallelism:
    """MaxText ICI mesh axes; their product must equal the chips of one slice."""

    fsdp: int
    autoregressive: int
    tensor: int

    @property
    def product(self) -> int:
        return self.fsdp * self.autoregressive * self.tensor


MAX_TENSOR_PARALLEL_CHIPS = 8
"""Seed 001 shards 405B with tensor 8 x autoregressive 2 on 16 chips: TP stays within 8 chips."""


def maxtext_parallelism(model: ModelArch, chips: int) -> MaxTextParallelism:
    """Tensor parallelism up to 8 chips (dividing the heads); the rest goes to autoregressive."""
    tensor = max(t for t in range(1, min(chips, MAX_TENSOR_PARALLEL_CHIPS) + 1) if chips % t == 0 and model.q_heads % t == 0)
    return MaxTextParallelism(fsdp=1, autoregressive=chips // tensor, tensor=tensor)


def tpu_pool_hourly(catalog: Catalog, slice_: TpuSlice, region: str, provisioning: Provisioning, slices: int) -> float | None:
    row = catalog.tpu_chip_price(slice_.generation.name, region)
    return None if row is None else row.hourly(provisioning) * slice_.chips * slices


def machine_pool_hourly(catalog: Catalog, machine_type: str, region: str, provisioning: Provisioning, nodes: int) -> float | None:
    row = catalog.machine_price(machine_type, region)
    return None if row is None else row.hourly(provisioning) * nodes


# ------------------------------------------------------------------------------------ startup

PROBE_PERIOD_SECONDS = 10
"""Startup probes poll every 10 s: the budget is period x failureThreshold."""


@dataclass(frozen=True)
class StartupEstimate:
    """Predicted time from a scheduled pod to a ready server, and the startup-probe budget."""

    path: str
    load_s: float
    """Weight bytes / (hosts loading one copy x the path's effective per-host rate)."""
    warmup_s: float
    safety_factor: float

    @property
    def predicted_s(self) -> float:
        return self.load_s + self.warmup_s

    @property
    def budget_s(self) -> int:
        """What the startup probe allows: the prediction times the safety factor, in whole probe periods."""
        return self.probe_failure_threshold * PROBE_PERIOD_SECONDS

    @property
    def probe_failure_threshold(self) -> int:
        return math.ceil(self.predicted_s * self.safety_factor / PROBE_PERIOD_SECONDS)


def startup_estimate(loading: Loading, *, path: str, engine: Engine, weight_bytes: float, hosts: int) -> StartupEstimate:
    """Start time of one model copy whose weights `hosts` hosts read in parallel over `path`."""
    rate = loading.paths[path].per_host_gbps * GB * hosts
    warmup = loading.warmup[engine].seconds if engine in loading.warmup else 0.0
    return StartupEstimate(path=path, load_s=weight_bytes / rate, warmup_s=warmup, safety_factor=loading.safety_factor)


JETSTREAM_LOAD_PATH = "gcs-anywhere-cache"
"""How JetStream checkpoints reach a slice: the Pathways workers restore from the bucket through the zone's cache."""


def jetstream_startup(loading: Loading, model: ModelArch, weight_dtype: Dtype, slice_: TpuSlice) -> StartupEstimate:
    """Each slice restores its own copy of the weights (prefill and decode both hold one), read by its hosts in parallel."""
    return startup_estimate(
        loading,
        path=JETSTREAM_LOAD_PATH,
        engine="jetstream-pathways",
        weight_bytes=weight_bytes(model, weight_dtype),
        hosts=slice_.vms,
    )


# --------------------------------------------------------------------------- pod resources

MIB = 2**20
GKE_CPU_RESERVE = ((1, 0.06), (1, 0.01), (2, 0.005), (math.inf, 0.0025))
"""GKE's kubelet CPU reservation: (cores, fraction) tiers (GKE 'plan node sizes': allocatable resources)."""
GKE_MEMORY_RESERVE = ((4, 0.25), (4, 0.20), (8, 0.10), (112, 0.06), (math.inf, 0.02))
"""GKE's memory reservation: (GiB, fraction) tiers, plus the 100 MiB eviction threshold."""
GKE_EVICTION_MIB = 100
DAEMONSET_HEADROOM = (2000, 4096)
"""(millicores, MiB) left for GKE's DaemonSets on an accelerator node: logging, the GMP collector,
the TPU/GPU device plugin, the GCS FUSE and PD CSI node drivers. A choice, not a published figure."""


@dataclass(frozen=True)
class Resources:
    cpu_millis: int
    memory_mib: int

    def scaled(self, share: float) -> Resources:
        return Resources(int(self.cpu_millis * share), int(self.memory_mib * share))

    @property
    def cpu(self) -> str:
        return f"{self.cpu_millis}m"

    @property
    def memory(self) -> str:
        return f"{self.memory_mib}Mi"


def _tiered(total: float, tiers: tuple[tuple[float, float], ...]) -> float:
    reserved, left = 0.0, total
    for size, fraction in tiers:
        step = min(left, size)
        reserved += step * fraction
        left -= step
    return reserved


def schedulable(machine: MachineShape) -> Resources:
    """What pods can request on one node: GKE allocatable minus the DaemonSet headroom.

    The catalog's memory is decimal GB, read as GiB-sized tiers here: the smaller, safe figure."""
    cpu = machine.vcpu * 1000 - _tiered(machine.vcpu, GKE_CPU_RESERVE) * 1000
    memory_mib = machine.memory_gb * GB / MIB
    memory = memory_mib - _tiered(machine.memory_gb, GKE_MEMORY_RESERVE) * 1024 - GKE_EVICTION_MIB
    return Resources(int(cpu) - DAEMONSET_HEADROOM[0], int(memory) - DAEMONSET_HEADROOM[1])


@dataclass(frozen=True)
class Pod:
    """What one pod takes from a node: accelerators (GPUs or TPU chips) and CPU/memory requests."""

    devices: int
    resources: Resources


def gpu_pod(machine: MachineShape, gpus: int, gpus_per_vm: int) -> Pod:
    """One pod of a replica spanning `gpus` GPUs: at most a node's GPUs, and the node's schedulable CPU/memory in
    proportion to them (so pods of one pool pack as their GPUs do)."""
    per_pod = min(gpus, gpus_per_vm)
    return Pod(per_pod, schedulable(machine).scaled(per_pod / gpus_per_vm))


def nodes_for(pods: list[Pod], node: Pod) -> int | None:
    """Nodes of one shape that hold `pods`, packed first-fit by decreasing size (the fewest when every pod's devices
    divide the node's, as power-of-two GPU counts do); None when a pod fits no node of that shape."""
    free: list[tuple[int, int, int]] = []
    for pod in sorted(pods, key=lambda p: (p.devices, p.resources.cpu_millis, p.resources.memory_mib), reverse=True):
        want = (pod.devices, pod.resources.cpu_millis, pod.resources.memory_mib)
        for i, room in enumerate(free):
            if all(w <= r for w, r in zip(want, room, strict=True)):
                free[i] = (room[0] - want[0], room[1] - want[1], room[2] - want[2])
                break
        else:
            room = (node.devices - want[0], node.resources.cpu_millis - want[1], node.resources.memory_mib - want[2])
            if min(room) < 0:
                return None
            free.append(room)
    return len(free)


GB_PER_VCPU = {"standard": 4, "highmem": 8, "highcpu": 1}
"""Memory per vCPU of the E2, N2 and N2D predefined shapes (Compute Engine general-purpose machine family docs)."""


def predefined_machine(machine_type: str) -> MachineShape | None:
    """The shape of an E2/N2/N2D predefined machine type from its name (e2-standard-16: 16 vCPU, 64 GB), or None
    for any other (the catalog's accelerator machines are in accelerators.yaml)."""
    match = re.fullmatch(r"(?:e2|n2|n2d)-(standard|highmem|highcpu)-(\d+)", machine_type)
    if match is None:
        return None
    vcpu = int(match[2])
    return MachineShape(vcpu=vcpu, memory_gb=vcpu * GB_PER_VCPU[match[1]])


PATHWAYS_LEADER_SHARE = 0.25
"""Share of one TPU node the Pathways leader pod requests. LWS places the leader beside a worker on a
node of the slice, so leader + worker must fit one node: the worker (TPU runtime and host buffers)
gets the rest. A choice, documented here."""


@dataclass(frozen=True)
class PathwaysPods:
    leader: Resources
    worker: Resources


def pathways_pod_resources(machine: MachineShape) -> PathwaysPods:
    """Requests of the leader and worker pods so that one of each fits a node of the slice."""
    node = schedulable(machine)
    return PathwaysPods(leader=node.scaled(PATHWAYS_LEADER_SHARE), worker=node.scaled(1 - PATHWAYS_LEADER_SHARE))


DISAGGREGATED_SERVERS = {
    ("v6e", 8): "ExperimentalMaxtextDisaggregatedServer_8",
    ("v5e", 16): "ExperimentalMaxtextDisaggregatedServer_16",
}
"""(generation, chips per slice) -> the MaxText `inference_server` that runs prefill on one such slice and
decode on another (MaxText/maxengine_config.py @4797997f, the image line of jetstream-pathways:v0.2.0;
newer MaxText replaced these names with prefill_slice/generate_slice keys)."""


def disaggregated_server(slice_: TpuSlice) -> str | None:
    return DISAGGREGATED_SERVERS.get((slice_.generation.name, slice_.chips))
