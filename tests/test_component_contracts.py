"""What the APIs behind the components accept and what the components' objects must agree on, over every object
every stack renders (the shipped stacks and the model-serving test stack, the `stacks` fixture): enum values the
Kubernetes API server, GKE and Compute Engine accept, RBAC that grants what each consumer calls, and pods whose
mounts, volumes, writable paths and config files line up."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any

import pulumi
import pytest
from model_serving_helpers import SHIPPED, TEST_STACK, Stack

import components
from infra.simulate.hpa import parse_quantity
from policies.kube import WORKLOAD_TYPES, PodTemplate, selector_matches, templates

ENVS = (*SHIPPED, TEST_STACK)
Items = list[dict[str, Any]]

CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"
ROUTER = "gcp:compute/router:Router"
NAT = "gcp:compute/routerNat:RouterNat"
FIREWALL = "gcp:compute/firewall:Firewall"
DASHBOARD = "gcp:monitoring/dashboard:Dashboard"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
LWS = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
API_SERVICE = "kubernetes:apiregistration.k8s.io/v1:APIService"


def of_type(items: Items, type_: str) -> list[dict[str, Any]]:
    return [r["inputs"] for r in items if r["type"] == type_]


def k8s_objects(items: Items) -> Iterator[tuple[str, dict[str, Any]]]:
    """(type, object) of the Kubernetes objects the stack applies itself (not what the provider renders from charts
    and remote YAML)."""
    for r in items:
        if r["type"].startswith("kubernetes:") and "kind" in r["inputs"]:
            yield r["type"], r["inputs"]


def pod_templates(items: Items) -> Iterator[tuple[str, PodTemplate]]:
    """(namespace, template) of every pod template the stack renders."""
    for r in items:
        if r["type"] in WORKLOAD_TYPES:
            for t in templates(r["type"], r["inputs"]):
                yield r["inputs"]["metadata"].get("namespace", ""), t


# ------------------------------------------------------------------------------------------------ Kubernetes enums

PULL_POLICIES = {"Always", "IfNotPresent", "Never"}
PROTOCOLS = {"TCP", "UDP", "SCTP"}
RECLAIM_POLICIES = {"Delete", "Retain"}
SUBJECT_KINDS = {"ServiceAccount", "User", "Group"}
ROLE_KINDS = {"Role", "ClusterRole"}
RBAC_GROUP = "rbac.authorization.k8s.io"
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "*"}
VERBS |= {"use", "bind", "escalate", "impersonate", "approve", "sign"}
"""The API server's request verbs, and the special verbs of RBAC, PodSecurityPolicy and certificates; RBAC compares
them case-sensitively, so `LIST` grants nothing."""


def quantities(type_: str, obj: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(where, value) of every resource quantity of an object: container requests and limits, emptyDir size limits,
    volume claims' storage."""
    for t in templates(type_, obj):
        for c in t.containers:
            for kind in ("requests", "limits"):
                for name, value in (c.get("resources", {}).get(kind) or {}).items():
                    yield f"{c['name']}.{kind}.{name}", value
        for v in t.spec.get("volumes", []):
            if "sizeLimit" in (v.get("emptyDir") or {}):
                yield f"volume {v['name']}", v["emptyDir"]["sizeLimit"]
    if obj["kind"] == "PersistentVolumeClaim":
        yield "storage", obj["spec"]["resources"]["requests"]["storage"]


@pytest.mark.parametrize("env", ENVS)
def test_kubernetes_enum_fields_hold_values_the_api_server_accepts(stacks: dict[str, Stack], env: str) -> None:
    """The OpenAPI schema `plan` validates against types these fields as free strings; the API server (or, for RBAC,
    the authorizer) takes only these values, so a wrong case fails at apply time or grants nothing."""
    for type_, obj in k8s_objects(stacks[env].items):
        where = f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
        for t in templates(type_, obj):
            for c in t.containers:
                assert c.get("imagePullPolicy", "IfNotPresent") in PULL_POLICIES, where
                assert {p.get("protocol", "TCP") for p in c.get("ports", [])} <= PROTOCOLS, where
        if obj["kind"] == "Service":
            assert {p.get("protocol", "TCP") for p in obj["spec"]["ports"]} <= PROTOCOLS, where
        if obj["kind"] == "StorageClass":
            assert obj.get("reclaimPolicy", "Delete") in RECLAIM_POLICIES, where
        if obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            assert obj["roleRef"]["apiGroup"] == RBAC_GROUP and obj["roleRef"]["kind"] in ROLE_KINDS, where
            for s in obj.get("subjects") or []:
                assert s["kind"] in SUBJECT_KINDS, where
                # a ServiceAccount subject is namespaced: the API server refuses one without its namespace
                assert s["kind"] != "ServiceAccount" or s.get("namespace"), where
        if obj["kind"] in ("Role", "ClusterRole"):
            for rule in obj.get("rules") or []:
                assert set(rule["verbs"]) <= VERBS, where
        for field, value in quantities(type_, obj):
            parse_quantity(value)  # raises on what the API server would refuse as a quantity
            assert isinstance(value, str) and value == value.strip(), (where, field)


def test_the_quantity_parser_refuses_what_the_api_server_refuses() -> None:
    """The check above leans on infra.simulate.hpa's parser: binary suffixes are case-sensitive."""
    assert parse_quantity("4Gi") == 4 * 2**30
    for bad in ("4gi", "4GI", "4 Gi", "Gi"):
        with pytest.raises(ValueError):
            parse_quantity(bad)


# ------------------------------------------------------------------------------------------------ RBAC wiring


def rbac_rules(items: Items, kind: str, name: str, namespace: str) -> list[dict[str, Any]]:
    """The rules of a role the stack renders (a built-in role has none here)."""
    for _, obj in k8s_objects(items):
        meta = obj["metadata"]
        if obj["kind"] == kind and meta["name"] == name and (kind == "ClusterRole" or meta.get("namespace") == namespace):
            return list(obj.get("rules") or [])
    return []


def bound_roles(items: Items, subject: Mapping[str, str]) -> set[tuple[str, str, str]]:
    """(binding namespace or "", role kind, role name) of every binding that names the subject."""
    out = set()
    for _, obj in k8s_objects(items):
        if obj["kind"] in ("RoleBinding", "ClusterRoleBinding") and any(
            {k: s.get(k) for k in ("kind", "name", "namespace")} == subject for s in obj.get("subjects") or []
        ):
            out.add((obj["metadata"].get("namespace", ""), obj["roleRef"]["kind"], obj["roleRef"]["name"]))
    return out


def granted(items: Items, subject: Mapping[str, str], group: str, resource: str, verb: str) -> bool:
    """Whether the stack's own roles grant the subject `verb` on `group`/`resource` (in some namespace)."""
    for namespace, kind, name in bound_roles(items, subject):
        for rule in rbac_rules(items, kind, name, namespace):
            if (
                (group in rule.get("apiGroups", []) or "*" in rule.get("apiGroups", []))
                and (resource in rule.get("resources", []) or "*" in rule.get("resources", []))
                and (verb in rule["verbs"] or "*" in rule["verbs"])
            ):
                return True
    return False


def account(namespace: str, name: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def serving_accounts(items: Items, namespace: str, selector: Mapping[str, str]) -> set[str]:
    """Service accounts of the Deployments whose pods a Service's selector picks."""
    return {
        t.spec["serviceAccountName"]
        for ns, t in pod_templates(items)
        if ns == namespace and selector_matches({"matchLabels": selector}, t.labels)
    }


@pytest.mark.parametrize("env", ENVS)
def test_each_aggregated_api_runs_as_an_account_that_may_serve_it(stacks: dict[str, Stack], env: str) -> None:
    """An extension API server (the metrics adapter) authenticates its callers by delegating to the API server
    (system:auth-delegator), reads the client-CA ConfigMap through extension-apiserver-authentication-reader, a Role
    that exists in kube-system only, and answers from the pods and nodes it watches."""
    items = stacks[env].items
    services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in of_type(items, SERVICE)}
    api_services = of_type(items, API_SERVICE)
    assert api_services
    for api in api_services:
        ref = api["spec"]["service"]
        service = services[(ref["namespace"], ref["name"])]
        (sa,) = serving_accounts(items, ref["namespace"], service["spec"]["selector"])
        subject = account(ref["namespace"], sa)
        roles = bound_roles(items, subject)
        assert ("", "ClusterRole", "system:auth-delegator") in roles, api["metadata"]["name"]
        assert ("kube-system", "Role", "extension-apiserver-authentication-reader") in roles, api["metadata"]["name"]
        for resource in ("pods", "nodes"):
            for verb in ("get", "list", "watch"):
                assert granted(items, subject, "", resource, verb), (resource, verb)


@pytest.mark.parametrize("env", ENVS)
def test_the_hpa_controller_may_read_every_external_metrics_api_the_stack_serves(stacks: dict[str, Stack], env: str) -> None:
    """HPAs on External metrics are evaluated by kube-controller-manager's horizontal-pod-autoscaler account (in
    kube-system): it must get and list the external metrics group the adapter's APIService registers."""
    items = stacks[env].items
    groups = {a["spec"]["group"] for a in of_type(items, API_SERVICE)}
    assert "external.metrics.k8s.io" in groups
    controller = account("kube-system", "horizontal-pod-autoscaler")
    for verb in ("get", "list"):
        assert granted(items, controller, "external.metrics.k8s.io", "any-metric", verb), verb


# ------------------------------------------------------------------------------------------------ pod wiring

FUSE_SIDECAR_VOLUMES = {"gke-gcsfuse-cache"}
"""Volumes the GCS FUSE sidecar GKE injects mounts by name itself: no container of the template mounts them."""
WRITTEN_DIRS = ("HOME", "TMPDIR", "HF_HOME", "XDG_CACHE_HOME", "VLLM_CACHE_ROOT", "VLLM_XLA_CACHE_PATH")
"""Environment variables that name a directory the program (Python, huggingface_hub, vLLM, XLA) writes into."""


def under(path: str, root: str) -> bool:
    return PurePosixPath(path).is_relative_to(PurePosixPath(root))


@pytest.mark.parametrize("env", ENVS)
def test_every_mount_names_a_volume_of_its_pod_and_every_volume_is_mounted(stacks: dict[str, Stack], env: str) -> None:
    templates_ = list(pod_templates(stacks[env].items))
    assert templates_
    for ns, t in templates_:
        volumes = {v["name"] for v in t.spec.get("volumes", [])}
        mounted = {m["name"] for c in t.containers for m in c.get("volumeMounts", [])}
        assert mounted <= volumes, (ns, t.labels, mounted - volumes)
        assert volumes - FUSE_SIDECAR_VOLUMES <= mounted, (ns, t.labels, volumes - mounted)


@pytest.mark.parametrize("env", ENVS)
def test_a_read_only_root_leaves_every_path_the_container_writes_on_a_writable_mount(stacks: dict[str, Stack], env: str) -> None:
    """With readOnlyRootFilesystem, the home, temporary and cache directories a container's environment names must
    each lie under a mount that is not read-only."""
    checked = 0
    for ns, t in pod_templates(stacks[env].items):
        for c in t.containers:
            if not (c.get("securityContext") or {}).get("readOnlyRootFilesystem"):
                continue
            writable = [m["mountPath"] for m in c.get("volumeMounts", []) if not m.get("readOnly")]
            env_vars = {e["name"]: e.get("value") for e in c.get("env", [])}
            for path in (env_vars[n] for n in WRITTEN_DIRS if n in env_vars):
                assert path.startswith("/") and any(under(path, root) for root in writable), (ns, c["name"], path)
                checked += 1
    assert checked


def config_files(c: Mapping[str, Any]) -> Iterator[str]:
    """Absolute paths among a container's arguments (`--flag=/path`, or `/path` as an argument of its own)."""
    for arg in [*(c.get("command") or []), *(c.get("args") or [])]:
        value = arg.partition("=")[2] if arg.startswith("--") else arg
        if value.startswith("/") and " " not in value:
            yield value


@pytest.mark.parametrize("env", ENVS)
def test_a_config_file_an_argument_names_is_a_key_of_the_mounted_config_map(stacks: dict[str, Stack], env: str) -> None:
    """A file a container is told to read from a ConfigMap volume exists only if the ConfigMap has that key."""
    items = stacks[env].items
    maps = {(m["metadata"]["namespace"], m["metadata"]["name"]): m for m in of_type(items, CONFIG_MAP)}
    checked = 0
    for ns, t in pod_templates(items):
        sources = {v["name"]: v["configMap"]["name"] for v in t.spec.get("volumes", []) if "configMap" in v}
        for c in t.containers:
            mounts = {m["mountPath"]: sources[m["name"]] for m in c.get("volumeMounts", []) if m["name"] in sources}
            for path in config_files(c):
                for root, name in mounts.items():
                    if under(path, root):
                        key = str(PurePosixPath(path).relative_to(root))
                        assert key in maps[(ns, name)]["data"], (ns, c["name"], path, sorted(maps[(ns, name)]["data"]))
                        checked += 1
    assert checked or not maps


@pytest.mark.parametrize("env", ENVS)
def test_the_pods_of_a_leader_worker_group_may_reach_each_other(stacks: dict[str, Stack], env: str) -> None:
    """The workers join the leader (Pathways' resource manager, Ray's head) and the leader calls them: a
    NetworkPolicy that selects either role must admit the other from the group's namespace."""
    items = stacks[env].items
    for r in items:
        if r["type"] != LWS:
            continue
        ns = r["inputs"]["metadata"]["namespace"]
        group = list(templates(LWS, r["inputs"]))
        assert {t.role for t in group} == {"leader", "worker"}
        for policy in of_type(items, NETPOL):
            if policy["metadata"]["namespace"] != ns:
                continue
            for target in group:
                if not selector_matches(policy["spec"]["podSelector"], target.labels):
                    continue
                for peer in group:
                    assert any(
                        "ports" not in rule
                        and any(selector_matches(p.get("podSelector", {}), peer.labels) for p in rule.get("from", []))
                        for rule in policy["spec"].get("ingress", [])
                    ), (policy["metadata"]["name"], target.role, peer.role)


# ------------------------------------------------------------------------------------------------ GCP enums and wiring

MONITORING_COMPONENTS = {"SYSTEM_COMPONENTS", "APISERVER", "SCHEDULER", "CONTROLLER_MANAGER", "STORAGE", "HPA", "POD"}
MONITORING_COMPONENTS |= {"DAEMONSET", "DEPLOYMENT", "STATEFULSET", "CADVISOR", "KUBELET", "DCGM", "JOBSET"}
"""GKE's MonitoringComponentConfig.Component values (container v1 API), as pulumi-gcp's monitoringConfig passes them."""
NAT_SUBNETWORK_MODES = {"ALL_SUBNETWORKS_ALL_IP_RANGES", "ALL_SUBNETWORKS_ALL_PRIMARY_IP_RANGES", "LIST_OF_SUBNETWORKS"}
NAT_RANGE_MODES = {"ALL_IP_RANGES", "PRIMARY_IP_RANGE", "LIST_OF_SECONDARY_IP_RANGES"}
"""Cloud NAT's sourceSubnetworkIpRangesToNat and, per listed subnetwork, sourceIpRangesToNat (compute v1 API)."""
FIREWALL_DIRECTIONS = {"INGRESS", "EGRESS"}


def one(items: Items, type_: str) -> dict[str, Any]:
    (found,) = of_type(items, type_)
    return found


@pytest.mark.parametrize("env", ENVS)
def test_gke_and_compute_enum_fields_hold_values_the_apis_accept(stacks: dict[str, Stack], env: str) -> None:
    items = stacks[env].items
    cluster = one(items, CLUSTER)
    assert set(cluster["monitoringConfig"]["enableComponents"]) <= MONITORING_COMPONENTS
    for nat in of_type(items, NAT):
        assert nat["sourceSubnetworkIpRangesToNat"] in NAT_SUBNETWORK_MODES
        for subnet in nat.get("subnetworks", []):
            assert subnet.get("sourceIpRangesToNats") and set(subnet["sourceIpRangesToNats"]) <= NAT_RANGE_MODES
    for rule in of_type(items, FIREWALL):
        assert rule["direction"] in FIREWALL_DIRECTIONS


@pytest.mark.parametrize("env", ENVS)
def test_the_nat_gives_the_nodes_and_their_pods_egress(stacks: dict[str, Stack], env: str) -> None:
    """Private nodes have no external address: Cloud NAT must cover the cluster's subnet, its primary range (the
    nodes) and its pods' secondary range (pods pull images and reach the Hub with their own addresses)."""
    items = stacks[env].items
    cluster = one(items, CLUSTER)
    (nodes,) = [r for r in items if r["type"] == SUBNETWORK and r["inputs"]["name"] == cluster["subnetwork"]]
    pods = cluster["ipAllocationPolicy"]["clusterSecondaryRangeName"]
    assert pods in {r["rangeName"] for r in nodes["inputs"]["secondaryIpRanges"]}
    (nat,) = [r for r in items if r["type"] == NAT]
    # the listed subnetworks count only when the NAT is told to use its list
    assert nat["inputs"]["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS"
    assert nat["propertyDependencies"]["subnetworks"] == [nodes["urn"]]
    (entry,) = nat["inputs"]["subnetworks"]
    ranges = set(entry["sourceIpRangesToNats"])
    assert "ALL_IP_RANGES" in ranges or (
        {"PRIMARY_IP_RANGE", "LIST_OF_SECONDARY_IP_RANGES"} <= ranges and pods in entry.get("secondaryIpRangeNames", [])
    )


@pytest.mark.parametrize("env", ENVS)
def test_the_regional_network_resources_are_in_the_clusters_region(stacks: dict[str, Stack], env: str) -> None:
    """A regional cluster's nodes, its proxy-only subnet and its NAT must be in its region: a subnet elsewhere
    cannot hold its nodes, and a router elsewhere NATs nothing of it."""
    items = stacks[env].items
    region = one(items, CLUSTER)["location"]
    regional = [r["inputs"] for r in items if r["type"] in (SUBNETWORK, ROUTER, NAT)]
    assert len(regional) >= 3 and all(r["region"] == region for r in regional)


@pytest.mark.parametrize("env", ENVS)
def test_the_cluster_runs_the_hpa_controller_the_stack_relies_on(stacks: dict[str, Stack], env: str) -> None:
    items = stacks[env].items
    addon = one(items, CLUSTER)["addonsConfig"]["horizontalPodAutoscaling"]
    assert not of_type(items, HPA) or addon.get("disabled") is False


@pytest.mark.parametrize("env", ENVS)
def test_auto_provisioned_nodes_are_as_shielded_as_every_created_pool(stacks: dict[str, Stack], env: str) -> None:
    """CIS GKE 5.5.7: node auto-provisioning creates pools from its defaults, so they carry the shielded-VM settings
    every pool the stack creates has (Secure Boot and integrity monitoring); policy inf-gke-shielded-nodes reads
    node pools only."""
    items = stacks[env].items
    nap = one(items, CLUSTER)["clusterAutoscaling"]
    assert nap["enabled"]
    pools = {json.dumps(p["nodeConfig"]["shieldedInstanceConfig"], sort_keys=True) for p in of_type(items, NODE_POOL)}
    (shielded,) = pools
    assert json.loads(shielded) == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}
    assert nap["autoProvisioningDefaults"]["shieldedInstanceConfig"] == json.loads(shielded)


# ------------------------------------------------------------------------------------------------ the components


def component_classes() -> dict[str, type[pulumi.ComponentResource]]:
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(components.__path__):
        importlib.import_module(f"components.{module.name}")
    out: dict[str, type[pulumi.ComponentResource]] = {}
    todo = list(pulumi.ComponentResource.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("components."):
            out[cls.__name__] = cls
    return out


@pytest.mark.parametrize("env", ENVS)
def test_each_components_type_token_names_its_class(stacks: dict[str, Stack], env: str) -> None:
    """A component's type token is part of every child's URN, so it can never change without replacing them all:
    each is `gke-inference:<group>:<Name>`, Name in PascalCase and part of the name of the components/ class that
    registers it (VllmServer registers Vllm, ProjectServices Services), so a token that drifts from its class shows
    here before a deploy would replace the component's children."""
    classes = component_classes()
    rendered = {r["type"] for r in stacks[env].items if r["type"].startswith("gke-inference:")}
    assert rendered
    for token in rendered:
        _, group, name = token.split(":")
        assert group.isalnum() and group.islower(), token
        assert name[0].isupper() and name.isalnum() and not name.isupper(), token
        assert any(name in cls for cls in classes), (token, sorted(classes))


@pytest.mark.parametrize("env", ENVS)
def test_a_load_test_run_sends_its_rate_ramp_once(stacks: dict[str, Stack], env: str) -> None:
    """A load-test Job that fails is reported, not retried: the API's default backoffLimit (6) would send the whole
    rate ramp to the serving model up to seven times, and a second run never starts while one is running."""
    for r in stacks[env].items:
        if r["type"] == "kubernetes:batch/v1:CronJob":
            spec = r["inputs"]["spec"]
            assert spec["jobTemplate"]["spec"].get("backoffLimit") == 0, r["urn"]
            assert spec["concurrencyPolicy"] == "Forbid", r["urn"]


ENGINES = ("gke-inference:serving:Vllm", "gke-inference:serving:Triton", "gke-inference:serving:JetStreamPathways")
WORKLOADS = (DEPLOYMENT, LWS, "kubernetes:batch/v1:Job")


@pytest.mark.parametrize("env", ENVS)
def test_every_object_of_a_model_server_carries_its_workloads_labels(stacks: dict[str, Stack], env: str) -> None:
    """`kubectl get all,hpa,pdb,netpol -l <labels>` lists a model server's objects together: each object an engine
    component renders (its Service, its ServingObjects) carries the labels its workload object has."""
    items = stacks[env].items
    by_urn = {r["urn"]: r for r in items}

    def engine_of(r: dict[str, Any]) -> str | None:
        while r.get("parent"):
            r = by_urn[r["parent"]]
            if r["type"] in ENGINES:
                return str(r["urn"])
        return None

    children: dict[str, list[dict[str, Any]]] = {}
    for r in items:
        if r["type"].startswith("kubernetes:") and (engine := engine_of(r)):
            children.setdefault(engine, []).append(r)
    assert children
    for objects in children.values():
        (workload,) = [r["inputs"] for r in objects if r["type"] in WORKLOADS]
        labels = workload["metadata"]["labels"].items()
        assert labels
        for r in objects:
            assert labels <= (r["inputs"]["metadata"].get("labels") or {}).items(), r["urn"]


# ------------------------------------------------------------------------------------------------ the dashboard

DASHBOARD_FIELDS: dict[str, dict[str, str | None]] = {
    "Dashboard": {"name": None, "displayName": None, "etag": None, "labels": None, "mosaicLayout": "MosaicLayout"},
    "MosaicLayout": {"columns": None, "tiles": "Tile"},
    "Tile": {"xPos": None, "yPos": None, "width": None, "height": None, "widget": "Widget"},
    "Widget": {"title": None, "id": None, "xyChart": "XyChart", "sectionHeader": "SectionHeader"},
    "SectionHeader": {"subtitle": None, "dividerBelow": None},
    "XyChart": {
        "dataSets": "DataSet",
        "timeshiftDuration": None,
        "thresholds": "Threshold",
        "xAxis": "Axis",
        "yAxis": "Axis",
        "y2Axis": "Axis",
        "chartOptions": None,
    },
    "DataSet": {
        "timeSeriesQuery": "TimeSeriesQuery",
        "plotType": None,
        "legendTemplate": None,
        "minAlignmentPeriod": None,
        "targetAxis": None,
    },
    "TimeSeriesQuery": {"timeSeriesFilter": "TimeSeriesFilter", "unitOverride": None, "outputFullDuration": None},
    "TimeSeriesFilter": {"filter": None, "aggregation": "Aggregation", "secondaryAggregation": "Aggregation"},
    "Aggregation": {"alignmentPeriod": None, "perSeriesAligner": None, "crossSeriesReducer": None, "groupByFields": None},
    "Axis": {"label": None, "scale": None},
    "Threshold": {"label": None, "value": None, "color": None, "direction": None, "targetAxis": None},
}
"""The Cloud Monitoring Dashboards API (v1, projects.dashboards) messages the dashboard uses, field -> message type
(None: a scalar or a list of scalars). The API refuses a dashboard with a field its message does not have."""


def unknown_fields(value: Any, message: str, path: str = "") -> Iterator[str]:
    if isinstance(value, list):
        for i, v in enumerate(value):
            yield from unknown_fields(v, message, f"{path}[{i}]")
        return
    fields = DASHBOARD_FIELDS[message]
    for key, v in value.items():
        if key not in fields:
            yield f"{path}.{key} (not a field of {message})"
        elif (sub := fields[key]) is not None:
            yield from unknown_fields(v, sub, f"{path}.{key}")


@pytest.mark.parametrize("env", ENVS)
def test_the_dashboard_uses_only_the_dashboards_apis_field_names(stacks: dict[str, Stack], env: str) -> None:
    (dashboard,) = of_type(stacks[env].items, DASHBOARD)
    body = json.loads(dashboard["dashboardJson"])
    assert list(unknown_fields(body, "Dashboard")) == []
    charts = [t["widget"]["xyChart"] for t in body["mosaicLayout"]["tiles"] if "xyChart" in t["widget"]]
    assert charts and all(d["timeSeriesQuery"]["timeSeriesFilter"]["aggregation"] for c in charts for d in c["dataSets"])
