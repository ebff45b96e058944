"""One typed, frozen model of a stack's configuration, and the loader that checks all of it.

Keys live under the ``gke-inference:`` namespace as structured objects, plus ``gcp:project`` and
``gcp:region``. Field names are snake_case in the stack file, exactly as written here, so an error's
key path can be pasted into ``pulumi config set --path``. Unknown keys are errors; keys of other
namespaces (``gcp:``, ``kubernetes:``, ``pulumi:``) other than project/region are left to their
providers.

``load_config`` parses every section, runs every cross-field check (catalog, sizing, references
between sections) and raises one ``ConfigError`` listing every problem, one per line, in the form
``<key path>: <problem>; expected <x>, got <y>``. The program calls it before it registers the
first resource, so a bad stack registers nothing.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infra import sizing
from infra.catalog import Catalog, GpuType, ModelArch, Provisioning, TpuSlice
from infra.catalog import load as load_catalog

NAMESPACE = "gke-inference"
Environment = Literal["dev", "staging", "prod"]
Dtype = sizing.Dtype
Engine = sizing.Engine
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
DNS_LABEL = r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"
DnsLabel = Annotated[str, Field(pattern=DNS_LABEL)]
Cidr = Annotated[str, Field(pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")]


# --------------------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class Problem:
    path: str
    problem: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}; expected {self.expected}, got {self.got}"


class ConfigError(Exception):
    """Every problem found in one stack configuration, one per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(set(problems), key=lambda p: (p.path, p.problem))
        super().__init__("\n".join(str(p) for p in self.problems))


# -------------------------------------------------------------------------------------- sections


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExistingNetwork(_Section):
    network: str = Field(description="Name of an existing VPC network in the project.")
    subnetwork: str = Field(description="Name of an existing regional subnetwork with the secondary ranges.")
    pods_range_name: str = Field(description="Secondary range name for pods.")
    services_range_name: str = Field(description="Secondary range name for services.")


class NetworkConfig(_Section):
    """VPC layout. Defaults fit one regional cluster per VPC with room for large TPU pools."""

    existing: ExistingNetwork | None = Field(None, description="Use an existing VPC instead of creating one.")
    subnet_cidr: Cidr = Field("10.0.0.0/20", description="Primary range of the node subnet.")
    pods_cidr: Cidr = Field("10.16.0.0/14", description="Secondary range for pods (VPC-native).")
    services_cidr: Cidr = Field("10.20.0.0/20", description="Secondary range for services.")
    proxy_only_cidr: Cidr | None = Field(
        "10.0.16.0/23", description="REGIONAL_MANAGED_PROXY subnet for regional L7 gateways; null to omit."
    )
    master_cidr: Cidr = Field("172.16.0.0/28", description="Control-plane range of the private cluster (/28).")


class AuthorizedNetwork(_Section):
    cidr: Cidr
    name: str


class MaintenanceWindow(_Section):
    start_time: str = Field("2026-01-03T03:00:00Z", description="RFC 3339 start of the first window (UTC).")
    end_time: str = Field("2026-01-03T09:00:00Z", description="RFC 3339 end of the first window (UTC).")
    recurrence: str = Field("FREQ=WEEKLY;BYDAY=SA,SU", description="RFC 5545 RRULE of the window.")


class SystemPool(_Section):
    machine_type: str = Field("e2-standard-4", description="Machine type of the system pool.")
    min_nodes_per_zone: NonNegativeInt = 1
    max_nodes_per_zone: PositiveInt = 2


class NodeAutoProvisioning(_Section):
    """Cluster autoscaler node auto-provisioning; TPU and GPU limits are derived from the pools."""

    enabled: bool = True
    cpu_max: PositiveInt = 2000
    memory_max_gb: PositiveInt = 16000


class ExistingCluster(_Section):
    name: str
    location: str


class ClusterConfig(_Section):
    """Regional GKE Standard cluster. Every default is the secure, production choice."""

    name: DnsLabel = Field("inference", description="Cluster name (also the prefix of child names).")
    existing: ExistingCluster | None = Field(None, description="Deploy into an existing cluster instead.")
    release_channel: Literal["RAPID", "REGULAR", "STABLE", "UNSPECIFIED"] = "REGULAR"
    auto_upgrade: bool = Field(True, description="Must stay true on a release channel (GKE rejects false).")
    maintenance_window: MaintenanceWindow = MaintenanceWindow()
    authorized_networks: tuple[AuthorizedNetwork, ...] = Field(
        (), description="CIDRs allowed to reach the control plane; 0.0.0.0/0 is refused."
    )
    private_endpoint: bool = Field(False, description="Control plane reachable only from the VPC.")
    gateway_api_channel: Literal["CHANNEL_STANDARD", "CHANNEL_EXPERIMENTAL", "CHANNEL_DISABLED"] = "CHANNEL_STANDARD"
    http_load_balancing: bool = True
    secrets_encryption_key: str | None = Field(
        None, description="Cloud KMS key (projects/P/locations/REGION/keyRings/R/cryptoKeys/K) for etcd secrets."
    )
    system_pool: SystemPool = SystemPool()
    node_auto_provisioning: NodeAutoProvisioning = NodeAutoProvisioning()
    hpa_profile: Literal["PERFORMANCE", "NONE"] = "PERFORMANCE"


class SliceAutoscaling(_Section):
    """Autoscaling in whole slices: a multi-host slice is created and removed as one unit."""

    min_slices: NonNegativeInt = 0
    max_slices: PositiveInt = 1


class TpuPoolConfig(_Section):
    generation: Literal["v5e", "v5p", "v6e"] = "v6e"
    topology: str = Field(description="Slice topology, e.g. 2x4 or 4x4.")
    machine_type: str | None = Field(None, description="Defaults to the catalog's default for the topology.")
    zones: tuple[str, ...] | None = Field(
        None, description="Node locations; default: the first zone of the region offering the generation."
    )
    slices: PositiveInt = Field(1, description="Identical slices (one node pool each).")
    node_count: PositiveInt | None = Field(None, description="Optional cross-check: nodes per node pool.")
    provisioning: Provisioning = "on_demand"
    reservation: str | None = Field(None, description="Specific reservation name (provisioning: reservation).")
    autoscaling: SliceAutoscaling | None = None

    @property
    def slices_per_pool(self) -> tuple[int, int]:
        """(min, max) slices in each node pool: 1..1 unless autoscaled."""
        return (self.autoscaling.min_slices, self.autoscaling.max_slices) if self.autoscaling else (1, 1)

    @property
    def max_slices(self) -> int:
        """Slices across all the pool's node pools at full scale."""
        return self.slices * self.slices_per_pool[1]


class GpuPoolConfig(_Section):
    gpu: str = Field(description="Catalog GPU: l4, a100-40gb, a100-80gb, h100-80gb, h200-141gb, b200.")
    machine_type: str
    zones: tuple[str, ...] | None = Field(None, description="Default: every zone of the region offering the GPU.")
    min_nodes_per_zone: NonNegativeInt = 0
    max_nodes_per_zone: PositiveInt = 1
    provisioning: Literal["on_demand", "spot", "reservation", "flex_start", "queued"] = "on_demand"
    reservation: str | None = None
    driver_version: Literal["DEFAULT", "LATEST"] = "LATEST"
    local_ssd_count: NonNegativeInt = Field(0, description="Local SSDs for ephemeral storage (model cache).")
    secondary_boot_disk_image: str | None = Field(None, description="Container image cache disk image.")


CapacityRung = Literal["reservation", "on_demand", "flex_start", "spot"]


class ComputeClassConfig(_Section):
    pool: str = Field(description="The TPU or GPU pool whose accelerator this class requests.")
    ladder: tuple[CapacityRung, ...] = Field(("on_demand",), description="Capacity fallback order, first tried first.")
    node_pool_auto_creation: bool = True
    active_migration: bool = Field(True, description="Move pods back to higher priorities when they free up.")
    when_unsatisfiable: Literal["DoNotScaleUp", "ScaleUpAnyway"] = "DoNotScaleUp"


class AnywhereCacheConfig(_Section):
    enabled: bool = True
    zones: tuple[str, ...] | None = Field(None, description="Default: every zone where accelerator pools run.")
    ttl_hours: Annotated[int, Field(ge=1, le=168)] = 24


class ModelStorageConfig(_Section):
    bucket_name: str | None = Field(None, description="Default: <project>-<env>-models.")
    location: str | None = Field(None, description="Default: the cluster's region.")
    versioning: bool = True
    soft_delete_days: Annotated[int, Field(ge=0, le=90)] = 7
    kms_key: str | None = None
    anywhere_cache: AnywhereCacheConfig = AnywhereCacheConfig()


class ObservabilityConfig(_Section):
    managed_prometheus: bool = True
    auto_monitoring: bool = Field(False, description="GMP auto-monitoring of supported apps (scope ALL).")
    dcgm: bool = Field(True, description="GKE-managed DCGM metrics when GPU pools exist.")
    scrape_interval: Annotated[str, Field(pattern=r"^\d+(s|m)$")] = "15s"
    custom_metrics_adapter: bool = Field(True, description="Custom Metrics Stackdriver Adapter for HPAs.")


class GatewayConfig(_Section):
    enabled: bool = False
    gateway_class: Literal["gke-l7-rilb", "gke-l7-regional-external-managed"] = "gke-l7-rilb"
    listener_port: Annotated[int, Field(ge=1, le=65535)] = 80


class AutoscalingConfig(_Section):
    min_replicas: PositiveInt = 1
    max_replicas: PositiveInt = 1
    metric: str | None = Field(None, description="Server metric; default per engine (queue size).")
    target: Annotated[float, Field(gt=0)] = 5


Justification = Literal["throughput", "disaggregation", "latency"]


class WorkloadConfig(_Section):
    engine: Engine
    model: str = Field(description="Catalog model, e.g. llama-3.1-405b.")
    weight_dtype: Dtype = "bf16"
    kv_cache_dtype: Dtype = "bf16"
    max_context: PositiveInt = Field(2048, description="Max tokens per sequence (prompt + output).")
    max_prefill_length: PositiveInt | None = Field(None, description="JetStream prefill length; default half the context.")
    per_device_batch_size: PositiveInt | None = Field(None, description="JetStream sequences per chip.")
    max_num_seqs: PositiveInt | None = Field(None, description="vLLM/Triton concurrent sequences per replica.")
    gpu_memory_utilization: Annotated[float, Field(gt=0.1, le=0.98)] = 0.90
    mode: Literal["interleaved", "disaggregated"] = "interleaved"
    tpu_pools: tuple[str, ...] = Field((), description="JetStream: one pool, or two for disaggregated serving.")
    gpu_pool: str | None = None
    gpus: PositiveInt | None = Field(None, description="GPUs per replica; default: the fewest that fit.")
    namespace: DnsLabel = "inference"
    replicas: PositiveInt = 1
    autoscaling: AutoscalingConfig | None = None
    checkpoint: str | None = Field(None, description="Object path in the model bucket.")
    justification: Justification | None = Field(None, description="Why memory is over-provisioned, if it is.")


class ProtectionConfig(_Section):
    """Guards against destroying state. Default: all on in prod, off elsewhere."""

    protect: bool
    deletion_protection: bool
    retain_on_delete: bool

    @classmethod
    def for_environment(cls, env: Environment) -> ProtectionConfig:
        on = env == "prod"
        return cls(protect=on, deletion_protection=on, retain_on_delete=on)


class BudgetConfig(_Section):
    monthly_usd: Annotated[float, Field(gt=0)] | None = Field(None, description="Ceiling for the cost estimate.")


class _Sections(_Section):
    """The ``gke-inference:`` namespace: one field per top-level key."""

    environment: Environment
    network: NetworkConfig = NetworkConfig()
    cluster: ClusterConfig = ClusterConfig()
    tpu_pools: dict[DnsLabel, TpuPoolConfig] = {}
    gpu_pools: dict[DnsLabel, GpuPoolConfig] = {}
    compute_classes: dict[DnsLabel, ComputeClassConfig] = {}
    model_storage: ModelStorageConfig = ModelStorageConfig()
    observability: ObservabilityConfig = ObservabilityConfig()
    gateway: GatewayConfig = GatewayConfig()
    workloads: dict[DnsLabel, WorkloadConfig] = {}
    protection: ProtectionConfig | None = None
    budget: BudgetConfig = BudgetConfig()
    hf_token: str | None = Field(None, description="Hugging Face token; secret config only.")


SECRET_KEYS = frozenset({"hf_token"})
DEFAULT_METRIC = {
    "jetstream-pathways": "jetstream_prefill_backlog_size",
    "vllm": "vllm:num_requests_waiting",
    "triton": "nv_inference_queue_duration_us",
}


# ------------------------------------------------------------------------------- resolved model


@dataclass(frozen=True)
class TpuPool:
    name: str
    config: TpuPoolConfig
    slice: TpuSlice
    zones: tuple[str, ...]


@dataclass(frozen=True)
class GpuPool:
    name: str
    config: GpuPoolConfig
    gpu: GpuType
    zones: tuple[str, ...]

    @property
    def gpus_per_vm(self) -> int:
        return self.gpu.machine_types[self.config.machine_type]


@dataclass(frozen=True)
class Workload:
    name: str
    config: WorkloadConfig
    model: ModelArch
    fit: sizing.MemoryFit
    tpu_pools: tuple[TpuPool, ...] = ()
    gpu_pool: GpuPool | None = None
    gpus: int = 0

    @property
    def service_account(self) -> str:
        """Kubernetes service account the workload runs as (and reads model weights with)."""
        return self.name

    @property
    def metric(self) -> str:
        auto = self.config.autoscaling
        return (auto.metric if auto and auto.metric else None) or DEFAULT_METRIC[self.config.engine]


@dataclass(frozen=True)
class StackConfig:
    """The whole stack, checked: what components and reports consume."""

    stack: str
    project: str
    region: str
    sections: _Sections
    protection: ProtectionConfig
    tpu_pools: Mapping[str, TpuPool]
    gpu_pools: Mapping[str, GpuPool]
    workloads: Mapping[str, Workload]
    has_hf_token: bool

    @property
    def environment(self) -> Environment:
        return self.sections.environment

    @property
    def network(self) -> NetworkConfig:
        return self.sections.network

    @property
    def cluster(self) -> ClusterConfig:
        return self.sections.cluster

    @property
    def observability(self) -> ObservabilityConfig:
        return self.sections.observability

    @property
    def gateway(self) -> GatewayConfig:
        return self.sections.gateway

    @property
    def model_storage(self) -> ModelStorageConfig:
        return self.sections.model_storage

    @property
    def compute_classes(self) -> Mapping[str, ComputeClassConfig]:
        return self.sections.compute_classes

    @property
    def budget(self) -> BudgetConfig:
        return self.sections.budget

    @cached_property
    def accelerator_zones(self) -> tuple[str, ...]:
        zones = {z for p in self.tpu_pools.values() for z in p.zones}
        zones |= {z for p in self.gpu_pools.values() for z in p.zones}
        return tuple(sorted(zones))

    @property
    def bucket_name(self) -> str:
        return self.model_storage.bucket_name or f"{self.project}-{self.environment}-models"

    @property
    def bucket_location(self) -> str:
        return (self.model_storage.location or self.region).upper()

    def compute_class_of(self, pool: str) -> str | None:
        """The ComputeClass that selects `pool`, if any (the loader allows at most one)."""
        return next((name for name, cc in self.compute_classes.items() if cc.pool == pool), None)

    @property
    def cache_zones(self) -> tuple[str, ...]:
        cache = self.model_storage.anywhere_cache
        if not cache.enabled:
            return ()
        return cache.zones if cache.zones is not None else self.accelerator_zones


# ------------------------------------------------------------------------------------- loading


def _key(*parts: str | int) -> str:
    """A key path as ``pulumi config set --path`` spells it: ns:a.b[0].c."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _path(*parts: str | int) -> str:
    return _key(f"{NAMESPACE}:{parts[0]}", *parts[1:])


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value, sort_keys=True, default=str)


def _one_of(values: Collection[str]) -> str:
    return "one of " + ", ".join(sorted(values))


def _decode(value: Any) -> Any:
    """The engine passes structured config as JSON strings; stack files give it parsed."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _pydantic_problems(error: ValidationError) -> Iterator[Problem]:
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = _path(*loc) if loc else NAMESPACE
        kind, got = item["type"], item.get("input")
        if kind == "extra_forbidden":
            known = _known_fields(loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            yield Problem(path, f"unknown key{hint}", _one_of(known), repr(loc[-1]))
        elif kind == "missing":
            yield Problem(path, "required key is missing", "a value", "nothing")
        elif kind == "literal_error":
            yield Problem(path, "not an allowed value", item["ctx"]["expected"].replace("'", ""), _show(got))
        else:
            yield Problem(path, item["msg"].lower(), _expected_from(item), _show(got))


def _expected_from(item: Any) -> str:
    ctx = item.get("ctx") or {}
    if "pattern" in ctx:
        return f"a string matching {ctx['pattern']}"
    for bound, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if bound in ctx:
            return f"a number {word} {ctx[bound]}"
    kind = item["type"]
    return {
        "int_type": "an integer",
        "int_parsing": "an integer",
        "int_from_float": "an integer",
        "bool_type": "true or false",
        "bool_parsing": "true or false",
        "string_type": "a string",
        "float_type": "a number",
        "float_parsing": "a number",
        "dict_type": "a mapping",
        "model_type": "a mapping",
        "tuple_type": "a list",
    }.get(kind, "a valid value")


def _known_fields(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model at `loc` (dict keys in loc are skipped)."""
    model: type[BaseModel] = _Sections
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            continue
        inner = _model_in(field.annotation)
        if inner is not None:
            model = inner
    return sorted(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def load_config(
    raw: Mapping[str, Any],
    *,
    stack: str,
    secret_keys: Collection[str] = (),
    catalog: Catalog | None = None,
) -> StackConfig:
    """Parse and check a whole stack configuration; raise ConfigError listing every problem.

    `raw` maps full config keys (``gcp:region``, ``gke-inference:tpu_pools``) to values, either
    parsed or as the JSON strings the engine passes. `secret_keys` are the full keys stored as
    secrets (``secure:`` in the stack file).
    """
    catalog = catalog or load_catalog()
    problems: list[Problem] = []
    project = raw.get("gcp:project")
    region = raw.get("gcp:region")
    if not isinstance(project, str) or not re.fullmatch(r"[a-z][-a-z0-9]{4,28}[a-z0-9]", project):
        problems.append(Problem("gcp:project", "invalid or missing project id", "a GCP project id", _show(project)))
    if not isinstance(region, str) or not re.fullmatch(r"[a-z]+-[a-z]+\d", region):
        problems.append(Problem("gcp:region", "invalid or missing region", "a GCP region such as us-east5", _show(region)))

    ours = {k.split(":", 1)[1]: _decode(v) for k, v in raw.items() if k.startswith(f"{NAMESPACE}:")}
    for key in sorted(SECRET_KEYS & ours.keys()):
        if f"{NAMESPACE}:{key}" not in secret_keys:
            problems.append(
                Problem(
                    _path(key),
                    "a secret stored in plaintext (set it with `pulumi config set --secret`)",
                    "a secure: value",
                    "plaintext",
                )
            )
    try:
        sections = _Sections.model_validate(ours)
    except ValidationError as error:
        raise ConfigError(problems + list(_pydantic_problems(error))) from None
    if problems:
        raise ConfigError(problems)
    assert isinstance(project, str) and isinstance(region, str)
    checker = _Checker(catalog, region, sections)
    resolved = checker.resolve()
    if checker.problems:
        raise ConfigError(checker.problems)
    tpu_pools, gpu_pools, workloads = resolved
    return StackConfig(
        stack=stack,
        project=project,
        region=region,
        sections=sections,
        protection=sections.protection or ProtectionConfig.for_environment(sections.environment),
        tpu_pools=tpu_pools,
        gpu_pools=gpu_pools,
        workloads=workloads,
        has_hf_token=sections.hf_token is not None,
    )


# ---------------------------------------------------------------------------- cross-field checks


def _in_region(zone: str, region: str) -> bool:
    return zone.rsplit("-", 1)[0] == region


class _Checker:
    """Cross-field checks. Each check appends Problems and carries on, so all are reported."""

    def __init__(self, catalog: Catalog, region: str, sections: _Sections):
        self.catalog = catalog
        self.region = region
        self.s = sections
        self.problems: list[Problem] = []

    def add(self, path: str, problem: str, expected: str, got: Any) -> None:
        self.problems.append(Problem(path, problem, expected, _show(got)))

    def resolve(self) -> tuple[dict[str, TpuPool], dict[str, GpuPool], dict[str, Workload]]:
        self.check_network()
        self.check_cluster()
        tpu = {n: t for n, c in self.s.tpu_pools.items() if (t := self.tpu_pool(n, c))}
        gpu = {n: g for n, gc in self.s.gpu_pools.items() if (g := self.gpu_pool(n, gc))}
        workloads = {n: w for n, c in self.s.workloads.items() if (w := self.workload(n, c, tpu, gpu))}
        self.check_compute_classes(tpu, gpu)
        zones = {z for p in tpu.values() for z in p.zones} | {z for p in gpu.values() for z in p.zones}
        self.check_storage(zones)
        self.check_gateway_and_monitoring()
        return tpu, gpu, workloads

    # -- network and cluster

    def check_network(self) -> None:
        net = self.s.network
        ranges: dict[str, ipaddress.IPv4Network] = {}
        for field in ("subnet_cidr", "pods_cidr", "services_cidr", "proxy_only_cidr", "master_cidr"):
            value = getattr(net, field)
            if value is None:
                continue
            try:
                ranges[field] = ipaddress.IPv4Network(value)
            except ValueError:
                self.add(_path("network", field), "not a network address", "a CIDR with no host bits set", value)
        if "master_cidr" in ranges and ranges["master_cidr"].prefixlen != 28:
            self.add(_path("network", "master_cidr"), "GKE needs a /28 control-plane range", "a /28", net.master_cidr)
        names = sorted(ranges)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if ranges[a].overlaps(ranges[b]):
                    self.add(_path("network", b), f"overlaps network.{a} ({ranges[a]})", "disjoint ranges", str(ranges[b]))

    def check_cluster(self) -> None:
        c = self.s.cluster
        if c.existing and not self.s.network.existing:
            self.add(
                _path("network", "existing"), "an existing cluster runs in an existing VPC", "network.existing naming it", None
            )
        if c.release_channel == "UNSPECIFIED":
            self.add(
                _path("cluster", "release_channel"),
                "new clusters must enrol in a release channel",
                "one of RAPID, REGULAR, STABLE",
                c.release_channel,
            )
        if not c.auto_upgrade:
            self.add(
                _path("cluster", "auto_upgrade"),
                f"GKE rejects auto_upgrade=false on release channel {c.release_channel}; use a maintenance exclusion",
                "true",
                False,
            )
        for i, n in enumerate(c.authorized_networks):
            if n.cidr.endswith("/0"):
                self.add(
                    _path("cluster", "authorized_networks", i, "cidr"),
                    "opens the control plane to the internet",
                    "a specific CIDR",
                    n.cidr,
                )
        if c.secrets_encryption_key:
            self.check_kms_key(_path("cluster", "secrets_encryption_key"), c.secrets_encryption_key, self.region)

    def check_kms_key(self, path: str, key: str, location: str) -> None:
        match = re.fullmatch(r"projects/[^/]+/locations/([^/]+)/keyRings/[^/]+/cryptoKeys/[^/]+", key)
        if not match:
            self.add(path, "not a Cloud KMS key id", "projects/P/locations/L/keyRings/R/cryptoKeys/K", key)
        elif match.group(1).lower() != location.lower():
            self.add(
                path,
                f"key location {match.group(1)} differs from the resource location",
                f"a key in {location.lower()}",
                match.group(1),
            )

    # -- pools

    def zones_for(
        self, path: str, wanted: tuple[str, ...] | None, offered: tuple[str, ...], what: str, single: bool
    ) -> tuple[str, ...]:
        here = tuple(z for z in offered if _in_region(z, self.region))
        if wanted is None:
            if not here:
                self.add(
                    path,
                    f"{what} is not offered in region {self.region}",
                    f"a region among {sorted({z.rsplit('-', 1)[0] for z in offered})}",
                    self.region,
                )
            return here[:1] if single else here
        for z in wanted:
            if not _in_region(z, self.region):
                self.add(path, f"zone {z} is outside the cluster region {self.region}", f"zones of {self.region}", z)
            elif z not in offered:
                self.add(
                    path,
                    f"{what} is not offered in {z} (catalog {self.catalog.as_of})",
                    f"zones among {', '.join(here) or 'none in ' + self.region}",
                    z,
                )
        if len(set(wanted)) != len(wanted):
            self.add(path, "duplicate zone", "distinct zones", list(wanted))
        return wanted

    def tpu_pool(self, name: str, c: TpuPoolConfig) -> TpuPool | None:
        gen = self.catalog.tpus[c.generation]
        base = ("tpu_pools", name)
        if c.topology not in gen.shapes:
            self.add(_path(*base, "topology"), f"not a {c.generation} slice topology", _one_of(gen.shapes), c.topology)
            return None
        allowed = gen.shapes[c.topology]
        machine = c.machine_type or allowed[0]
        if machine not in allowed:
            self.add(
                _path(*base, "machine_type"),
                f"{c.generation} topology {c.topology} is formed by other machine types",
                _one_of(allowed),
                machine,
            )
            return None
        slice_ = self.catalog.tpu_slice(c.generation, c.topology, machine)
        zones = self.zones_for(_path(*base, "zones"), c.zones, gen.zones, f"TPU {c.generation}", single=True)
        if slice_.multi_host and len(zones) != 1:
            self.add(
                _path(*base, "zones"),
                f"a multi-host {c.topology} slice lives in exactly one zone",
                "exactly one zone",
                list(zones),
            )
        if c.node_count is not None and c.node_count != slice_.vms:
            self.add(
                _path(*base, "node_count"),
                f"a {c.generation} {c.topology} slice on {machine} is {slice_.vms} node(s); each node pool holds one whole slice",
                str(slice_.vms),
                c.node_count,
            )
        self.check_capacity(base, c.provisioning, c.reservation)
        if c.autoscaling and slice_.multi_host and c.autoscaling.max_slices > 1:
            self.add(
                _path(*base, "autoscaling", "max_slices"),
                "a multi-host node pool holds exactly one slice; add slices with `slices`",
                "1",
                c.autoscaling.max_slices,
            )
        if c.autoscaling and c.autoscaling.min_slices > c.autoscaling.max_slices:
            self.add(
                _path(*base, "autoscaling", "min_slices"),
                "min_slices exceeds max_slices",
                f"<= {c.autoscaling.max_slices}",
                c.autoscaling.min_slices,
            )
        return TpuPool(name, c, slice_, zones)

    def check_capacity(self, base: tuple[str, ...], provisioning: str, reservation: str | None) -> None:
        if provisioning == "reservation" and not reservation:
            self.add(
                _path(*base, "reservation"), "provisioning 'reservation' needs a reservation name", "a reservation name", None
            )
        if provisioning != "reservation" and reservation:
            self.add(_path(*base, "provisioning"), "a reservation is named but not consumed", "'reservation'", provisioning)

    def gpu_pool(self, name: str, c: GpuPoolConfig) -> GpuPool | None:
        base = ("gpu_pools", name)
        gpu = self.catalog.gpus.get(c.gpu)
        if gpu is None:
            self.add(_path(*base, "gpu"), "not a catalog GPU", _one_of(self.catalog.gpus), c.gpu)
            return None
        if c.machine_type not in gpu.machine_types:
            owner = self.catalog.gpu_for_machine(c.machine_type)
            why = (
                f"{c.machine_type} carries {owner.gke_accelerator}"
                if owner
                else f"{c.machine_type} takes no {gpu.gke_accelerator}"
            )
            self.add(_path(*base, "machine_type"), why, _one_of(gpu.machine_types), c.machine_type)
            return None
        zones = self.zones_for(_path(*base, "zones"), c.zones, gpu.zones, gpu.gke_accelerator, single=False)
        if c.min_nodes_per_zone > c.max_nodes_per_zone:
            self.add(
                _path(*base, "min_nodes_per_zone"),
                "exceeds max_nodes_per_zone",
                f"<= {c.max_nodes_per_zone}",
                c.min_nodes_per_zone,
            )
        self.check_capacity(base, c.provisioning, c.reservation)
        return GpuPool(name, c, gpu, zones)

    # -- workloads

    def workload(self, name: str, c: WorkloadConfig, tpu: dict[str, TpuPool], gpu: dict[str, GpuPool]) -> Workload | None:
        base = ("workloads", name)
        model = self.catalog.models.get(c.model)
        if model is None:
            self.add(_path(*base, "model"), "not a catalog model", _one_of(self.catalog.models), c.model)
            return None
        auto = c.autoscaling
        if auto and auto.min_replicas > auto.max_replicas:
            self.add(
                _path(*base, "autoscaling", "min_replicas"),
                f"min_replicas {auto.min_replicas} > max_replicas {auto.max_replicas}",
                f"<= {auto.max_replicas}",
                auto.min_replicas,
            )
        if auto and not (self.s.observability.managed_prometheus and self.s.observability.custom_metrics_adapter):
            self.add(
                _path(*base, "autoscaling"),
                "autoscaling on a server metric needs observability.managed_prometheus and observability.custom_metrics_adapter",
                "both true",
                "disabled",
            )
        if c.engine == "jetstream-pathways":
            return self.jetstream(name, base, c, model, tpu)
        return self.gpu_server(name, base, c, model, gpu)

    def jetstream(
        self, name: str, base: tuple[str, ...], c: WorkloadConfig, model: ModelArch, tpu: dict[str, TpuPool]
    ) -> Workload | None:
        if c.gpu_pool or c.max_num_seqs or c.gpus:
            self.add(
                _path(*base, "engine"),
                "jetstream-pathways runs on TPU pools only",
                "tpu_pools and per_device_batch_size",
                "gpu settings",
            )
        if c.per_device_batch_size is None:
            self.add(
                _path(*base, "per_device_batch_size"),
                "jetstream-pathways needs a batch size per chip",
                "a positive integer",
                None,
            )
            return None
        if not model.maxtext_name:
            self.add(_path(*base, "model"), "no MaxText config for this model", "a model with a MaxText config", c.model)
        want = 2 if c.mode == "disaggregated" else 1
        if len(c.tpu_pools) != want:
            self.add(
                _path(*base, "tpu_pools"), f"{c.mode} serving uses {want} TPU pool(s)", f"{want} pool name(s)", list(c.tpu_pools)
            )
            return None
        pools = []
        for pool_name in c.tpu_pools:
            if pool_name not in tpu:
                if pool_name not in self.s.tpu_pools:
                    self.add(
                        _path(*base, "tpu_pools"),
                        f"no TPU pool named {pool_name}",
                        _one_of(self.s.tpu_pools) if self.s.tpu_pools else "a tpu_pools entry",
                        pool_name,
                    )
                return None
            pools.append(tpu[pool_name])
        shapes = {(p.slice.topology, p.slice.machine_type) for p in pools}
        if len(shapes) != 1:
            self.add(
                _path(*base, "tpu_pools"),
                "prefill and decode slices must have the same shape",
                "pools of one topology and machine type",
                sorted(shapes),
            )
            return None
        slice_ = pools[0].slice
        fit = sizing.tpu_fit(
            model,
            slice_,
            weight_dtype=c.weight_dtype,
            kv_dtype=c.kv_cache_dtype,
            max_context=c.max_context,
            per_device_batch_size=c.per_device_batch_size,
        )
        if not fit.fits:
            smallest = sizing.smallest_tpu_slice(
                self.catalog,
                slice_.generation.name,
                model,
                weight_dtype=c.weight_dtype,
                kv_dtype=c.kv_cache_dtype,
                max_context=c.max_context,
                per_device_batch_size=c.per_device_batch_size,
            )
            hint = (
                f"smallest {slice_.generation.name} that fits: {smallest.topology}"
                if smallest
                else f"no {slice_.generation.name} slice fits"
            )
            self.add(
                _path(*base, "tpu_pools"),
                f"{c.model} ({c.weight_dtype} weights, {c.kv_cache_dtype} KV, {fit.sequences} x {c.max_context} tokens) "
                f"needs {fit.required_gib:.1f} GiB but {fit.shape} provides {fit.usable_gib:.1f} GiB",
                f"a slice with >= {fit.required_gib:.1f} GiB ({hint})",
                fit.shape,
            )
            return None
        replicas = c.autoscaling.max_replicas if c.autoscaling else c.replicas
        for pool in dict.fromkeys(c.tpu_pools):
            needed = replicas * c.tpu_pools.count(pool)
            capacity = tpu[pool].config.max_slices
            if needed > capacity:
                self.add(
                    _path(*base, "tpu_pools"),
                    f"{replicas} replica(s) need {needed} slice(s) of tpu_pools.{pool}, which holds {capacity}",
                    f"<= {capacity} slices",
                    needed,
                )
        if c.max_prefill_length and c.max_prefill_length >= c.max_context:
            self.add(
                _path(*base, "max_prefill_length"),
                "prefill must leave room for output tokens",
                f"< max_context ({c.max_context})",
                c.max_prefill_length,
            )
        return Workload(name, c, model, fit, tpu_pools=tuple(pools))

    def gpu_server(
        self, name: str, base: tuple[str, ...], c: WorkloadConfig, model: ModelArch, gpu: dict[str, GpuPool]
    ) -> Workload | None:
        if c.tpu_pools or c.per_device_batch_size:
            self.add(_path(*base, "engine"), f"{c.engine} runs on GPU pools here", "gpu_pool and max_num_seqs", "TPU settings")
        if c.mode != "interleaved":
            self.add(_path(*base, "mode"), "disaggregated serving is built for jetstream-pathways only", "'interleaved'", c.mode)
        if c.gpu_pool is None:
            self.add(
                _path(*base, "gpu_pool"),
                f"{c.engine} needs a GPU pool",
                _one_of(self.s.gpu_pools) if self.s.gpu_pools else "a gpu_pools entry",
                None,
            )
            return None
        if c.gpu_pool not in gpu:
            if c.gpu_pool not in self.s.gpu_pools:
                self.add(
                    _path(*base, "gpu_pool"),
                    f"no GPU pool named {c.gpu_pool}",
                    _one_of(self.s.gpu_pools) if self.s.gpu_pools else "a gpu_pools entry",
                    c.gpu_pool,
                )
            return None
        pool = gpu[c.gpu_pool]
        seqs = c.max_num_seqs or 16
        kwargs = dict(engine=c.engine, weight_dtype=c.weight_dtype, kv_dtype=c.kv_cache_dtype, max_context=c.max_context)
        count = c.gpus or sizing.smallest_gpu_count(model, pool.gpu, max_num_seqs=seqs, **kwargs)  # type: ignore[arg-type]
        if count is None:
            self.add(
                _path(*base, "gpu_pool"),
                f"{c.model} does not fit on up to 64 {pool.gpu.name} GPUs",
                "a larger GPU",
                pool.gpu.name,
            )
            return None
        fit = sizing.gpu_fit(model, pool.gpu, count, max_num_seqs=seqs, gpu_memory_utilization=c.gpu_memory_utilization, **kwargs)  # type: ignore[arg-type]
        if not fit.fits:
            self.add(
                _path(*base, "gpus"),
                f"{c.model} ({c.weight_dtype} weights, {c.kv_cache_dtype} KV, {seqs} x {c.max_context} tokens) "
                f"needs {fit.required_gib:.1f} GiB but {fit.shape} provides {fit.usable_gib:.1f} GiB",
                f"GPUs with >= {fit.required_gib:.1f} GiB usable",
                fit.shape,
            )
            return None
        layout = sizing.gpu_parallelism(count, pool.gpus_per_vm)
        if not sizing.valid_tensor_parallel(model, layout.tensor_parallel):
            self.add(
                _path(*base, "gpus"),
                f"tensor-parallel size {layout.tensor_parallel} does not divide {model.q_heads} attention heads",
                "a divisor of the heads",
                count,
            )
        pool_nodes = pool.config.max_nodes_per_zone * len(pool.zones)
        if layout.nodes > pool_nodes:
            self.add(
                _path(*base, "gpus"),
                f"one replica needs {layout.nodes} {pool.config.machine_type} node(s) but gpu_pools.{pool.name} scales to {pool_nodes}",
                f"<= {pool_nodes * pool.gpus_per_vm} GPUs, or a larger pool",
                count,
            )
        if count > pool.gpus_per_vm and count % pool.gpus_per_vm:
            self.add(
                _path(*base, "gpus"),
                f"a multi-node replica uses whole {pool.config.machine_type} nodes ({pool.gpus_per_vm} GPUs)",
                f"a multiple of {pool.gpus_per_vm}",
                count,
            )
        return Workload(name, c, model, fit, gpu_pool=pool, gpus=count)

    # -- classes, storage, gateway

    def check_compute_classes(self, tpu: dict[str, TpuPool], gpu: dict[str, GpuPool]) -> None:
        claimed: dict[str, str] = {}
        for name, cc in self.s.compute_classes.items():
            if cc.pool in claimed:
                self.add(
                    _path("compute_classes", name, "pool"),
                    f"pool {cc.pool} is already selected by compute class {claimed[cc.pool]} (a node carries one class label)",
                    "one class per pool",
                    cc.pool,
                )
            claimed.setdefault(cc.pool, name)
            base = ("compute_classes", name)
            pools: dict[str, TpuPoolConfig | GpuPoolConfig] = {**self.s.tpu_pools, **self.s.gpu_pools}
            if cc.pool not in pools:
                self.add(
                    _path(*base, "pool"),
                    f"no TPU or GPU pool named {cc.pool}",
                    _one_of(pools) if pools else "a pool name",
                    cc.pool,
                )
                continue
            if "reservation" in cc.ladder and not pools[cc.pool].reservation:
                self.add(
                    _path(*base, "ladder"),
                    f"pool {cc.pool} names no reservation to try first",
                    f"a reservation on {cc.pool}",
                    list(cc.ladder),
                )
            if len(set(cc.ladder)) != len(cc.ladder) or not cc.ladder:
                self.add(_path(*base, "ladder"), "each capacity rung once", "distinct rungs", list(cc.ladder))
            if "flex_start" in cc.ladder and "spot" in cc.ladder and cc.ladder.index("spot") < cc.ladder.index("flex_start"):
                self.add(_path(*base, "ladder"), "spot is the last resort", "flex_start before spot", list(cc.ladder))

    def check_storage(self, pool_zones: set[str]) -> None:
        ms = self.s.model_storage
        location = (ms.location or self.region).lower()
        if ms.location and location != self.region:
            self.add(
                _path("model_storage", "location"),
                "a bucket outside the cluster region pays egress and loads slowly",
                self.region,
                ms.location,
            )
        if ms.kms_key:
            self.check_kms_key(_path("model_storage", "kms_key"), ms.kms_key, location)
        if ms.anywhere_cache.enabled and ms.anywhere_cache.zones is not None:
            zones = ms.anywhere_cache.zones
            path = _path("model_storage", "anywhere_cache", "zones")
            for z in zones:
                if not _in_region(z, location):
                    self.add(path, f"zone {z} is not in bucket location {location.upper()}", f"zones of {location}", z)
                elif z not in pool_zones:
                    self.add(
                        path,
                        f"no accelerator pool runs in {z}; the cache serves same-zone clients only",
                        _one_of(pool_zones) if pool_zones else "a pool zone",
                        z,
                    )
            if len(set(zones)) != len(zones):
                self.add(path, "one cache per zone per bucket", "distinct zones", list(zones))

    def check_gateway_and_monitoring(self) -> None:
        gw, cluster, net = self.s.gateway, self.s.cluster, self.s.network
        if gw.enabled:
            if net.proxy_only_cidr is None and net.existing is None:
                self.add(
                    _path("network", "proxy_only_cidr"),
                    f"{gw.gateway_class} needs an ACTIVE REGIONAL_MANAGED_PROXY subnet in {self.region}",
                    "a CIDR",
                    None,
                )
            if cluster.gateway_api_channel == "CHANNEL_DISABLED":
                self.add(
                    _path("cluster", "gateway_api_channel"),
                    "the Inference Gateway needs the Gateway API",
                    "CHANNEL_STANDARD",
                    cluster.gateway_api_channel,
                )
            if not cluster.http_load_balancing:
                self.add(
                    _path("cluster", "http_load_balancing"),
                    "the GKE Gateway controller needs the HTTP load balancing add-on",
                    "true",
                    False,
                )
        if self.s.workloads and not self.s.observability.managed_prometheus:
            self.add(
                _path("observability", "managed_prometheus"),
                "serving workloads get PodMonitorings, which need Managed Prometheus",
                "true",
                False,
            )


def read_pulumi_config() -> tuple[dict[str, Any], set[str]]:
    """Every config key the running Pulumi program was given, and which of them are secret."""
    from pulumi.runtime import config as runtime_config

    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    # The language host passes secret keys either through set_all_config or the environment.
    secret = {k for k in values if runtime_config.is_config_secret(k)} | set(runtime_config.get_config_secret_keys_env())
    return values, secret
