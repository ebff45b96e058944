"""Accelerator, model and price catalog: data files with sources and dates, read into frozen types.

The YAML files beside this module are the only place accelerator facts and prices are written;
everything else (node counts, TPU limits, LWS sizes, memory fit, cost) is derived from them in
``infra.sizing``.
"""

from __future__ import annotations

import math
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

Provisioning = Literal["on_demand", "spot", "reservation", "flex_start"]
Dtype = Literal["bf16", "fp8", "int8", "int4"]
ServingMode = Literal["interleaved", "disaggregated"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TpuGeneration(_Frozen):
    name: str
    gke_accelerator: str
    pathways_type: str
    hbm_gb_per_chip: float
    hbm_bandwidth_gbps: float
    peak_bf16_tflops: float
    peak_int8_tops: float
    """Dense peaks per chip: what prefill time is derived from (``infra.simulate.capacity``)."""
    ici_gbps: float
    """Inter-chip interconnect, GB/s per chip in one direction: what a tensor-parallel all-reduce moves data at."""
    machine_types: dict[str, int]
    """Machine type -> TPU chips per VM (the ``google.com/tpu`` resource on one node)."""
    shapes: dict[str, tuple[str, ...]]
    """Topology -> machine types that can form it; the first is the default."""
    zones: tuple[str, ...]
    source: str


class TpuSlice(_Frozen):
    """One slice shape: a generation, a topology and the machine type forming it."""

    generation: TpuGeneration
    topology: str
    machine_type: str

    @property
    def chips(self) -> int:
        return math.prod(int(d) for d in self.topology.split("x"))

    @property
    def chips_per_vm(self) -> int:
        return self.generation.machine_types[self.machine_type]

    @property
    def vms(self) -> int:
        """VMs (GKE nodes) in one slice."""
        return self.chips // self.chips_per_vm

    @property
    def multi_host(self) -> bool:
        return self.vms > 1

    @property
    def shape(self) -> str:
        """How reports and messages name the slice, e.g. "v6e 4x4"."""
        return f"{self.generation.name} {self.topology}"


class GpuType(_Frozen):
    name: str
    gke_accelerator: str
    memory_gb: float
    bandwidth_gbps: float
    peak_bf16_tflops: float
    peak_int8_tops: float
    """Dense low-precision peak per GPU: FP8 where the GPU has it (the vendor's figure), INT8 on Ampere."""
    interconnect_gbps: float
    """GPU-to-GPU link (NVLink, or PCIe without it), GB/s per GPU in one direction: what an all-reduce moves data at."""
    machine_types: dict[str, int]
    """Machine type -> GPUs per VM."""
    zones: tuple[str, ...]
    source: str


class ModelArch(_Frozen):
    name: str
    hf_id: str
    context_length: int
    """Longest sequence the model was trained for: no server may be configured beyond it."""
    params_b: float
    layers: int
    hidden: int
    q_heads: int
    kv_heads: int
    head_dim: int
    mlp: int
    vocab: int
    tied_embeddings: bool
    experts: int = 1
    maxtext_name: str | None = None
    maxtext_tokenizer: str | None = None
    """Tokenizer asset in the MaxText tree (MaxText's base.yml has no default for it since 2026)."""


class MachineShape(_Frozen):
    """vCPUs and memory of one machine type: pod CPU/memory requests are derived from them."""

    vcpu: int
    memory_gb: float


class Calibration(_Frozen):
    """One observed restore the load rate is checked against."""

    model: str
    weight_dtype: str
    hosts: int
    observed_s: float


class LoadPath(_Frozen):
    """A way weights reach the accelerators, as an effective rate per host (not a link speed)."""

    name: str
    description: str
    per_host_gbps: float
    source: str
    calibration: tuple[Calibration, ...] = ()


class Warmup(_Frozen):
    seconds: float
    source: str


class Loading(_Frozen):
    """Startup figures: load paths, per-engine warmup and the probe budget's safety factor."""

    as_of: str
    safety_factor: float
    safety_source: str
    paths: dict[str, LoadPath]
    warmup: dict[str, Warmup]
    image_pull: Warmup
    """Pulling the serving image onto a node before the container starts."""
    provisioning: dict[str, Warmup]
    """How long a new node ('gpu') or slice ('tpu') takes before pods can start on it."""


class EngineMetrics(_Frozen):
    """Metrics of one engine an HPA may scale on, with what each measures: gauges (the adapter serves the latest
    value) and counters (the adapter serves their per-second rate)."""

    source: str
    gauges: dict[str, str]
    rates: dict[str, str] = {}

    def kind(self, metric: str) -> Literal["gauge", "counter"]:
        """How Managed Prometheus stores the metric, which is also the suffix of its adapter name."""
        return "counter" if metric in self.rates else "gauge"

    @property
    def scalable(self) -> dict[str, str]:
        return {**self.gauges, **self.rates}


class Factors(_Frozen):
    """Efficiencies of one engine against the roofline (``infra.simulate.capacity``): the share of HBM bandwidth a step
    streams at, the share of peak FLOP/s its matmuls reach, the host's time per running sequence a step (scheduling,
    sampling, detokenizing and streaming its token: a third ceiling when the accelerator is faster), a fixed cost per
    step, and the fixed latency of one all-reduce across the replica's chips."""

    decode_bandwidth_efficiency: Annotated[float, Field(gt=0, le=1)]
    prefill_mfu: Annotated[float, Field(gt=0, le=1)]
    host_us_per_sequence: Annotated[float, Field(ge=0)]
    step_overhead_ms: Annotated[float, Field(ge=0)]
    allreduce_latency_us: Annotated[float, Field(ge=0)]


class EngineThroughput(Factors):
    """An engine's factors, fitted to the fit points of published.yaml (``infra.simulate.fit``)."""

    source: str


class CalibratedFactors(Factors):
    """An engine's factors on one accelerator, fitted to a load test's measurements (``gke-inference simulate
    --calibrate``): they override the engine's published fit for that accelerator."""

    source: str
    date: str
    points: int
    median_error: float
    """Median of max(predicted/measured, measured/predicted) over the measurements, with these factors."""


class GpuBatchTokens(_Frozen):
    min_memory_gib: float
    unless: str | None = None
    """A GPU whose catalog name contains this gets the next row (vLLM keeps A100s on the small default)."""
    tokens: int


class VllmBatchTokens(_Frozen):
    """vLLM's default max_num_batched_tokens for its OpenAI server, by accelerator: tokens one step may carry."""

    source: str
    gpu: tuple[GpuBatchTokens, ...]
    """First row the GPU matches wins."""
    tpu: dict[str, int]

    def for_gpu(self, gpu: GpuType) -> int:
        gib = gpu.memory_gb * 1e9 / 2**30
        return next(r.tokens for r in self.gpu if gib >= r.min_memory_gib and not (r.unless and r.unless in gpu.name))


class Throughput(_Frozen):
    as_of: str
    engines: dict[str, EngineThroughput]
    vllm_max_num_batched_tokens: VllmBatchTokens
    calibrated: dict[str, dict[str, CalibratedFactors]] = {}
    """Engine -> accelerator -> factors measured there (calibrated.yaml)."""

    def factors(self, engine: str, accelerator: str) -> Factors:
        """The engine's factors on the accelerator: a calibration there if one was made, else the published fit."""
        return self.calibrated.get(engine, {}).get(accelerator) or self.engines[engine]


Metric = Literal["output_tokens_per_s", "tpot_ms", "ttft_ms"]


class PublishedPoint(_Frozen):
    """One published benchmark figure with the setup it was measured in (published.yaml)."""

    id: str
    role: Literal["fit", "test"]
    engine: str
    """The catalog engine whose factors predict it."""
    engine_version: str
    model: str
    accelerator: str
    devices: int
    tensor_parallel: int
    weight_dtype: Dtype
    kv_dtype: Dtype
    concurrency: int
    """Sequences in flight: the client's concurrency, or the server's batch when the client saturates it."""
    prompt_tokens: int
    output_tokens: int
    static_cache_tokens: int | None = None
    """JetStream's fixed KV cache length per slot, read whole every step."""
    max_batched_tokens: int | None = None
    """vLLM max_num_batched_tokens when the source sets it (else the default for the accelerator)."""
    metric: Metric
    published: float
    source: str
    date: str
    assumed: str = ""
    """Setup details the source does not state, and what was taken for them."""


class Published(_Frozen):
    as_of: str
    excluded: tuple[str, ...]
    """Published figures deliberately left out, each with why."""
    points: tuple[PublishedPoint, ...]


class CommitWindow(_Frozen):
    """The upstream commits a copied value can have come from, and the ones it was checked at."""

    repo: str
    after: str
    before: str
    checked_at: tuple[str, ...]


class MaxTextConfigFile(_Frozen):
    """A MaxText config file in the jetstream-pathways image: the server's first argument, which key=value arguments
    after it override."""

    path: str
    """Relative to the image's MaxText tree, e.g. MaxText/configs/base.yml."""
    base_config: str | None = None
    """The file it extends (MaxText's `base_config`); every chain ends at base.yml."""
    sets: dict[str, str | bool | int] = {}
    """Scalar keys the file itself sets, identical at every checked commit: a command-line argument with the same key
    must agree (tests/test_jetstream_lws.py)."""
    varies: dict[str, str] = {}
    """Keys the file sets differently between the checked commits (so the image's value is unknown), and how; a key the
    command line may pass is then passed, which settles it."""
    notes: str = ""


class MaxTextConfigs(_Frozen):
    """Which config file the JetStream server of each model starts from (GKE's samples name them)."""

    source: str
    image: str
    commit_window: CommitWindow
    command_line_keys: frozenset[str]
    """Keys the server's command line may pass: each found in base.yml at every checked commit."""
    default: MaxTextConfigFile
    models: dict[str, MaxTextConfigFile]
    """Catalog model name -> its file; every other model gets `default`."""

    def for_model(self, model: str) -> MaxTextConfigFile:
        return self.models.get(model, self.default)


PROXY_FLAG = re.compile(r"--xla_[a-z0-9_]+=\S+")


class TunedFor(_Frozen):
    model: str
    generation: str
    topology: str
    mode: ServingMode


class XlaTuning(_Frozen):
    """Compiler flags the Pathways proxy gets for the one workload shape they were autotuned for."""

    tuned_for: TunedFor
    source: str
    origin: str
    """Where the values were tuned (the sample copies them)."""
    proxy_image: str
    """The Pathways proxy build the source passes them to (versions.PATHWAYS_PROXY_IMAGE must be it)."""
    flags: tuple[str, ...]
    """Verbatim `--xla_<name>=<value>` arguments, in the source's order."""

    @field_validator("flags")
    @classmethod
    def _one_value_per_flag(cls, flags: tuple[str, ...]) -> tuple[str, ...]:
        bad = [f for f in flags if not PROXY_FLAG.fullmatch(f)]
        names = [f.partition("=")[0] for f in flags]
        twice = sorted({n for n in names if names.count(n) > 1})
        if bad or twice:
            raise ValueError(f"expected unique --xla_<name>=<value> flags, got malformed {bad} and repeated {twice}")
        return flags


class PathwaysSettings(_Frozen):
    """Settings copied from GKE's Pathways + JetStream samples (pathways.yaml), with the commits checked against."""

    as_of: str
    maxtext_configs: MaxTextConfigs
    proxy_xla_flags: tuple[XlaTuning, ...]

    def proxy_flags(self, model: str, slice_: TpuSlice, mode: ServingMode) -> tuple[str, ...]:
        """The proxy's XLA flags for a workload: those tuned for exactly this model, slice shape and mode, else none."""
        shape = TunedFor(model=model, generation=slice_.generation.name, topology=slice_.topology, mode=mode)
        return next((t.flags for t in self.proxy_xla_flags if t.tuned_for == shape), ())


class PriceRow(_Frozen):
    on_demand: float
    spot: float
    source: str
    as_of: str

    def hourly(self, provisioning: Provisioning) -> float:
        return self.spot if provisioning == "spot" else self.on_demand


class Catalog(_Frozen):
    as_of: str
    tpus: dict[str, TpuGeneration]
    gpus: dict[str, GpuType]
    models: dict[str, ModelArch]
    machines: dict[str, MachineShape]
    loading: Loading
    metrics: dict[str, EngineMetrics]
    throughput: Throughput
    pathways: PathwaysSettings
    tpu_chip_prices: dict[tuple[str, str], PriceRow]
    machine_prices: dict[tuple[str, str], PriceRow]

    def tpu_slice(self, generation: str, topology: str, machine_type: str | None = None) -> TpuSlice:
        gen = self.tpus[generation]
        return TpuSlice(generation=gen, topology=topology, machine_type=machine_type or gen.shapes[topology][0])

    def tpu_slices(self, generation: str) -> list[TpuSlice]:
        """Every shape of a generation, smallest first (by chips, then fewer VMs)."""
        gen = self.tpus[generation]
        shapes = [self.tpu_slice(generation, topo, mt) for topo, mts in gen.shapes.items() for mt in mts]
        return sorted(shapes, key=lambda s: (s.chips, s.vms))

    def gpu_for_machine(self, machine_type: str) -> GpuType | None:
        return next((g for g in self.gpus.values() if machine_type in g.machine_types), None)

    def tpu_chip_price(self, generation: str, region: str) -> PriceRow | None:
        return self.tpu_chip_prices.get((generation, region))

    def machine_price(self, machine_type: str, region: str) -> PriceRow | None:
        return self.machine_prices.get((machine_type, region))


CALIBRATED = Path(__file__).with_name("calibrated.yaml")
"""Per-accelerator factors `gke-inference simulate --calibrate` writes; absent until a load test was calibrated."""


def _read(name: str) -> dict:
    return yaml.safe_load(resources.files(__package__).joinpath(name).read_text())


def read_calibrated(path: Path = CALIBRATED) -> dict[str, dict[str, CalibratedFactors]]:
    """Engine -> accelerator -> calibrated factors from `path`, or none when it does not exist."""
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    return {e: {a: CalibratedFactors(**f) for a, f in accs.items()} for e, accs in data.get("engines", {}).items()}


@cache
def load_published() -> Published:
    """The validation set of the capacity model: published benchmark figures, each with its setup and source."""
    return Published(**_read("published.yaml"))


@cache
def load() -> Catalog:
    """The catalog, read once per process from the packaged YAML files."""
    names = ("accelerators", "models", "prices", "loading", "metrics", "throughput", "pathways")
    acc, mdl, prc, ldg, met, thr, pws = (_read(f"{n}.yaml") for n in names)
    tpu_prices = {
        (gen, region): PriceRow(**row, source=prc["tpu_chip_hour"]["source"], as_of=prc["tpu_chip_hour"]["as_of"])
        for gen, regions in prc["tpu_chip_hour"]["rows"].items()
        for region, row in regions.items()
    }
    machine_prices = {
        (mt, region): PriceRow(on_demand=od, spot=spot, source=table["source"], as_of=table["as_of"])
        for table in (prc["machine_hour"], prc["machine_hour_extra"])
        for mt, regions in table["rows"].items()
        for region, (od, spot) in regions.items()
    }
    return Catalog(
        as_of=acc["as_of"],
        tpus={k: TpuGeneration(name=k, **v) for k, v in acc["tpus"].items()},
        gpus={k: GpuType(name=k, **v) for k, v in acc["gpus"].items()},
        models={k: ModelArch(name=k, **v) for k, v in mdl["models"].items()},
        machines={k: MachineShape(**v) for k, v in acc["machines"].items()},
        metrics={k: EngineMetrics(**v) for k, v in met["engines"].items()},
        throughput=Throughput(**thr, calibrated=read_calibrated()),
        pathways=PathwaysSettings(**pws),
        loading=Loading(**{**ldg, "paths": {k: LoadPath(name=k, **v) for k, v in ldg["paths"].items()}}),
        tpu_chip_prices=tpu_prices,
        machine_prices=machine_prices,
    )
