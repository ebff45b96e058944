"""Names, hosts and paths: the right kind of string, no collision with what the cluster or the stack already owns.

A checkpoint is an object path inside the model bucket (never a gs:// URL), a hostname is a Gateway API Hostname
(never a URL, a port or a path), a certificate is a Certificate Manager name or a full resource name in the cluster's
region. Workload namespaces stay out of the cluster's and the stack's own namespaces, and the names the components
generate (the same functions they use) never collide with one another in a namespace.
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from dataclasses import dataclass

from components import lws, metrics_adapter, serving_objects
from components.endpoint_picker import objective_name, picker_name
from components.hyperdisk import claim_name
from components.identity import account_suffix
from components.inference_gateway import GATEWAY_NAME as GATEWAY
from components.inference_gateway import GATEWAY_NAMESPACE, iap_secret_name
from components.weights_download import ACCOUNT as DOWNLOADER
from components.weights_download import TOKEN_SECRET
from infra.config.checks.context import CheckContext, in_region
from infra.config.checks.serving import exposed_names
from infra.config.errors import ns_path
from infra.names import (
    BUCKET_NAME_MAX,
    PREFIX_MAX,
    SCRATCH_SUFFIX,
    STACK_NAME,
    default_bucket_name,
    resource_prefix,
    scratch_bucket_name,
)

SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease", "gmp-system", "gmp-public"})
"""Namespaces every GKE cluster has (gmp-*: Managed Prometheus), never a workload's to create or label."""
SYSTEM_PREFIXES = ("kube-", "gke-")
"""Kubernetes' and GKE's own (gke-gmp-system, gke-managed-*, gke-connect, ...)."""
STACK_NAMESPACES = {
    GATEWAY_NAMESPACE: "the Inference Gateway's namespace",
    metrics_adapter.NAMESPACE: "the Custom Metrics Stackdriver Adapter's namespace",
    lws.NAMESPACE: "the LeaderWorkerSet controller's namespace",
    serving_objects.GMP_NAMESPACE: "Managed Prometheus' namespace",
}

HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
"""Gateway API's Hostname (gateway.networking.k8s.io v1 Listener.hostname and HTTPRoute.spec.hostnames, at most 253
characters): RFC 1123, lowercase, a leading `*.` wildcard allowed, no IP address, port or path."""
CERT_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
CERT_RESOURCE = re.compile(r"^projects/([^/]+)/locations/([^/]+)/certificates/([^/]+)$")
BUCKET = re.compile(r"^[a-z0-9][-a-z0-9_]{1,61}[a-z0-9]$")
"""A GCS bucket name without dots (3-63 characters: lowercase letters, digits, '-' and '_', starting and ending with
a letter or digit); dotted names are domain-verified and are not supported here."""
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAMED_KINDS = frozenset({"Service", "Namespace"})
"""Kinds whose names are DNS-1035/1123 labels (at most 63 characters); the others are DNS-1123 subdomains (253)."""


def check_names(ctx: CheckContext) -> None:
    check_stack_name(ctx)
    check_namespaces(ctx)
    check_generated_objects(ctx)
    check_binding_names(ctx)
    check_paths(ctx)
    check_gateway_host_and_certificate(ctx)
    check_bucket_name(ctx)
    check_existing_cluster(ctx)


def check_namespaces(ctx: CheckContext) -> None:
    for name, w in ctx.sections.workloads.items():
        ns = w.namespace
        if ns in SYSTEM_NAMESPACES or ns.startswith(SYSTEM_PREFIXES):
            owner = "a namespace the cluster owns"
        elif ns in STACK_NAMESPACES:
            owner = STACK_NAMESPACES[ns]
        else:
            continue
        ctx.add(
            ns_path("workloads", name, "namespace"),
            f"{ns} is {owner}: the stack would create or relabel it (Pod Security, gateway routes) and delete it on destroy",
            "a namespace of your own, not default, kube-*, gke-*, gmp-public, " + ", ".join(sorted(STACK_NAMESPACES)),
            ns,
        )


@dataclass(frozen=True)
class Generated:
    kind: str
    namespace: str | None
    name: str
    path: str
    """The key path of the user's input that produced the name."""
    owner: str
    primary: bool = False
    """Named after a workload directly (the user's own choice), rather than derived with a suffix."""


def generated_objects(ctx: CheckContext) -> list[Generated]:
    """The Kubernetes objects the serving layer names after workloads, with the name functions the components use."""
    out: list[Generated] = []
    workloads = ctx.sections.workloads
    exposed = set(exposed_names(ctx))
    for name, w in workloads.items():
        path, ns = ns_path("workloads", name), w.namespace
        kinds = {"ServiceAccount", "NetworkPolicy", "PodMonitoring", "PodDisruptionBudget"}
        if w.engine == "jetstream-pathways":
            kinds |= {"LeaderWorkerSet", "Service"}
        elif w.batch is not None:
            kinds |= {"Job"}
        else:
            kinds |= {"Deployment", "LeaderWorkerSet", "Service"} if w.engine == "vllm" else {"Deployment", "Service"}
        if w.autoscaling is not None:
            kinds.add("HorizontalPodAutoscaler")
        if name in exposed:
            kinds |= {"HTTPRoute", "HealthCheckPolicy", "GCPBackendPolicy"}
        out += [Generated(k, ns, name, path, f"workload {name}", primary=True) for k in sorted(kinds)]
        if name in exposed and w.engine == "vllm" and w.batch is None:
            out.append(Generated("InferencePool", ns, name, path, f"workload {name}", primary=True))
            epp = picker_name(name)
            for kind in ("ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment", "Service", "PodMonitoring"):
                out.append(Generated(kind, ns, epp, path, f"the endpoint picker of workload {name}"))
            out += [
                Generated(k, ns, epp, path, f"the endpoint picker of workload {name}")
                for k in ("PodDisruptionBudget", "NetworkPolicy")
            ]
            for objective in w.objectives:
                out.append(
                    Generated(
                        "InferenceObjective",
                        ns,
                        objective_name(name, objective),
                        ns_path("workloads", name, "objectives", objective),
                        f"objective {objective} of workload {name}",
                    )
                )
        if w.model_loading == "hyperdisk-ml" and w.engine != "jetstream-pathways":
            claim = claim_name(name)
            out += [
                Generated(k, ns, claim, path, f"the Hyperdisk ML weights of workload {name}")
                for k in ("PersistentVolumeClaim", "GCPDataSource")
            ]
    servers = {w.namespace for w in workloads.values() if w.engine != "jetstream-pathways"}
    if ctx.sections.hf_token is not None:
        for ns in sorted(servers):
            out.append(Generated("ServiceAccount", ns, DOWNLOADER, ns_path("hf_token"), f"the weights download in {ns}"))
            out.append(Generated("Secret", ns, TOKEN_SECRET, ns_path("hf_token"), f"the weights download in {ns}"))
    gw = ctx.sections.gateway
    if gw.enabled and gw.iap_enabled:
        for ns in sorted({workloads[n].namespace for n in exposed if n in workloads}):
            out.append(Generated("Secret", ns, iap_secret_name(GATEWAY), ns_path("gateway", "iap"), "the IAP client secret"))
    return out


def check_generated_objects(ctx: CheckContext) -> None:
    """Two inputs that give one object the same name would overwrite each other (server-side apply), or fail `up`."""
    by_key: dict[tuple[str, str | None, str], list[Generated]] = defaultdict(list)
    for g in generated_objects(ctx):
        by_key[(g.kind, g.namespace, g.name)].append(g)
        rule, limit = (DNS_1035_LABEL, 63) if g.kind in LABEL_NAMED_KINDS else (DNS_1123_SUBDOMAIN, 253)
        if len(g.name) > limit or not rule.match(g.name):
            ctx.add(
                g.path,
                f"the {g.kind} {g.name} of {g.owner} is not a valid Kubernetes name",
                f"at most {limit} characters, lowercase letters, digits and '-'",
                g.name,
            )
    clashes: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    for (kind, ns, name), found in by_key.items():
        owners = {g.owner: g for g in found}
        if len(owners) < 2:
            continue
        ranked = sorted(owners.values(), key=lambda g: (not g.primary, g.path))
        clashes[(ranked[0].path, ranked[1].owner, ns or "", name)].add(kind)
    for (path, owner, ns, name), kinds in sorted(clashes.items()):
        ctx.add(
            path,
            f"{name} is also the name of {', '.join(sorted(kinds))} of {owner} in namespace {ns}: one would overwrite the other",
            f"a name no other workload's objects use (not <workload>-epp, <workload>-<objective>, {DOWNLOADER}, ...)",
            name,
        )


def check_binding_names(ctx: CheckContext) -> None:
    """Bucket bindings are named `<role>-<namespace>-<account>`: two (namespace, workload) pairs must not join alike,
    or Pulumi sees one resource twice (duplicate URN) and `up` fails."""
    seen: dict[str, str] = {}
    for name, w in ctx.sections.workloads.items():
        joined = account_suffix(w.namespace, name)
        if joined in seen:
            ctx.add(
                ns_path("workloads", name),
                f"namespace {w.namespace} and workload {name} join into the bucket binding name {joined}, as workload "
                f"{seen[joined]} in its namespace does",
                "a workload or namespace name that keeps <namespace>-<workload> unique",
                name,
            )
        seen.setdefault(joined, name)


def _object_path_problem(value: str) -> str | None:
    if SCHEME.match(value):
        return "a URL, where an object path inside the model bucket is read (the stack adds gs://<bucket>/)"
    if value.startswith("/"):
        return "an absolute path, where an object path inside the model bucket is read"
    if any(c.isspace() for c in value):
        return "white space in an object path"
    parts = value.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "an empty, '.' or '..' segment in an object path"
    return None


def check_paths(ctx: CheckContext) -> None:
    for name, w in ctx.sections.workloads.items():
        if w.checkpoint is not None:
            problem = _object_path_problem(w.checkpoint)
            if problem:
                ctx.add(
                    ns_path("workloads", name, "checkpoint"),
                    problem,
                    "an object path in the model bucket, e.g. 'maxtext/llama-3.1-405b/int8'",
                    w.checkpoint,
                )
        if w.batch is None:
            continue
        for key in ("input", "output"):
            value = getattr(w.batch, key)
            problem = _object_path_problem(value) or ("a folder, not a file name" if "/" in value else None)
            if problem:
                ctx.add(
                    ns_path("workloads", name, "batch", key),
                    f"{problem} (the Job reads and writes batch/{name}/ only)",
                    f"a file name under batch/{name}/, e.g. '{key}-{{index}}.jsonl'",
                    value,
                )
            elif w.batch.parallelism > 1 and "{index}" not in value:
                ctx.add(
                    ns_path("workloads", name, "batch", key),
                    f"{w.batch.parallelism} pods would all "
                    + ("read the same input" if key == "input" else "write the same results file"),
                    "a file name with {index} (each pod's completion index)",
                    value,
                )


def check_gateway_host_and_certificate(ctx: CheckContext) -> None:
    gw = ctx.sections.gateway
    if gw.hostname is not None:
        host = gw.hostname
        problem = None
        if SCHEME.match(host):
            problem = "a URL, not a hostname"
        elif "/" in host or ":" in host:
            problem = "a hostname carries no port or path"
        elif host != host.lower():
            problem = "Gateway API hostnames are lowercase"
        elif _is_ip(host):
            problem = "Gateway API hostnames are DNS names, not IP addresses"
        elif len(host) > 253 or not HOSTNAME.match(host) or any(len(label) > 63 for label in host.split(".")):
            problem = "not an RFC 1123 DNS name"
        if problem:
            ctx.add(
                ns_path("gateway", "hostname"),
                problem,
                "a DNS name such as api.example.com or *.example.com (Gateway API Hostname)",
                host,
            )
    if gw.tls is not None:
        cert = gw.tls.certificate
        full = CERT_RESOURCE.match(cert)
        path = ns_path("gateway", "tls", "certificate")
        expected = f"a Certificate Manager certificate name, or projects/P/locations/{ctx.region}/certificates/NAME"
        if full is None and not CERT_NAME.match(cert):
            ctx.add(path, "not a Certificate Manager certificate name or resource name", expected, cert)
        elif full is not None and full.group(2) != ctx.region:
            ctx.add(
                path,
                f"a {gw.gateway_class} gateway is regional: it uses certificates of its own region, not {full.group(2)}",
                expected,
                cert,
            )
        elif full is not None and not CERT_NAME.match(full.group(3)):
            ctx.add(path, "not a Certificate Manager certificate name", expected, cert)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_stack_name(ctx: CheckContext) -> None:
    """Every GCP resource is named after the stack (infra/names.py): the name must be one GCP accepts, and the prefix
    `<cluster.name>-<stack>` must fit a GKE cluster name."""
    path = "stack name"
    if not STACK_NAME.match(ctx.stack):
        ctx.add(
            path,
            "the stack name is part of every GCP resource's name (`<cluster.name>-<stack>`, the model bucket)",
            "lowercase letters, digits and '-', starting with a letter, not ending with '-'",
            ctx.stack,
        )
        return
    prefix = resource_prefix(ctx.sections.cluster.name, ctx.stack)
    if len(prefix) > PREFIX_MAX:
        ctx.add(
            ns_path("cluster", "name"),
            f"the cluster would be named {prefix} (<cluster.name>-<stack>), longer than GKE's {PREFIX_MAX} characters",
            f"a cluster name and stack name of at most {PREFIX_MAX - 1} characters together",
            ctx.sections.cluster.name,
        )


def check_bucket_name(ctx: CheckContext) -> None:
    """The configured bucket name, else the default one (infra/names.py): a GCS name, short enough for its scratch
    bucket when Pathways runs."""
    configured = ctx.sections.model_storage.bucket_name
    if configured is None and not STACK_NAME.match(ctx.stack):
        return  # reported by check_stack_name
    name = configured or default_bucket_name(ctx.project, ctx.stack)
    path = ns_path("model_storage", "bucket_name")
    default = "" if configured else " (the default bucket name: set model_storage.bucket_name)"
    pathways = any(w.engine == "jetstream-pathways" for w in ctx.sections.workloads.values())
    if SCHEME.match(name):
        ctx.add(path, "a URL, not a bucket name", "the bucket's name without gs://", name)
    elif not BUCKET.match(name) or name.startswith("goog") or "google" in name:
        ctx.add(
            path,
            f"not a GCS bucket name{default}",
            f"3-{BUCKET_NAME_MAX} lowercase letters, digits, '-' or '_', starting and ending with a letter or digit, "
            "no 'goog' prefix",
            name,
        )
    elif pathways and len(scratch_bucket_name(name)) > BUCKET_NAME_MAX:
        ctx.add(
            path,
            f"the Pathways scratch bucket {scratch_bucket_name(name)} would be longer than GCS' {BUCKET_NAME_MAX} characters"
            + default,
            f"at most {BUCKET_NAME_MAX - len(SCRATCH_SUFFIX)} characters",
            name,
        )


def check_existing_cluster(ctx: CheckContext) -> None:
    existing = ctx.sections.cluster.existing
    if existing is None:
        return
    loc = existing.location
    if loc != ctx.region and not in_region(loc, ctx.region):
        ctx.add(
            ns_path("cluster", "existing", "location"),
            f"the stack's pools, bucket, subnets and gateway are in {ctx.region}",
            f"{ctx.region} or one of its zones",
            loc,
        )
