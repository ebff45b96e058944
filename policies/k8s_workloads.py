"""Kubernetes workloads (Deployment, StatefulSet, Job, Pod and the LeaderWorkerSet leader/worker templates).

PSS baseline/restricted, kube-score, Polaris and checkov checks re-expressed as policies (controls
C29-C40, C44-C46), because checkov does not scan LeaderWorkerSet templates.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, Severity

from infra.catalog import load as load_catalog
from policies.base import Config, Meta, get, items, listed, mapping, resource_policy, string_list
from policies.kube import (
    ACCELERATOR_RESOURCES,
    CLUSTER_SCOPED_KINDS,
    GPU_RESOURCE,
    SERVICE,
    TPU_ACCELERATOR_LABEL,
    TPU_RESOURCE,
    WORKLOAD_TYPES,
    PodTemplate,
    templates,
)

SECRET_ENV = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?)$", re.IGNORECASE)
BUILTIN_GROUPS = frozenset(
    {
        "core",
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "apiextensions.k8s.io",
        "admissionregistration.k8s.io",
        "scheduling.k8s.io",
        "coordination.k8s.io",
        "node.k8s.io",
        "discovery.k8s.io",
        "certificates.k8s.io",
        "apiregistration.k8s.io",
        "helm.sh",
        "yaml",
        "kustomize",
    }
)
FREE_FORM_KEYS = frozenset(
    {"labels", "annotations", "matchLabels", "nodeSelector", "limits", "requests", "data", "stringData", "sysctls", "nodeLabels"}
)
"""Maps whose keys are data (label keys, resource names), not API field names."""


def _containers(args: ResourceValidationArgs) -> Iterator[tuple[PodTemplate, str, Mapping[str, Any]]]:
    """(template, 'worker container jax-tpu', container) for every container of every pod template."""
    for t in templates(args.resource_type, args.props):
        for c in t.containers:
            yield t, f"{t.role} container {c.get('name', '?')}", c


def _security(t: PodTemplate, c: Mapping[str, Any], key: str) -> Any:
    """A container securityContext field, falling back to the pod's securityContext."""
    value = get(c, f"securityContext.{key}")
    return get(t.spec, f"securityContext.{key}") if value is None else value


def _no_privileged(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    for t in templates(args.resource_type, args.props):
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if t.spec.get(key) is True:
                yield f"{t.role} template: {key} is true"
        for volume in items(t.spec.get("volumes")):
            if "hostPath" in volume:
                yield f"{t.role} template: hostPath volume {volume.get('name')}"
    for _, where, c in _containers(args):
        if get(c, "securityContext.privileged") is True:
            yield f"{where}: securityContext.privileged is true"
        for port in items(c.get("ports")):
            if port.get("hostPort"):
                yield f"{where}: hostPort {int(port['hostPort'])}"


def _capabilities(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    allowed = set(cfg["allowedCapabilities"])
    for _, where, c in _containers(args):
        if "ALL" not in items(get(c, "securityContext.capabilities.drop")):
            yield f"{where}: capabilities.drop does not include ALL"
        extra = set(items(get(c, "securityContext.capabilities.add"))) - allowed
        if extra:
            yield f"{where}: adds capabilities {listed(extra)} outside the allow-list ({listed(allowed)})"


def _nonroot_readonly(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    for t, where, c in _containers(args):
        if get(c, "securityContext.allowPrivilegeEscalation") is not False:
            yield f"{where}: allowPrivilegeEscalation is not false"
        if _security(t, c, "runAsNonRoot") is not True:
            yield f"{where}: runAsNonRoot is not true"
        if get(c, "securityContext.readOnlyRootFilesystem") is not True:
            yield f"{where}: readOnlyRootFilesystem is not true"
        if _security(t, c, "seccompProfile.type") not in ("RuntimeDefault", "Localhost"):
            yield f"{where}: seccompProfile.type is not RuntimeDefault"


def _image_pinned(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    for _, where, c in _containers(args):
        image = str(c.get("image", ""))
        name, _, digest = image.partition("@")
        last = name.rsplit("/", 1)[-1]
        tag = last.partition(":")[2]
        if not digest and tag in ("", "latest"):
            yield f"{where}: image {image} is not pinned ({'tag latest' if tag else 'no tag'})"
        elif cfg["requireDigest"] and not digest.startswith("sha256:"):
            yield f"{where}: image {image} has no @sha256 digest"


def _tpu_chips_per_vm(t: PodTemplate) -> set[int]:
    """The google.com/tpu values a node of the selected TPU generation can offer (catalog chips per VM)."""
    accelerator = t.node_selector.get(TPU_ACCELERATOR_LABEL)
    return {n for g in load_catalog().tpus.values() if g.gke_accelerator == accelerator for n in g.machine_types.values()}


def _resources(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    for t in templates(args.resource_type, args.props):
        for c in t.containers:
            where = f"{t.role} container {c.get('name', '?')}"
            for kind in ("cpu", "memory"):
                if get(c, ("resources", "requests", kind)) is None:
                    yield f"{where}: no {kind} request"
            if get(c, ("resources", "limits", "memory")) is None:
                yield f"{where}: no memory limit"
            for resource in ACCELERATOR_RESOURCES:
                request, limit = get(c, ("resources", "requests", resource)), get(c, ("resources", "limits", resource))
                if request is not None and str(request) != str(limit):
                    yield f"{where}: {resource} request {request} differs from its limit {limit}"
        tpu, gpu = t.limit(TPU_RESOURCE), t.limit(GPU_RESOURCE)
        if t.is_accelerated and not (tpu or gpu) and not (args.resource_type.endswith("LeaderWorkerSet") and t.role == "leader"):
            yield f"{t.role} template selects accelerator nodes but no container has a {TPU_RESOURCE} or {GPU_RESOURCE} limit"
        chips = _tpu_chips_per_vm(t)
        if tpu and chips and tpu not in chips:
            yield f"{t.role} template: {TPU_RESOURCE} limit {tpu} is not the chips of one VM of {t.node_selector[TPU_ACCELERATOR_LABEL]} ({listed(chips)})"


SERVING_TYPES = [t for t in WORKLOAD_TYPES if t not in ("kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob")]
"""Workload kinds that serve traffic: probes decide whether they get it."""


def _probes(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    for t in templates(args.resource_type, args.props):
        for c in items(t.spec.get("containers")):
            where = f"{t.role} container {c.get('name', '?')}"
            readiness, liveness = c.get("readinessProbe"), c.get("livenessProbe")
            if not readiness:
                yield f"{where}: no readinessProbe"
            if not liveness:
                yield f"{where}: no livenessProbe"
            if readiness and readiness == liveness:
                yield f"{where}: readinessProbe and livenessProbe are identical; a slow model kills the pod instead of draining it"
            if t.is_accelerated and not c.get("startupProbe"):
                yield f"{where}: no startupProbe; model loading takes minutes on accelerator pods"


def _sa_token(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    allowed = [re.compile(p) for p in cfg["allowTokenFor"]]
    for t in templates(args.resource_type, args.props):
        if t.spec.get("automountServiceAccountToken") is not False and not any(p.fullmatch(args.name) for p in allowed):
            yield f"{t.role} template: automountServiceAccountToken is not false"
        account = t.spec.get("serviceAccountName")
        if account in (None, "", "default"):
            yield f"{t.role} template: runs as the default service account; expected a dedicated Kubernetes service account"


def _namespace(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    kind = get(args.props, "kind") or args.resource_type.rsplit(":", 1)[-1]
    if kind in CLUSTER_SCOPED_KINDS or args.resource_type.startswith(("kubernetes:yaml/", "kubernetes:kustomize/")):
        return  # cluster-scoped, or a provider-side group whose objects carry their own namespaces
    ns = (
        get(args.props, "namespace")
        if args.resource_type.startswith("kubernetes:helm.sh/")
        else get(args.props, "metadata.namespace")
    )
    if ns in (None, "", "default"):
        yield f"namespace is {ns or 'unset'}; workloads belong in a dedicated namespace, not default"


def _service_type(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    kind = get(args.props, "spec.type")
    if kind in ("LoadBalancer", "NodePort"):
        yield f"spec.type {kind} exposes the pods beside the Gateway; expected ClusterIP behind an HTTPRoute"


def _snake_keys(node: Any, path: str) -> Iterator[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            here = f"{path}.{key}"
            if "_" in key:
                camel = re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), key)
                yield f"{here} is snake_case; the API prunes or rejects it (expected {camel})"
            elif key not in FREE_FORM_KEYS:
                yield from _snake_keys(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _snake_keys(value, f"{path}[{i}]")


def _cr_camelcase(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    group = args.resource_type.split(":")[1].rsplit("/", 1)[0]
    if group in BUILTIN_GROUPS:
        return
    yield from _snake_keys(get(args.props, "spec"), "spec")


def _secret_env(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    for _, where, c in _containers(args):
        for env in items(c.get("env")):
            if SECRET_ENV.search(str(env.get("name", ""))) and "value" in mapping(env):
                yield f"{where}: env {env['name']} holds a literal value; use valueFrom.secretKeyRef"


CAPABILITIES = string_list("Linux capabilities containers may add (PSS baseline allows only a fixed list).", pattern="^[A-Z_]+$")

POLICIES = [
    resource_policy(
        Meta(
            "inf-k8s-no-privileged",
            "No privileged containers, host namespaces, hostPath volumes or host ports.",
            Severity.CRITICAL,
            "Remove privileged/hostNetwork/hostPID/hostIPC/hostPath/hostPort; GKE installs accelerator drivers itself.",
            tags=("pss:baseline", "checkov:CKV_K8S_16"),
        ),
        WORKLOAD_TYPES,
        _no_privileged,
    ),
    resource_policy(
        Meta(
            "inf-k8s-capabilities",
            "Containers drop ALL capabilities and add only allow-listed ones.",
            Severity.HIGH,
            "Set securityContext.capabilities.drop=[ALL]; for an unavoidable capability list the workload in "
            "excludeFor and annotate it with policy.gke-inference.dev/inf-k8s-capabilities: '<reason>; <ticket>'.",
            params={"allowedCapabilities": CAPABILITIES},
            tags=("pss:restricted", "checkov:CKV_K8S_25", "checkov:CKV_K8S_37"),
        ),
        WORKLOAD_TYPES,
        _capabilities,
    ),
    resource_policy(
        Meta(
            "inf-k8s-nonroot-readonly",
            "Containers run as non-root with a read-only root filesystem, no privilege escalation and RuntimeDefault seccomp.",
            Severity.HIGH,
            "Set runAsNonRoot, allowPrivilegeEscalation=false, readOnlyRootFilesystem, seccompProfile RuntimeDefault; "
            "mount emptyDir at /tmp and /dev/shm and point HF_HOME and the compiler caches there.",
            tags=("pss:restricted",),
        ),
        WORKLOAD_TYPES,
        _nonroot_readonly,
    ),
    resource_policy(
        Meta(
            "inf-k8s-image-pinned",
            "Images are pinned: never :latest or untagged; with a digest where the environment requires it.",
            Severity.HIGH,
            "Pin every image to a version tag and, in prod, a @sha256 digest; LWS leader and workers must run one build.",
            params={"requireDigest": {"type": "boolean", "default": True, "description": "Require @sha256 digests."}},
            tags=("checkov:CKV_K8S_14", "checkov:CKV_K8S_43"),
        ),
        WORKLOAD_TYPES,
        _image_pinned,
    ),
    resource_policy(
        Meta(
            "inf-k8s-resources",
            "Containers request CPU and memory and limit memory; accelerator pods limit google.com/tpu or nvidia.com/gpu "
            "to what one node offers.",
            Severity.HIGH,
            "Set resources.requests (cpu, memory) and limits.memory; set the accelerator limit the sizing module derives.",
            tags=("checkov:CKV_K8S_10", "checkov:CKV_K8S_12", "checkov:CKV_K8S_13"),
        ),
        WORKLOAD_TYPES,
        _resources,
    ),
    resource_policy(
        Meta(
            "inf-k8s-probes",
            "Serving containers have distinct readiness and liveness probes, and a startup probe on accelerator pods.",
            Severity.MEDIUM,
            "Add readinessProbe and livenessProbe (different checks) and a startupProbe sized for model loading. "
            "Jobs and CronJobs are left out: a batch pod serves nothing, and a probe could only kill it mid-run.",
            tags=("checkov:CKV_K8S_8", "checkov:CKV_K8S_9"),
        ),
        SERVING_TYPES,
        _probes,
    ),
    resource_policy(
        Meta(
            "inf-k8s-sa-token",
            "Pods do not mount API tokens they do not need and never run as the default service account.",
            Severity.MEDIUM,
            "Set automountServiceAccountToken=false and a dedicated serviceAccountName (with Workload Identity if it needs GCP).",
            cis="4.1.6",
            params={"allowTokenFor": string_list("Workloads (name patterns) that need the Kubernetes API.", format="regex")},
        ),
        WORKLOAD_TYPES,
        _sa_token,
    ),
    resource_policy(
        Meta(
            "inf-k8s-namespace",
            "Namespaced Kubernetes objects live in a dedicated namespace, not default.",
            Severity.LOW,
            "Set metadata.namespace (workloads.<name>.namespace).",
            tags=("checkov:CKV_K8S_21",),
        ),
        ["kubernetes:"],
        _namespace,
    ),
    resource_policy(
        Meta(
            "inf-k8s-service-type",
            "Services are ClusterIP behind the Gateway, not LoadBalancer or NodePort.",
            Severity.LOW,
            "Use type ClusterIP and route through the Inference Gateway (HTTPRoute -> InferencePool).",
            enforcement=EnforcementLevel.ADVISORY,
        ),
        [SERVICE],
        _service_type,
    ),
    resource_policy(
        Meta(
            "inf-k8s-cr-spec-camelcase",
            "Custom resource specs use the API's camelCase field names.",
            Severity.HIGH,
            "CustomResource does not translate nested keys: write spec keys exactly as in the CRD (leaderWorkerTemplate).",
        ),
        ["kubernetes:"],
        _cr_camelcase,
    ),
    resource_policy(
        Meta(
            "inf-k8s-no-secret-env-literals",
            "Secrets (tokens, passwords, keys) reach containers from Secrets, never as literal env values.",
            Severity.HIGH,
            "Use env valueFrom.secretKeyRef (the hf_token secret config becomes a Kubernetes Secret).",
            tags=("checkov:CKV_K8S_35",),
        ),
        WORKLOAD_TYPES,
        _secret_env,
    ),
]
