"""What every server shares, TPU or GPU: its HPA behaviour, its in-cluster endpoint, its image-digest exception."""

from __future__ import annotations

import math

from components.serving_objects import Scaling
from infra import sizing, versions
from infra.catalog import Catalog
from infra.config import Workload
from infra.config.schema import GAUGE_TARGET, RATE_TARGET_SHARE
from infra.simulate.capacity import replica_capacity

IMAGE_POLICY = "inf-k8s-image-pinned"
PULL_POLICY_SKIP = (
    "pinned tags with IfNotPresent: a multi-GB serving image pulled again on every restart delays recovery; "
    "tags are immutable in infra/versions.py"
)
HPA_MAX_PERIOD_S, HPA_MAX_WINDOW_S = 1800, 3600
"""Upper bounds the HPA API accepts for a policy's periodSeconds and a stabilization window."""


def hpa_target(catalog: Catalog, workload: Workload) -> float:
    """The per-pod value the HPA holds its metric at: the configured target, else the default for a gauge, else (a
    rate of tokens) a share of what one replica decodes at full batch, each sequence half-way through max_context."""
    auto = workload.config.autoscaling
    assert auto is not None
    if auto.target is not None:
        return auto.target
    if catalog.metrics[workload.config.engine].kind(workload.metric) == "gauge":
        return GAUGE_TARGET
    return design_tokens_per_s(catalog, workload)


def design_tokens_per_s(catalog: Catalog, workload: Workload) -> float:
    """Output tokens/s one replica is meant to carry: a share of what it decodes at full batch, each sequence half-way
    through max_context (the default target of a token-rate HPA, and the load tests' design load per replica)."""
    capacity = replica_capacity(catalog, workload)
    return float(round(RATE_TARGET_SHARE * capacity.decode_tokens_per_s(workload.config.max_context // 2)))


def scaling(catalog: Catalog, workload: Workload, start: sizing.StartupEstimate) -> Scaling | None:
    """Add at most one replica per start time (a new group serves nothing before it has started); wait twice
    that before removing one (bringing it back costs a start time)."""
    auto = workload.config.autoscaling
    if auto is None:
        return None
    return Scaling(
        min_replicas=auto.min_replicas,
        max_replicas=auto.max_replicas,
        metric=workload.metric,
        metric_kind=catalog.metrics[workload.config.engine].kind(workload.metric),
        target=hpa_target(catalog, workload),
        scale_up_period_s=min(HPA_MAX_PERIOD_S, math.ceil(start.predicted_s)),
        scale_down_window_s=min(HPA_MAX_WINDOW_S, math.ceil(2 * start.predicted_s)),
    )


def cluster_url(service: str, *, namespace: str, port: int) -> str:
    """A server's in-cluster address (the Inference Gateway routes to the same Service)."""
    return f"http://{service}.{namespace}.svc.cluster.local:{port}"


def image_exceptions(images: list[versions.Image]) -> dict[str, str]:
    """The image-digest policy exception a workload carries when some of its images have no known digest."""
    reason = versions.undigested_reason(images)
    return {IMAGE_POLICY: reason} if reason else {}


def checkov_skips(image: versions.Image) -> dict[str, str]:
    skips = {"CKV_K8S_15": PULL_POLICY_SKIP}
    reason = versions.undigested_reason([image])
    if reason:
        skips["CKV_K8S_43"] = reason.replace("=", " ")
    return skips
