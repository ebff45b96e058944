"""One typed, frozen model of a stack's configuration, and the loader that checks all of it.

Keys live under the ``gke-inference:`` namespace as structured objects, plus ``gcp:project`` and
``gcp:region``. Field names are snake_case in the stack file, exactly as written in ``schema``, so an error's
key path can be pasted into ``pulumi config set --path``. Unknown keys are errors; keys of other
namespaces (``gcp:``, ``kubernetes:``, ``pulumi:``) other than project/region are left to their
providers.

``load_config`` parses every section, runs every cross-field check (catalog, sizing, references
between sections) and raises one ``ConfigError`` listing every problem, one per line, in the form
``<key path>: <problem>; expected <x>, got <y>``. The program calls it before it registers the
first resource, so a bad stack registers nothing.

Layout: ``errors`` (Problem, key paths), ``schema`` (the pydantic sections), ``model`` (the resolved
stack), ``checks`` (cross-field checks, one module per area) and ``loader``. Import from here.
"""

from __future__ import annotations

from infra.config.errors import NAMESPACE, ConfigError, Problem
from infra.config.loader import load_config, program_config, read_pulumi_config
from infra.config.model import GpuPool, StackConfig, TpuPool, Workload
from infra.config.schema import (
    DEFAULT_METRIC,
    DNS_LABEL,
    SECRET_KEYS,
    AnywhereCacheConfig,
    AuthorizedNetwork,
    AutoscalingConfig,
    BatchConfig,
    BudgetConfig,
    CapacityRung,
    Cidr,
    ClusterConfig,
    ComputeClassConfig,
    DnsLabel,
    Dtype,
    Engine,
    Environment,
    ExistingCluster,
    ExistingNetwork,
    GatewayConfig,
    GpuPoolConfig,
    Justification,
    MaintenanceWindow,
    ModelStorageConfig,
    NetworkConfig,
    NodeAutoProvisioning,
    NonNegativeInt,
    ObservabilityConfig,
    PositiveInt,
    ProtectionConfig,
    SliceAutoscaling,
    SystemPool,
    TpuPoolConfig,
    WorkloadConfig,
)

__all__ = [
    "DEFAULT_METRIC",
    "DNS_LABEL",
    "NAMESPACE",
    "SECRET_KEYS",
    "AnywhereCacheConfig",
    "AuthorizedNetwork",
    "AutoscalingConfig",
    "BatchConfig",
    "BudgetConfig",
    "CapacityRung",
    "Cidr",
    "ClusterConfig",
    "ComputeClassConfig",
    "ConfigError",
    "DnsLabel",
    "Dtype",
    "Engine",
    "Environment",
    "ExistingCluster",
    "ExistingNetwork",
    "GatewayConfig",
    "GpuPool",
    "GpuPoolConfig",
    "Justification",
    "MaintenanceWindow",
    "ModelStorageConfig",
    "NetworkConfig",
    "NodeAutoProvisioning",
    "NonNegativeInt",
    "ObservabilityConfig",
    "PositiveInt",
    "Problem",
    "ProtectionConfig",
    "SliceAutoscaling",
    "StackConfig",
    "SystemPool",
    "TpuPool",
    "TpuPoolConfig",
    "Workload",
    "WorkloadConfig",
    "load_config",
    "program_config",
    "read_pulumi_config",
]
