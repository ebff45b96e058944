"""Every pinned version in one place: Kubernetes API level, charts, CRDs, images.

Bumping a version is a one-line change here, reviewed in a pull request with its plan diff. Renovate
opens those pull requests (renovate.json): the ``# renovate:`` comment above each pin names the datasource
new releases come from, and a versioning scheme where a tag is not plain semver. An Image's or a Chart's
name is its depName; a bare version string names its depName in the comment. A pin written from another
(ENDPOINT_PICKER_IMAGE, the CRD URL) follows it and carries no comment.
"""

from __future__ import annotations

from dataclasses import dataclass

# renovate: datasource=endoflife-date depName=google-kubernetes-engine extractVersion=^(?<version>\d+\.\d+)
KUBERNETES_MINOR = "1.34"
"""Kubernetes API level the rendered manifests are validated against (GKE REGULAR channel, 2026-11).

The GKE Gateway policy objects (HealthCheckPolicy, GCPBackendPolicy) are GKE's API, not a pin: they were checked against
GoogleCloudPlatform/gke-gateway-api @fc40d606 (`config/crd/`, `apis/networking/v1/*_types.go`)."""


@dataclass(frozen=True)
class Image:
    """A container image pinned by tag, and by digest where its publisher's digest is known."""

    repository: str
    tag: str
    digest: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}" + (f"@{self.digest}" if self.digest else "")


def undigested_reason(images: list[Image]) -> str | None:
    """Why these images run without a digest (for the policy exception), or None when all have one."""
    missing = sorted({f"{i.repository.rsplit('/', 1)[-1]}:{i.tag}" for i in images if not i.digest})
    if not missing:
        return None
    return (
        f"no digest is published for {', '.join(missing)}; pinned by exact tag in infra/versions.py. "
        "Mirror them into the project's Artifact Registry and pin the digests to lift this"
    )


@dataclass(frozen=True)
class Chart:
    """A Helm chart pinned by version; `chart` is an OCI reference."""

    chart: str
    version: str


# renovate: datasource=docker
LWS_CHART = Chart("oci://registry.k8s.io/lws/charts/lws", "0.10.0")
"""LeaderWorkerSet controller and CRD (kubernetes-sigs/lws v0.10.0, 2026-08-11; seed 001 used v0.4.0)."""

# renovate: datasource=docker versioning=regex:^jax-(?<major>\d+)\.(?<minor>\d+)\.(?<patch>\d+)$
PATHWAYS_PROXY_IMAGE = Image("us-docker.pkg.dev/cloud-tpu-v2-images/pathways/proxy_server", "jax-0.5.3")
# renovate: datasource=docker versioning=regex:^jax-(?<major>\d+)\.(?<minor>\d+)\.(?<patch>\d+)$
PATHWAYS_SERVER_IMAGE = Image("us-docker.pkg.dev/cloud-tpu-v2-images/pathways/server", "jax-0.5.3")
"""Pathways resource manager and workers: one build for every pod of a group, matching the proxy's tag (a drift
breaks with 'Pathways client is at an incompatible protocol version'). jax-0.5.3 is the tag GKE's samples pair
with jetstream-pathways:v0.2.0; newer tags are not validated with it. The proxy's tuned XLA flags
(infra/catalog/pathways.yaml) were checked against the proxy build GKE's samples @2b503651 pass them to: re-check on a bump."""
# renovate: datasource=docker
JETSTREAM_PATHWAYS_IMAGE = Image("us-docker.pkg.dev/cloud-tpu-images/inference/jetstream-pathways", "v0.2.0")
"""MaxText + JetStream server for Pathways (JetStream is archived upstream; last image line). Built from MaxText main at an
unrecorded date between 1df66628 (2024-12-20) and 4ef9c56e (2025-05-07): the MaxText config files the server starts from
and the command-line keys it accepts were checked at 87f90024 and f9920bbd in that window, and the proxy's tuned XLA flags
against GKE's samples @2b503651 (infra/catalog/pathways.yaml records each). A bump of this or the Pathways images
re-checks that file: the config paths, the keys, and whether the flags still apply (tests/test_catalog.py fails until
its image references follow the bump)."""
# renovate: datasource=docker
JETSTREAM_HTTP_IMAGE = Image("us-docker.pkg.dev/cloud-tpu-images/inference/jetstream-http", "v0.2.3")

# renovate: datasource=docker versioning=regex:^v(?<major>\d+)\.(?<minor>\d+)\.(?<patch>\d+)-gke\.(?<build>\d+)$
METRICS_ADAPTER_IMAGE = Image("gcr.io/gke-release/custom-metrics-stackdriver-adapter", "v0.16.9-gke.0")
"""Custom Metrics Stackdriver Adapter (GoogleCloudPlatform/k8s-stackdriver @673c7dd8, 2026-08-18)."""

# renovate: datasource=docker
VLLM_IMAGE = Image("vllm/vllm-openai", "v0.33.0")
"""vLLM's OpenAI server for GPUs (vLLM 0.33.0, 2026-11): every rendered flag and metric is checked against this release."""
# renovate: datasource=docker
VLLM_TPU_IMAGE = Image("vllm/vllm-tpu", "v0.33.0")
"""The same vLLM release built for TPUs (tpu-inference backend)."""
# renovate: datasource=docker
TRITON_IMAGE = Image("nvcr.io/nvidia/tritonserver", "26.07-vllm-python-py3")
"""Triton 2.71.0 with its vLLM backend (NGC 26.07, the current release in triton-inference-server/server's README).
What the backend exports (token counters and latency histograms, no gauge: infra/catalog/metrics.yaml, the HPA's
signal) was read at triton-inference-server/vllm_backend r26.01 @c70d6547, the newest release branch published; re-read
`src/utils/metrics.py` and `src/model.py` at the bumped release's branch."""

# renovate: datasource=github-releases depName=llm-d/llm-d-router
ROUTER_VERSION = "v0.10.0"
"""llm-d/llm-d-router (2026-08-17): the endpoint picker and the InferenceObjective API left GIE for it in 2026-06.
Checked at this tag (@71f4f099): the picker's args, ports and probes (`config/charts/routerlib/templates/_deployment.yaml`),
its resources (`routerlib/values.yaml`), and the port GKE health-checks it on
(`llm-d-router-gateway/templates/gke.yaml`); re-check those three files on a bump."""
ENDPOINT_PICKER_IMAGE = Image("ghcr.io/llm-d/llm-d-router-endpoint-picker", ROUTER_VERSION)
INFERENCE_OBJECTIVE_CRD = (
    f"https://raw.githubusercontent.com/llm-d/llm-d-router/{ROUTER_VERSION}/config/crd/bases/llm-d.ai_inferenceobjectives.yaml"
)
"""GKE installs the InferencePool CRD, not llm-d's: the stack applies this one from the router's release tag."""

# renovate: datasource=docker
INFERENCE_PERF_IMAGE = Image("quay.io/inference-perf/inference-perf", "v0.7.0")
"""kubernetes-sigs/inference-perf 0.7.0 (PyPI 2026-09-15), the post-deploy load test; the image tag is the release's
(its chart's appVersion, `deploy/inference-perf/Chart.yaml`). Its config keys (`inference_perf/config/`) and report file
names (`reportgen/base.py`, `client/filestorage/gcs.py`) were read in the 0.7.0 wheel: re-read them on a bump
(components/load_test.py)."""
