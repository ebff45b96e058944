"""The resolved stack: sections joined to their catalog entries and fits, as components and reports consume them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from infra import names, sizing
from infra.catalog import GpuType, ModelArch, TpuSlice
from infra.config.schema import (
    DEFAULT_IP_ENDPOINT,
    DEFAULT_METRIC,
    BudgetConfig,
    ClusterConfig,
    ComputeClassConfig,
    Environment,
    GatewayConfig,
    GpuPoolConfig,
    IpEndpoint,
    ModelStorageConfig,
    NetworkConfig,
    ObservabilityConfig,
    ProtectionConfig,
    TpuPoolConfig,
    WorkloadConfig,
    _Sections,
)


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
    advisories: tuple[str, ...] = ()
    """Config findings that do not stop the plan (the checks' advisories), one line each."""

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
    def ip_endpoint(self) -> IpEndpoint:
        """cluster.ip_endpoint, or the environment's default (DEFAULT_IP_ENDPOINT)."""
        return self.cluster.ip_endpoint or DEFAULT_IP_ENDPOINT[self.environment]

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
        """The model bucket (infra/names.py: `<project>-<stack>-models` unless configured)."""
        return names.bucket_name(self)

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
