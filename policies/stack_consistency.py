"""Stack policies: what no single resource shows (bad inputs 6-8, 15-22, 26, 33-35; controls C12, C16, C18-C19, C28, C41-C43, C52).

Resources are joined through ``property_dependencies`` (a pool's service account, a cache's bucket,
a subnet's VPC) where an input is computed, and through literal names otherwise.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import PolicyResource, Severity, StackValidationArgs

from infra import sizing
from policies.base import Config, Finding, Meta, as_int, get, is_unknown, items, listed, mapping, stack_policy, string_list
from policies.gateway_autoscaling import REGIONAL_GATEWAY_CLASSES, SUBNETWORK
from policies.inventory import Pool, Stack, Workload, slice_text
from policies.kube import (
    ACCELERATOR_SELECTORS,
    COMPUTE_CLASS_LABEL,
    GATEWAY,
    GPU_RESOURCE,
    HPA,
    HTTP_ROUTE,
    INFERENCE_POOL,
    LWS,
    NETWORK_POLICY,
    NODEPOOL_LABEL,
    PDB,
    POD_MONITORING,
    TPU_RESOURCE,
    PodTemplate,
    namespace,
    object_name,
    selector_matches,
)
from policies.storage import BUCKET

NETWORK = "gcp:compute/network:Network"
ACCOUNT = "gcp:serviceaccount/account:Account"
ANYWHERE_CACHE = "gcp:storage/anywhereCache:AnywhereCache"
PROJECT_IAM = ("gcp:projects/iAMMember:IAMMember", "gcp:projects/iAMBinding:IAMBinding")
KMS_IAM = ("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "gcp:kms/cryptoKeyIAMBinding:CryptoKeyIAMBinding")
CRYPTO_KEY = "gcp:kms/cryptoKey:CryptoKey"
SERVICE_API = "gcp:projects/service:Service"
ENCRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
BASIC_ROLES = ("roles/owner", "roles/editor", "roles/viewer")
GCSFUSE_DRIVER = "gcsfuse.csi.storage.gke.io"
SERVING_KINDS = ("Deployment", "StatefulSet", "LeaderWorkerSet")
MULTI_REGIONS = {"US": "us-", "EU": "europe-", "ASIA": "asia-"}


def _label(w: Workload, t: PodTemplate | None = None) -> str:
    return f"{w.kind} {w.namespace}/{w.name}" + (f" ({t.role})" if t and t.role != "pod" else "")


def _pool_summary(pools: list[Pool]) -> str:
    def one(p: Pool) -> str:
        shape = slice_text(p.tpu) if p.tpu else f"{p.gpus_per_vm}x {p.gpu.gke_accelerator}" if p.gpu else p.machine_type
        return f"{p.name}: {shape}"

    return "; ".join(one(p) for p in pools) or "none"


def _selector_text(selector: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(selector.items()))


# ---------------------------------------------------------------------------- placement


def _workload_matches_pool(args: StackValidationArgs, cfg: Config) -> Iterator[Finding]:
    stack = Stack(args.resources)
    if stack.pools_elsewhere:
        return
    for w in stack.workloads:
        for t in w.templates:
            selector = {k: v for k, v in t.node_selector.items() if k in (*ACCELERATOR_SELECTORS, NODEPOOL_LABEL)}
            if not selector:
                continue
            cls = selector.get(COMPUTE_CLASS_LABEL)
            if cls and cls not in stack.compute_classes and not any(p.compute_class == cls for p in stack.pools):
                yield Finding(f"{_label(w, t)}: compute class {cls} is neither a ComputeClass nor a labelled pool", w.resource)
                continue
            pools = stack.pools_for(t)
            cc = stack.compute_classes.get(cls) if cls else None
            auto_created = cc is not None and get(cc.props, "spec.nodePoolAutoCreation.enabled") is True
            if not pools and not auto_created:
                yield Finding(
                    f"{_label(w, t)}: nodeSelector {_selector_text(selector)} matches no node pool (have: {_pool_summary(stack.pools)})",
                    w.resource,
                )
            gpus, per_node = t.limit(GPU_RESOURCE), max((p.gpus_per_vm for p in pools), default=0)
            if gpus and pools and gpus > per_node:
                yield Finding(
                    f"{_label(w, t)}: {GPU_RESOURCE} limit {gpus} exceeds the {per_node} GPUs of one node in "
                    f"{listed(p.name for p in pools)}",
                    w.resource,
                )


def _flag(template: PodTemplate | None, flag: str) -> str | None:
    """A command-line flag's value from a template's container args (--flag=value or --flag value)."""
    for c in template.containers if template else []:
        words = [str(a) for a in items(c.get("command")) + items(c.get("args"))]
        for i, word in enumerate(words):
            if word.startswith(f"{flag}="):
                return word.split("=", 1)[1]
            if word == flag and i + 1 < len(words):
                return words[i + 1]
    return None


def _lws_size(args: StackValidationArgs, cfg: Config) -> Iterator[Finding]:
    stack = Stack(args.resources)
    if stack.pools_elsewhere:
        return
    for w in stack.workloads:
        if w.resource.resource_type != LWS:
            continue
        roles = {t.role: t for t in w.templates}
        worker, leader = roles.get("worker"), roles.get("leader")
        pools = [p for p in stack.pools_for(worker) if p.tpu is not None] if worker else []
        if not pools or worker is None:
            continue  # not a TPU LWS, or no pool (inf-stack-workload-matches-pool reports that)
        shapes = {(p.tpu.topology, p.tpu.machine_type) for p in pools if p.tpu}
        if len(shapes) > 1:
            yield Finding(f"{_label(w)}: workers match pools of different slice shapes ({_pool_summary(pools)})", w.resource)
            continue
        slice_ = pools[0].tpu
        assert slice_ is not None
        pathways_leader = leader is not None and not leader.limit(TPU_RESOURCE)
        slices = as_int(_flag(leader, "--instance_count")) or 1
        expected = sizing.lws_group_size(slice_, slices, pathways_leader=pathways_leader)
        size = as_int(get(w.resource.props, "spec.leaderWorkerTemplate.size")) or 1
        if size != expected:
            yield Finding(
                f"{_label(w)}: size {size} but {slices} x {slice_text(slice_)}"
                f"{' + 1 Pathways leader' if pathways_leader else ''} needs {expected}",
                w.resource,
            )
        tpu = worker.limit(TPU_RESOURCE)
        if tpu != slice_.chips_per_vm:
            yield Finding(
                f"{_label(w)}: worker {TPU_RESOURCE} limit {tpu} but {slice_.machine_type} has {slice_.chips_per_vm} chips per VM",
                w.resource,
            )
        instance_type, flags = _flag(leader, "--instance_type"), sizing.pathways_flags(slice_, slices)
        if instance_type is not None and instance_type != flags.instance_type:
            yield Finding(f"{_label(w)}: --instance_type={instance_type} but the pool forms {flags.instance_type}", w.resource)
        group = as_int(get(w.resource.props, "spec.leaderWorkerTemplate.subGroupPolicy.subGroupSize"))
        if group is not None and group != slice_.vms:
            yield Finding(f"{_label(w)}: subGroupSize {group} but one {slice_.topology} slice has {slice_.vms} hosts", w.resource)


def _compute_class_capacity(args: StackValidationArgs, cfg: Config) -> Iterator[Finding]:
    stack = Stack(args.resources)
    nap = any(get(c.props, "clusterAutoscaling.enabled") is True for c in stack.clusters())
    pool_names = {p.name for p in stack.pools}
    for name, cc in stack.compute_classes.items():
        priorities = [mapping(p) for p in items(get(cc.props, "spec.priorities"))]
        auto = get(cc.props, "spec.nodePoolAutoCreation.enabled") is True
        for i, priority in enumerate(priorities, 1):
            for missing in [n for n in items(priority.get("nodepools")) if n not in pool_names]:
                yield Finding(f"ComputeClass {name}: priority {i} names node pool {missing}, which does not exist", cc)
        if auto and not nap:
            yield Finding(
                f"ComputeClass {name}: nodePoolAutoCreation needs node auto-provisioning (clusterAutoscaling.enabled)", cc
            )
        if not auto and not stack.class_pools(name):
            yield Finding(
                f"ComputeClass {name}: no node pool is labelled and tainted {COMPUTE_CLASS_LABEL}={name} or named by a "
                "priority, and nodePoolAutoCreation is off: its pods stay Pending",
                cc,
            )
        accelerated = any(p.get("tpu") or p.get("gpu") for p in priorities)
        if accelerated and get(cc.props, "spec.whenUnsatisfiable") == "ScaleUpAnyway":
            yield Finding(
                f"ComputeClass {name}: whenUnsatisfiable ScaleUpAnyway gives accelerator pods E2 nodes; expected DoNotScaleUp", cc
            )


def _zone_in_location(zone: str, location: str) -> bool:
    location = location.upper()
    region = zone.rsplit("-", 1)[0]
    if location in MULTI_REGIONS:
        return zone.startswith(MULTI_REGIONS[location])
    return region.upper() == location


def _anywhere_cache(args: StackValidationArgs, cfg: Config) -> Iterator[Finding]:
    stack = Stack(args.resources)
    buckets = stack.of_type(BUCKET)
    pool_zones = {z for p in stack.pools if p.is_accelerator for z in p.zones}
    seen: Counter[tuple[str, str]] = Counter()
    for cache in stack.of_type(ANYWHERE_CACHE):
        zone, bucket_ref = get(cache.props, "zone"), get(cache.props, "bucket")
        bucket = stack.dependency(cache, "bucket", BUCKET) or next(
            (b for b in buckets if get(b.props, "name") == bucket_ref and not is_unknown(bucket_ref)), None
        )
        bucket_name = str(get(bucket.props, "name") or bucket.name) if bucket else str(bucket_ref)
        seen[(bucket_name, str(zone))] += 1
        location = get(bucket.props, "location") if bucket else None
        if isinstance(location, str) and isinstance(zone, str) and not _zone_in_location(zone, location):
            yield Finding(
                f"AnywhereCache {cache.name}: zone {zone} is not in bucket {bucket_name} location {location.upper()}", cache
            )
        if isinstance(zone, str) and zone not in pool_zones:
            yield Finding(
                f"AnywhereCache {cache.name}: no accelerator node pool in {zone} (pool zones: {listed(pool_zones)}); "
                "the cache serves same-zone clients only",
                cache,
            )
    for (bucket_name, zone), count in sorted(seen.items()):
        if count > 1:
            yield Finding(f"bucket {bucket_name} has {count} Anywhere Caches in {zone}; one per zone is allowed")


# ------------------------------------------------------------------------- gateway, metrics


def _network_of(stack: Stack, resource: PolicyResource) -> str:
    """The VPC a resource is attached to: its Network resource when computed, else the literal's last segment."""
    dependency = stack.dependency(resource, "network", NETWORK)
    if dependency is not None:
        return dependency.urn
    return str(get(resource.props, "network") or "").rsplit("/", 1)[-1]


def _gateway_prereqs(args: StackValidationArgs, cfg: Config) -> Iterator[Finding]:
    stack = Stack(args.resources)
    gateways = stack.of_type(GATEWAY)
    if not (gateways or stack.of_type(HTTP_ROUTE, INFERENCE_POOL)):
        return
    regional = sorted({str(get(g.props, "spec.gatewayClassName")) for g in gateways} & set(REGIONAL_GATEWAY_CLASSES))
    for cluster in stack.clusters():
        channel = get(cluster.props, "gatewayApiConfig.channel")
        if channel not in ("CHANNEL_STANDARD", "CHANNEL_EXPERIMENTAL"):
            yield Finding(
                f"cluster {cluster.name}: gatewayApiConfig.channel is {channel or 'unset'}; Gateway API objects need CHANNEL_STANDARD",
                cluster,
            )
        if get(cluster.props, "addonsConfig.httpLoadBalancing.disabled") is True:
            yield Finding(
                f"cluster {cluster.name}: the HTTP load balancing add-on is disabled; the GKE Gateway controller needs it",
                cluster,
            )
        if get(cluster.props, "networkingMode") != "VPC_NATIVE":
            yield Finding(f"cluster {cluster.name}: the Inference Gateway needs a VPC-native cluster", cluster)
        if not regional or stack.dependency(cluster, "network", NETWORK) is None:
            continue  # the VPC is managed outside this stack, and so is its proxy-only subnet
        location = str(get(cluster.props, "location"))
        region = location if not re.search(r"-[a-z]$", location) else location.rsplit("-", 1)[0]
        proxies = [
            s
            for s in stack.of_type(SUBNETWORK)
            if get(s.props, "purpose") == "REGIONAL_MANAGED_PROXY"
            and get(s.props, "role") == "ACTIVE"
            and get(s.props, "region") in (region, None)
            and _network_of(stack, s) == _network_of(stack, cluster)
        ]
        if len(proxies) != 1:
            yield Finding(
                f"cluster {cluster.name}: gateway class {', '.join(regional)} needs exactly one ACTIVE REGIONAL_MANAGED_PROXY "
                f"subnet in {region} on the cluster's VPC; found {len(proxies)}",
                cluster,
            )


def _monitored(stack: Stack, monitor: PolicyResource) -> list[tuple[Workload, PodTemplate]]:
    selector, ns = mapping(get(monitor.props, "spec.selector")), namespace(monitor.props)
    return [(w, t) for w in stack.workloads if w.namespace == ns for t in w.templates if selector_matches(selector, t.labels)]


def _podmonitoring(args: StackValidationArgs, cfg: Config) -> Iterator[Finding]:
    stack = Stack(args.resources)
    monitors = stack.of_type(POD_MONITORING)
    if not monitors:
        return
    for cluster in stack.clusters():
        if get(cluster.props, "monitoringConfig.managedPrometheus.enabled") is not True:
            yield Finding(
                f"cluster {cluster.name}: monitoringConfig.managedPrometheus.enabled is not true but {len(monitors)} "
                "PodMonitoring(s) need it",
                cluster,
            )
    for monitor in monitors:
        name, matched = object_name(monitor.props, monitor.name), _monitored(stack, monitor)
        if not matched:
            selector = mapping(get(monitor.props, "spec.selector.matchLabels"))
            yield Finding(
                f"PodMonitoring {name}: selector {_selector_text(selector)} matches no pod template in namespace "
                f"{namespace(monitor.props)}",
                monitor,
            )
            continue
        ports = set().union(*(t.container_ports() for _, t in matched))
        for endpoint in items(get(monitor.props, "spec.endpoints")):
            port = endpoint.get("port")
            port = as_int(port) if as_int(port) is not None else port
            if port not in ports:
                yield Finding(
                    f"PodMonitoring {name}: port {port} is not a container port of the selected pods (have: {listed(ports)})",
                    monitor,
                )


def _hpa_target(args: StackValidationArgs, cfg: Config) -> Iterator[Finding]:
    stack = Stack(args.resources)
    for hpa in stack.of_type(HPA):
        name, ns = object_name(hpa.props, hpa.name), namespace(hpa.props)
        kind, target_name = get(hpa.props, "spec.scaleTargetRef.kind"), get(hpa.props, "spec.scaleTargetRef.name")
        target = next((w for w in stack.workloads if (w.kind, w.name, w.namespace) == (kind, target_name, ns)), None)
        if target is None:
            yield Finding(f"HPA {name}: scaleTargetRef {kind}/{target_name} does not exist in namespace {ns}", hpa)
            continue
        # An HPA on an LWS reads per-pod metrics from the leaders (status.hpaPodSelector).
        scaled = [t for t in target.templates if t.role in ("pod", "leader")] or list(target.templates)
        monitored = {id(t) for m in stack.of_type(POD_MONITORING) for _, t in _monitored(stack, m)}
        for metric in items(get(hpa.props, "spec.metrics")):
            kind_ = metric.get("type")
            if kind_ not in ("Pods", "Object", "External"):
                continue
            metric_name = get(metric, f"{kind_[0].lower()}{kind_[1:]}.metric.name")
            if not any(id(t) in monitored for t in scaled):
                yield Finding(f"HPA {name}: metric {metric_name} but no PodMonitoring scrapes {kind}/{target_name}", hpa)


def _pdb_netpol(args: StackValidationArgs, cfg: Config) -> Iterator[Finding]:
    stack = Stack(args.resources)
    pdbs, netpols = stack.of_type(PDB), stack.of_type(NETWORK_POLICY)
    for w in stack.workloads:
        if w.kind not in SERVING_KINDS:
            continue
        labels = [t.labels for t in w.templates]
        same_ns = [p for p in pdbs if namespace(p.props) == w.namespace]
        covering = [p for p in same_ns if any(selector_matches(mapping(get(p.props, "spec.selector")), lab) for lab in labels)]
        if not covering:
            yield Finding(f"{_label(w)}: no PodDisruptionBudget selects its pods", w.resource)
        for pdb in covering:
            if as_int(get(pdb.props, "spec.maxUnavailable")) == 0:
                yield Finding(f"{_label(w)}: PodDisruptionBudget {pdb.name} allows no voluntary disruption", w.resource)
        selected = any(
            namespace(n.props) == w.namespace
            and (
                not get(n.props, "spec.podSelector")
                or any(selector_matches(get(n.props, "spec.podSelector"), lab) for lab in labels)
            )
            for n in netpols
        )
        if not selected:
            yield Finding(f"{_label(w)}: no NetworkPolicy selects its pods", w.resource)


def _gcsfuse(args: StackValidationArgs, cfg: Config) -> Iterator[Finding]:
    stack = Stack(args.resources)
    users = {
        w.resource.urn: w
        for w in stack.workloads
        for t in w.templates
        if any(get(v, "csi.driver") == GCSFUSE_DRIVER for v in items(t.spec.get("volumes")))
    }
    for cluster in stack.clusters():
        if get(cluster.props, "addonsConfig.gcsFuseCsiDriverConfig.enabled") is not True:
            for w in users.values():
                yield Finding(
                    f"{_label(w)} mounts a GCS FUSE volume but cluster {cluster.name} has the GCS FUSE CSI driver off", w.resource
                )


# ------------------------------------------------------------------------------- identity


def _members(resource: PolicyResource) -> list[Any]:
    member = get(resource.props, "member")
    return [member] if member is not None else list(items(get(resource.props, "members")))


def _node_sa_roles(args: StackValidationArgs, cfg: Config) -> Iterator[Finding]:
    stack = Stack(args.resources)
    allowed = set(cfg["allowedRoles"])
    accounts = {
        d.urn
        for p in stack.pools
        if p.resource
        for d in p.resource.property_dependencies.get("nodeConfig", [])
        if d.resource_type == ACCOUNT
    }
    emails = {get(p.props, "nodeConfig.serviceAccount") for p in stack.pools} - {None}
    for binding in stack.of_type(*PROJECT_IAM):
        from_account = {
            d.urn for d in binding.property_dependencies.get("member", []) + binding.property_dependencies.get("members", [])
        }
        literal = {str(m).removeprefix("serviceAccount:") for m in _members(binding) if not is_unknown(m)}
        if not (from_account & accounts or literal & {str(e) for e in emails}):
            continue
        role = get(binding.props, "role")
        if role in BASIC_ROLES or role not in allowed:
            yield Finding(f"node service account binding {binding.name} grants {role}; allowed: {listed(allowed)}", binding)


def _key_bindings(stack: Stack, key: Any, key_resource: PolicyResource | None, agent: str) -> list[PolicyResource]:
    found = []
    for binding in stack.of_type(*KMS_IAM):
        same_key = get(binding.props, "cryptoKeyId") == key or (
            key_resource is not None and key_resource in binding.property_dependencies.get("cryptoKeyId", [])
        )
        members = _members(binding)
        if same_key and get(binding.props, "role") == ENCRYPTER and any(is_unknown(m) or agent in str(m) for m in members):
            found.append(binding)
    return found


def _cmek_bindings(args: StackValidationArgs, cfg: Config) -> Iterator[Finding]:
    stack = Stack(args.resources)
    users: list[tuple[PolicyResource, Any, PolicyResource | None, str, str]] = []
    for bucket in stack.of_type(BUCKET):
        key = get(bucket.props, "encryption.defaultKmsKeyName")
        if key:
            users.append(
                (bucket, key, stack.dependency(bucket, "encryption", CRYPTO_KEY), "gs-project-accounts", "Cloud Storage")
            )
    for cluster in stack.clusters():
        if get(cluster.props, "databaseEncryption.state") == "ENCRYPTED":
            key = get(cluster.props, "databaseEncryption.keyName")
            users.append(
                (cluster, key, stack.dependency(cluster, "databaseEncryption", CRYPTO_KEY), "container-engine-robot", "GKE")
            )
    for resource, key, key_resource, agent, who in users:
        if key_resource is None and not cfg["requireBindingsInStack"]:
            continue  # a key managed elsewhere is granted where it is managed
        bindings = _key_bindings(stack, key, key_resource, agent)
        kind = resource.resource_type.rsplit(":", 1)[-1]
        if not bindings:
            yield Finding(
                f"{kind} {resource.name}: no {ENCRYPTER} binding on its KMS key for the {who} service agent in this stack",
                resource,
            )
        elif not any(b in resource.dependencies for b in bindings):
            yield Finding(
                f"{kind} {resource.name} does not depend on {bindings[0].name}; it can be created before the key grant (403)",
                resource,
            )


TYPE_APIS: Mapping[str, str] = {
    "gcp:container/": "container.googleapis.com",
    "gcp:compute/": "compute.googleapis.com",
    "gcp:storage/": "storage.googleapis.com",
    "gcp:kms/": "cloudkms.googleapis.com",
    "gcp:serviceaccount/": "iam.googleapis.com",
    GATEWAY: "networkservices.googleapis.com",
    INFERENCE_POOL: "networkservices.googleapis.com",
    POD_MONITORING: "monitoring.googleapis.com",
}


def _required_apis(args: StackValidationArgs, cfg: Config) -> Iterator[Finding]:
    stack = Stack(args.resources)
    declared = {get(s.props, "service") for s in stack.of_type(SERVICE_API)}
    if not declared:
        return  # the project's APIs are enabled outside this stack (project factory)
    needed: dict[str, PolicyResource | None] = {api: None for api in cfg["requiredApis"]}
    for r in stack.resources:
        for prefix, api in TYPE_APIS.items():
            if r.resource_type.startswith(prefix):
                needed.setdefault(api, r)
    for api, user in sorted(needed.items()):
        if api not in declared:
            used_by = f"used by {user.resource_type}" if user else "required by config"
            yield Finding(f"API {api} is {used_by} but no {SERVICE_API} enables it", user)


# ------------------------------------------------------------------------------- policies

POLICIES = [
    stack_policy(
        Meta(
            "inf-stack-workload-matches-pool",
            "Every workload's node selector and compute class match a node pool or ComputeClass of the stack.",
            Severity.HIGH,
            "Select pools by the labels GKE sets (gke-tpu-accelerator/topology, gke-accelerator, gke-nodepool) or a "
            "ComputeClass that reaches a pool; the sizing module derives them from workloads.<name>.",
        ),
        _workload_matches_pool,
    ),
    stack_policy(
        Meta(
            "inf-stack-lws-size",
            "A TPU LeaderWorkerSet's size, google.com/tpu limit and Pathways flags match the slice its workers land on.",
            Severity.HIGH,
            "Derive size = hosts x slices (+1 Pathways leader) and the TPU limit = chips per VM from the catalog "
            "(infra.sizing.lws_group_size); never write them by hand.",
        ),
        _lws_size,
    ),
    stack_policy(
        Meta(
            "inf-stack-compute-class-capacity",
            "Every ComputeClass can get nodes: named pools exist, a pool is bound to it or auto-creation is on, "
            "and accelerator classes never fall back to E2 nodes.",
            Severity.HIGH,
            "Label and taint a pool cloud.google.com/compute-class=<name>, or enable nodePoolAutoCreation with NAP; "
            "keep whenUnsatisfiable DoNotScaleUp.",
        ),
        _compute_class_capacity,
    ),
    stack_policy(
        Meta(
            "inf-stack-anywhere-cache-placement",
            "Anywhere Caches sit inside the bucket location, in zones where accelerator pools run, one per zone.",
            Severity.HIGH,
            "Set model_storage.anywhere_cache.zones to zones of the accelerator pools (or leave the default: every pool zone).",
        ),
        _anywhere_cache,
    ),
    stack_policy(
        Meta(
            "inf-stack-inference-gateway-prereqs",
            "Gateway API objects have what they need: Gateway API channel, HTTP LB add-on, VPC-native cluster and "
            "one ACTIVE proxy-only subnet for regional classes.",
            Severity.HIGH,
            "Keep cluster.gateway_api_channel CHANNEL_STANDARD, http_load_balancing on and network.proxy_only_cidr set.",
        ),
        _gateway_prereqs,
    ),
    stack_policy(
        Meta(
            "inf-stack-gmp-podmonitoring",
            "PodMonitorings have Managed Prometheus, select pods of their namespace and scrape a port those pods declare.",
            Severity.HIGH,
            "Keep observability.managed_prometheus on; use the container port's name in the PodMonitoring endpoint.",
            cis="5.7.1",
        ),
        _podmonitoring,
    ),
    stack_policy(
        Meta(
            "inf-stack-hpa-target",
            "Every HPA targets a workload of the stack, and its custom metrics are scraped from that workload's pods.",
            Severity.HIGH,
            "Point scaleTargetRef at the workload's kind/name; a server-metric HPA needs a PodMonitoring on the same pods.",
        ),
        _hpa_target,
    ),
    stack_policy(
        Meta(
            "inf-stack-pdb-and-netpol",
            "Each serving workload has a PodDisruptionBudget that allows disruption and a NetworkPolicy.",
            Severity.MEDIUM,
            "Add a PodDisruptionBudget (maxUnavailable >= 1) and a NetworkPolicy selecting the serving pods.",
        ),
        _pdb_netpol,
    ),
    stack_policy(
        Meta(
            "inf-stack-gcsfuse-addon",
            "Pods mounting GCS FUSE volumes run on a cluster with the GCS FUSE CSI driver.",
            Severity.HIGH,
            "Keep addons_config.gcs_fuse_csi_driver_config.enabled=True (components.cluster sets it).",
        ),
        _gcsfuse,
    ),
    stack_policy(
        Meta(
            "inf-stack-node-sa-roles",
            "Node service accounts hold only allow-listed roles, never basic roles.",
            Severity.HIGH,
            "Grant node accounts roles/container.defaultNodeServiceAccount (and artifactregistry.reader); give workloads "
            "their own identities through Workload Identity.",
            cis="5.2.1",
            params={
                "allowedRoles": string_list(
                    "Project roles a node service account may hold.",
                    ["roles/container.defaultNodeServiceAccount", "roles/artifactregistry.reader"],
                    pattern="^roles/",
                )
            },
        ),
        _node_sa_roles,
    ),
    stack_policy(
        Meta(
            "inf-stack-cmek-bindings",
            "A CMEK bucket or KMS-encrypted cluster has its service agent's key grant in the stack, created first.",
            Severity.HIGH,
            "Grant roles/cloudkms.cryptoKeyEncrypterDecrypter to the Cloud Storage / GKE service agent on the key and "
            "make the bucket or cluster depend on that grant.",
            params={
                "requireBindingsInStack": {
                    "type": "boolean",
                    "default": False,
                    "description": "Also require grants for keys given by ID (managed outside the stack).",
                }
            },
        ),
        _cmek_bindings,
    ),
    stack_policy(
        Meta(
            "inf-stack-required-apis",
            "Once a stack enables project APIs, it enables every API its resources use.",
            Severity.MEDIUM,
            "Add a gcp.projects.Service for the API (preview passes without it; up fails, pulumi-gcp#574).",
            params={
                "requiredApis": string_list(
                    "APIs required beyond those derived from resource types.", pattern=r"^[a-z0-9.-]+\.googleapis\.com$"
                )
            },
        ),
        _required_apis,
    ),
]
