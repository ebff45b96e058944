"""The sections of the stack file as pydantic models: one field per key, snake_case as written there."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from infra import sizing
from infra.catalog import Provisioning

Environment = Literal["dev", "staging", "prod"]
Dtype = sizing.Dtype
Engine = sizing.Engine
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
DNS_LABEL = r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"
DnsLabel = Annotated[str, Field(pattern=DNS_LABEL)]
Cidr = Annotated[str, Field(pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")]


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


IpEndpoint = Literal["public", "private", "off"]
DEFAULT_IP_ENDPOINT: dict[Environment, IpEndpoint] = {"dev": "public", "staging": "private", "prod": "private"}
"""cluster.ip_endpoint when unset: dev keeps the team VPN's kubectl path (authorized networks), the others the VPC only."""


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
    ip_endpoint: IpEndpoint | None = Field(
        None,
        description="The control plane's IP endpoint: 'public' (admits only authorized_networks), 'private' (the VPC "
        "only) or 'off' (none). Default: public in dev, private in staging and prod. Clients outside the VPC (CI, "
        "people) use the DNS-based endpoint, which is always on and authorised by IAM (container.clusters.connect).",
    )
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
    bucket_name: str | None = Field(
        None,
        description="Default: <project>-<stack>-models, <project>-models when the stack name ends the project id (infra/names.py).",
    )
    location: str | None = Field(None, description="Default: the cluster's region.")
    versioning: bool = True
    soft_delete_days: Annotated[int, Field(ge=0, le=90)] = 7
    kms_key: str | None = None
    anywhere_cache: AnywhereCacheConfig = AnywhereCacheConfig()


class ObservabilityConfig(_Section):
    managed_prometheus: bool = True
    auto_monitoring: bool = Field(False, description="GMP auto-monitoring of supported apps (scope ALL).")
    dcgm: bool = Field(True, description="GKE-managed DCGM metrics when GPU pools exist.")
    scrape_interval: Annotated[str, Field(pattern=r"^[1-9]\d*(s|m)$")] = Field(
        "15s", description="PodMonitoring interval: a whole number of seconds or minutes, at least 1s (0s never scrapes)."
    )
    custom_metrics_adapter: bool = Field(True, description="Custom Metrics Stackdriver Adapter for HPAs.")


class GatewayTls(_Section):
    certificate: str = Field(
        min_length=1, description="Certificate Manager certificate in the cluster's region, for the HTTPS listener."
    )


class GatewayIap(_Section):
    """Identity-Aware Proxy on every backend (`GCPBackendPolicy.spec.default.iap`). The pinned API
    (GoogleCloudPlatform/gke-gateway-api @fc40d606, `apis/networking/v1/gcpbackendpolicy_types.go`) requires the
    OAuth client IAP signs users in with when it is enabled: its ID here, its secret in the secret config
    `iap_client_secret` (the stack writes it into a Kubernetes Secret beside each policy)."""

    enabled: bool = True
    client_id: str | None = Field(
        None,
        pattern=r"^[0-9]+-[a-z0-9]+\.apps\.googleusercontent\.com$",
        description="OAuth client ID (<number>-<id>.apps.googleusercontent.com); required when enabled.",
    )


class PickerConfig(_Section):
    """The endpoint picker's requests (its memory limit keeps the chart's 2:1 ratio); default: the chart's."""

    cpu: Annotated[float, Field(gt=0)] = Field(description="CPUs requested (no CPU limit, as the chart).")
    memory_gib: Annotated[float, Field(gt=0)] = Field(description="Memory requested, GiB.")


class GatewayConfig(_Section):
    """One GKE Inference Gateway per environment: every exposed model under /models/<model>/ on one host."""

    enabled: bool = False
    gateway_class: Literal["gke-l7-rilb", "gke-l7-regional-external-managed"] = "gke-l7-rilb"
    listener_port: Annotated[int, Field(ge=1, le=65535)] = Field(80, description="Port of the HTTP listener (no TLS).")
    hostname: str | None = Field(None, description="Host the routes answer for; default: any.")
    tls: GatewayTls | None = Field(None, description="HTTPS on 443 with this certificate; required outside dev when external.")
    iap: GatewayIap | None = Field(
        None, description="Identity-Aware Proxy in front of every backend; default: on for the external class."
    )
    routes: tuple[str, ...] | None = Field(None, description="Workloads to expose; default: every real-time server.")
    picker: PickerConfig | None = Field(
        None, description="Each vLLM pool's endpoint picker; default: llm-d-router's chart (8 CPU, 8 GiB, 16 GiB limit)."
    )
    min_timeout_s: Annotated[int, Field(ge=10, le=3600)] = Field(
        60, description="Floor of a backend's request timeout (streamed responses)."
    )
    tokens_per_second: Annotated[float, Field(gt=0)] = Field(
        10, description="A conservative per-request decode rate: the timeout covers max_context tokens at it."
    )

    @property
    def external(self) -> bool:
        return self.gateway_class == "gke-l7-regional-external-managed"

    @property
    def iap_enabled(self) -> bool:
        return self.external if self.iap is None else self.iap.enabled


GAUGE_TARGET = 5.0
"""Default per-pod target of a gauge: 5 queued requests (GKE's vLLM autoscaling guidance, seed 003)."""
RATE_TARGET_SHARE = 0.7
"""Default target of a rate (tokens/s): this share of one replica's modelled full-batch decode throughput, so the
HPA adds a replica before the one it has saturates (the capacity model's error is in infra/catalog/throughput.yaml)."""


class AutoscalingConfig(_Section):
    min_replicas: PositiveInt = 1
    max_replicas: PositiveInt = 1
    metric: str | None = Field(None, description="Server metric; default per engine (queue size).")
    target: Annotated[float, Field(gt=0)] | None = Field(
        None,
        description=f"Per-pod value the HPA holds the metric at; default: {GAUGE_TARGET:g} for a gauge, and for a rate (tokens/s) "
        f"{RATE_TARGET_SHARE:.0%} of what one replica decodes at full batch (infra/serving/common.py).",
    )


Justification = Literal["throughput", "disaggregation", "latency"]
ModelLoading = Literal["gcsfuse", "hyperdisk-ml"]


class BatchConfig(_Section):
    """Offline inference (vLLM's run-batch) over an OpenAI batch JSONL file in the model bucket, results written back."""

    input: str = Field(
        "input-{index}.jsonl", description="OpenAI batch JSONL under batch/<workload>/ in the model bucket; {index} = pod index."
    )
    output: str = Field(
        "output-{index}.jsonl", description="Results file under batch/<workload>/ (the only prefix the Job may write)."
    )
    parallelism: PositiveInt = Field(1, description="Indexed pods, each over its own input part.")
    backoff_limit: NonNegativeInt = Field(3, description="Retries before the Job fails.")
    deadline_hours: Annotated[float, Field(gt=0, le=168)] = Field(12, description="activeDeadlineSeconds, in hours.")


DEFAULT_MAX_NUM_SEQS = 16
"""vLLM/Triton sequences per replica when a workload sets none: the memory-fit check, the server's --max-num-seqs and
the autoscaling simulation all read this one number."""


class WorkloadConfig(_Section):
    engine: Engine
    model: str = Field(description="Catalog model, e.g. llama-3.1-405b.")
    weight_dtype: Dtype = "bf16"
    kv_cache_dtype: Dtype = "bf16"
    max_context: PositiveInt = Field(2048, description="Max tokens per sequence (prompt + output).")
    max_prefill_length: PositiveInt | None = Field(None, description="JetStream prefill length; default half the context.")
    per_device_batch_size: PositiveInt | None = Field(None, description="JetStream sequences per chip.")
    max_num_seqs: PositiveInt | None = Field(
        None, description=f"vLLM/Triton concurrent sequences per replica (default {DEFAULT_MAX_NUM_SEQS})."
    )
    gpu_memory_utilization: Annotated[float, Field(gt=0.1, le=0.98)] = 0.90
    mode: Literal["interleaved", "disaggregated"] = "interleaved"
    tpu_pools: tuple[str, ...] = Field(
        (), description="JetStream: one pool, or two for disaggregated serving; vLLM on TPU: one single-host pool."
    )
    gpu_pool: str | None = None
    gpus: PositiveInt | None = Field(None, description="GPUs per replica; default: the fewest that fit.")
    tensor_parallel: PositiveInt | None = Field(None, description="vLLM tensor parallelism; default: GPUs per node used.")
    model_loading: ModelLoading = Field(
        "gcsfuse", description="How weights reach the server: GCS FUSE, or a Hyperdisk ML volume."
    )
    batch: BatchConfig | None = Field(None, description="Run as an offline batch Job instead of a server.")
    slo_ttft_s: Annotated[float, Field(gt=0, le=600)] = Field(
        5.0, description="Time-to-first-token objective the autoscaling simulation scores (share of requests within it)."
    )
    objectives: dict[DnsLabel, int] = Field(
        {},
        description="Objective -> priority (vLLM behind the gateway): a client sends x-llm-d-inference-objective: "
        "<workload>-<objective>; higher is served first, below 0 may be shed.",
    )
    namespace: DnsLabel = "inference"
    replicas: PositiveInt = 1
    autoscaling: AutoscalingConfig | None = None
    checkpoint: str | None = Field(None, description="Object path in the model bucket.")
    justification: Justification | None = Field(None, description="Why memory is over-provisioned, if it is.")

    @property
    def sequences(self) -> int:
        """What a vLLM/Triton replica batches at once: max_num_seqs, or the stack's default."""
        return self.max_num_seqs or DEFAULT_MAX_NUM_SEQS


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


DEFAULT_MAX_ERROR_RATIO = 0.01
"""The gateway's 5xx share of requests, per route, that pages: 1 %."""


class LoadTestConfig(_Section):
    """Post-deploy load tests (inference-perf): rate steps up to each routed model's HPA design load."""

    stages: Annotated[int, Field(ge=1, le=20)] = Field(5, description="Rate steps, evenly spaced up to the peak.")
    stage_seconds: Annotated[int, Field(ge=30, le=3600)] = Field(120, description="Duration of each step.")
    peak_rps: dict[DnsLabel, Annotated[float, Field(gt=0)]] = Field(
        {}, description="Workload -> top rate (requests/s) instead of its HPA design load at max_replicas."
    )
    over_capacity: bool = Field(
        False, description="Allow a peak above what the pools serve at max_replicas (the capacity model's figure)."
    )


class MonitoringConfig(_Section):
    """One Cloud Monitoring dashboard per environment, alert policies with thresholds derived from the workloads, and
    the load tests. Owned by the serving stack (they name its workloads, routes and HPAs)."""

    enabled: bool = True
    notification_channels: tuple[
        Annotated[str, Field(pattern=r"^projects/[a-z][-a-z0-9]{4,28}[a-z0-9]/notificationChannels/[0-9]+$")], ...
    ] = Field(
        (),
        description="Existing Cloud Monitoring notification channels (projects/P/notificationChannels/ID) every alert "
        "notifies; required in prod. Created by whoever owns on-call, not by this stack.",
    )
    max_error_ratio: Annotated[float, Field(gt=0, lt=1)] = Field(
        DEFAULT_MAX_ERROR_RATIO, description="Share of a route's requests answered 5xx at the gateway that fires the alert."
    )
    dashboard_metrics: tuple[str, ...] = Field(
        (), description="More engine metrics to chart per workload; each must be one its engine exports."
    )
    load_test: LoadTestConfig = LoadTestConfig()


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
    monitoring: MonitoringConfig = MonitoringConfig()
    platform_stack: str | None = Field(
        None,
        description="The serving stack's StackReference to its platform stack; default: "
        "organization/gke-inference-platform/<this stack> (a self-managed backend's name).",
    )
    hf_token: str | None = Field(None, description="Hugging Face token; secret config only.")
    iap_client_secret: str | None = Field(None, description="The IAP OAuth client's secret; secret config only.")


SECRET_KEYS = frozenset({"hf_token", "iap_client_secret"})
DEFAULT_METRIC = {
    "jetstream-pathways": "jetstream_prefill_backlog_size",
    "vllm": "vllm:num_requests_waiting",
    "triton": "vllm:generation_tokens_total",
}
