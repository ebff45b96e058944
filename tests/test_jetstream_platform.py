"""The serving layer under mocks, what surrounds the JetStream LeaderWorkerSets: the HPA and PodMonitoring on the
leader's metric, Pod Security per namespace and container, the custom metrics adapter, the pinned LWS chart and
images, each derived from config and catalog.

The LeaderWorkerSets themselves (ports, layout, probes, topology, seed 001) are in test_jetstream_lws.py; shared
helpers in serving_helpers.py, the `plans` and `configs` fixtures in conftest.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from conftest import BASE, mutate
from serving_helpers import (
    CASES,
    CHART,
    HPA,
    JETSTREAM_ENVS,
    LWS,
    NAMESPACE,
    SERVICE,
    Items,
    containers,
    flags,
    jetstream,
    lws_of,
    named,
    plan_raw,
    templates,
    walk_containers,
)
from test_platform import auto_created_nodes, of_type

from components.identity import NODE_SA_ROLES, workload_principal
from components.node_pools import COMPUTE_CLASS_KEY, POOL_LABEL
from components.pathways import DISAGGREGATED_CAPABILITIES
from components.serving_namespace import EXCEPTION_ANNOTATION as POD_SECURITY_EXCEPTION
from infra import versions
from infra.config import ConfigError, StackConfig, load_config
from infra.names import scratch_bucket_name
from infra.tooling.plan import FAKE_PROJECT_NUMBER

DISAGGREGATED_POLICIES = ("inf-k8s-capabilities", "inf-k8s-nonroot-readonly")
ROLE = "roles/monitoring.viewer"


# ------------------------------------------------------------------------------------------------ 1. scaling


def test_hpa_scales_the_lws_on_the_leader_metric(plans: dict[str, Items], configs: dict[str, StackConfig]) -> None:
    """prod llama-405b: the HPA targets the LWS by apiVersion/kind/name, reads the adapter's name of the workload's gauge,
    and never asks for more groups than its pool's slices hold."""
    cfg, items = configs["prod"], plans["prod"]
    workload, lws = cfg.workloads["llama-405b"], lws_of(items)["llama-405b"]
    namespace = lws["metadata"]["namespace"]
    spec = named(items, HPA)[(namespace, "llama-405b")]["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": lws["apiVersion"], "kind": lws["kind"], "name": lws["metadata"]["name"]}
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    (metric,) = spec["metrics"]
    assert metric["pods"]["metric"]["name"] == f"prometheus.googleapis.com|{workload.metric}|gauge"
    auto = workload.config.autoscaling
    assert auto is not None and (spec["minReplicas"], spec["maxReplicas"]) == (auto.min_replicas, auto.max_replicas)
    for pool in {p.name for p in workload.tpu_pools}:
        per_replica = sum(p.name == pool for p in workload.tpu_pools)
        assert spec["maxReplicas"] * per_replica <= cfg.tpu_pools[pool].config.max_slices


@pytest.mark.parametrize(("env", "name"), CASES)
def test_pod_monitoring_scrapes_the_port_maxtext_exports(plans: dict[str, Items], env: str, name: str) -> None:
    """PodMonitoring selects leaders only, on a leader port whose number is jax-tpu's prometheus_port."""
    lws = lws_of(plans[env])[name]
    leader, worker = templates(lws)
    pm = named(plans[env], "kubernetes:monitoring.googleapis.com/v1:PodMonitoring")[(lws["metadata"]["namespace"], name)]
    selector = pm["spec"]["selector"]["matchLabels"].items()
    assert selector <= leader["metadata"]["labels"].items() and not selector <= worker["metadata"]["labels"].items()
    (endpoint,) = pm["spec"]["endpoints"]
    jax = containers(leader)["jax-tpu"]
    assert {p["name"]: p["containerPort"] for p in jax["ports"]}[endpoint["port"]] == int(flags(jax)["prometheus_port"])


@pytest.mark.parametrize(("env", "name"), CASES)
def test_lws_replicas_are_left_to_the_hpa_when_there_is_one(
    plans: dict[str, Items], configs: dict[str, StackConfig], env: str, name: str
) -> None:
    """An HPA exists iff the workload autoscales; then the LWS has no `replicas` (else the configured count)."""
    workload, lws = configs[env].workloads[name], lws_of(plans[env])[name]
    has_hpa = (lws["metadata"]["namespace"], name) in named(plans[env], HPA)
    assert has_hpa == (workload.config.autoscaling is not None)
    if has_hpa:
        assert "replicas" not in lws["spec"]
    else:
        assert lws["spec"]["replicas"] == workload.config.replicas


# ------------------------------------------------------------------------------------------------ 2. Pod Security


def test_pod_security_follows_the_disaggregated_server(plans: dict[str, Items], configs: dict[str, StackConfig]) -> None:
    """A namespace holding a disaggregated JetStream workload enforces privileged and names it; all others restricted."""
    for env, cfg in configs.items():
        namespaces = named(plans[env], NAMESPACE)
        for ns in {w.config.namespace for w in cfg.workloads.values()}:
            meta = namespaces[("", ns)]["metadata"]
            disaggregated = [
                n for n, w in jetstream(cfg).items() if w.config.namespace == ns and w.config.mode == "disaggregated"
            ]
            annotation = (meta.get("annotations") or {}).get(POD_SECURITY_EXCEPTION)
            if disaggregated:
                assert meta["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
                assert annotation is not None and all(n in annotation for n in disaggregated)
            else:
                assert meta["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
                assert annotation is None


def restricted_violations(template: dict[str, Any]) -> list[str]:
    """What in a pod template Pod Security `restricted` (plus a read-only root) refuses."""
    pod = template["spec"].get("securityContext", {})
    out = []
    if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        out.append("pod seccompProfile")
    for c in template["spec"]["containers"]:
        sc = c.get("securityContext", {})
        if not sc.get("runAsNonRoot", pod.get("runAsNonRoot")) or sc.get("runAsUser", pod.get("runAsUser")) == 0:
            out.append(f"{c['name']}: root")
        if sc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{c['name']}: writable root")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{c['name']}: privilege escalation")
        caps = sc.get("capabilities", {})
        if caps.get("drop") != ["ALL"] or caps.get("add"):
            out.append(f"{c['name']}: capabilities {caps.get('add')}")
    return out


@pytest.mark.parametrize(("env", "name"), CASES)
def test_only_the_disaggregated_server_carries_exceptions(
    plans: dict[str, Items], configs: dict[str, StackConfig], env: str, name: str
) -> None:
    """Disaggregated: both policy exceptions named, and jax-tpu alone is root with exactly the seed's capabilities.
    Interleaved: no such exception and every container restricted-compliant."""
    lws = lws_of(plans[env])[name]
    names = {f"policy.gke-inference.dev/{p}" for p in DISAGGREGATED_POLICIES}
    leader, worker = templates(lws)
    if configs[env].workloads[name].config.mode == "disaggregated":
        assert names <= set(lws["metadata"]["annotations"])
        assert restricted_violations(worker) == []
        caps = list(DISAGGREGATED_CAPABILITIES)
        assert restricted_violations(leader) == ["jax-tpu: root", f"jax-tpu: capabilities {caps}"]
    else:
        assert not names & set(lws["metadata"]["annotations"])
        assert restricted_violations(leader) == restricted_violations(worker) == []


# ------------------------------------------------------------------------------------------------ 3. metrics adapter


@pytest.fixture(scope="module")
def adapter_plans(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Items]:
    """BASE planned with and without an autoscaled workload (the adapter is enabled by default)."""
    tmp = tmp_path_factory.mktemp("adapter")
    scaled = mutate(BASE, "gke-inference:workloads.small.autoscaling", {"min_replicas": 1, "max_replicas": 1})
    return {True: plan_raw(tmp, "scaled", scaled), False: plan_raw(tmp, "fixed", BASE)}


def test_metrics_adapter_exists_iff_something_autoscales(adapter_plans: dict[bool, Items]) -> None:
    """Present with an autoscaled workload and the adapter on, absent without; autoscaling with it off is refused."""
    assert load_config(BASE, stack="t").observability.custom_metrics_adapter
    for autoscales, items in adapter_plans.items():
        types = {r["type"] for r in items}
        assert ("gke-inference:k8s:MetricsAdapter" in types) == autoscales
        assert ("kubernetes:apiregistration.k8s.io/v1:APIService" in types) == autoscales
    raw = mutate(BASE, "gke-inference:workloads.small.autoscaling", {"min_replicas": 1, "max_replicas": 1})
    with pytest.raises(ConfigError, match=r"workloads\.small\.autoscaling: .*custom_metrics_adapter"):
        load_config(mutate(raw, "gke-inference:observability.custom_metrics_adapter", False), stack="t")


def test_metrics_adapter_identity_and_api_services(adapter_plans: dict[bool, Items]) -> None:
    """The monitoring.viewer member is the Workload Identity principal of the account the adapter Deployment runs as;
    every APIService points at the adapter's Service, which selects the Deployment's pods on its container port."""
    items, cfg = adapter_plans[True], load_config(BASE, stack="t")
    ((ns, _), deployment), *more = [
        (k, d) for k, d in named(items, "kubernetes:apps/v1:Deployment").items() if k[0] == "custom-metrics"
    ]
    assert not more
    pod = deployment["spec"]["template"]
    account = pod["spec"]["serviceAccountName"]
    assert (ns, account) == ("custom-metrics", "custom-metrics-stackdriver-adapter")
    assert (ns, account) in named(items, "kubernetes:core/v1:ServiceAccount")
    viewers = [r["inputs"] for r in of_type(items, "gcp:projects/iAMMember:IAMMember") if r["inputs"]["role"] == ROLE]
    assert [(m["project"], m["member"]) for m in viewers] == [
        (cfg.project, workload_principal(FAKE_PROJECT_NUMBER, cfg.project, ns, account))
    ]
    services = [s for (sns, _), s in named(items, SERVICE).items() if sns == ns]
    assert len(services) == 1
    service = services[0]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {p["containerPort"] for p in container["ports"]}
    apis = [r["inputs"]["spec"] for r in of_type(items, "kubernetes:apiregistration.k8s.io/v1:APIService")]
    assert "custom.metrics.k8s.io" in {a["group"] for a in apis}  # where an HPA's Pods metrics are served
    assert all(a["service"] == {"name": service["metadata"]["name"], "namespace": service["metadata"]["namespace"]} for a in apis)


# ------------------------------------------------------------------------------------------------ 4. versions


@pytest.mark.parametrize("env", JETSTREAM_ENVS)
def test_lws_waits_for_its_pinned_chart(plans: dict[str, Items], env: str) -> None:
    """The LWS chart (the version pinned in infra.versions) is the platform stack's, deployed before the serving stack
    that holds every LeaderWorkerSet: no serving change can delete the CRD its sets live in."""
    (chart,) = of_type(plans[env], CHART)
    assert (chart["inputs"]["chart"], chart["inputs"]["version"]) == (versions.LWS_CHART.chart, versions.LWS_CHART.version)
    sets = of_type(plans[env], LWS)
    assert chart["layer"] == "platform" and sets and all(r["layer"] == "serving" for r in sets)


@pytest.mark.parametrize("env", JETSTREAM_ENVS)
def test_every_image_is_a_pinned_version(plans: dict[str, Items], env: str) -> None:
    """Each rendered container runs the `.ref` of an infra.versions image (never :latest) and is not pulled Always."""
    pinned = {v.ref for v in vars(versions).values() if isinstance(v, versions.Image)}
    rendered = [c for r in plans[env] for c in walk_containers(r["inputs"])]
    assert rendered
    for c in rendered:
        assert c["image"] in pinned and not c["image"].endswith(":latest"), c["image"]
        assert c.get("imagePullPolicy") != "Always", c["name"]


# ------------------------------------------------------------------------------------------------ 5. node identity

BUCKET_IAM = "gcp:storage/bucketIAMMember:BucketIAMMember"
PROJECT_IAM = "gcp:projects/iAMMember:IAMMember"
NODE_POOL = "gcp:container/nodePool:NodePool"
READ_ROLES = ("roles/storage.objectViewer", "roles/storage.objectUser")
"""Roles that let a member read objects (objectUser: read and write)."""


def pools_selected(items: Items, template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The rendered node pools a pod template can land on: by the compute class or the pool label it selects (every
    Pathways template selects one of the two; the TPU labels GKE adds narrow no further within a pool)."""
    selector = template["spec"]["nodeSelector"]
    keys = [k for k in (COMPUTE_CLASS_KEY, POOL_LABEL) if k in selector]
    assert keys, selector
    return {
        r["name"]: r["inputs"]
        for r in of_type(items, NODE_POOL)
        if all(r["inputs"]["nodeConfig"].get("labels", {}).get(k) == selector[k] for k in keys)
    }


def bucket_of(url: str) -> str:
    return url.removeprefix("gs://").split("/", 1)[0]


def grants(items: Items, member: str) -> set[tuple[str, str]]:
    """(bucket, role) of every unconditional bucket grant to `member`."""
    return {
        (r["inputs"]["bucket"], r["inputs"]["role"])
        for r in of_type(items, BUCKET_IAM)
        if r["inputs"]["member"] == member and "condition" not in r["inputs"]
    }


def pathways_identity_problems(items: Items) -> list[str]:
    """What is wrong with the identity of the nodes Pathways runs on: each pool a Pathways LWS's templates select runs
    with Workload Identity off (GCE_METADATA) as one account of its own, which is not the general node account, holds
    GKE's node roles and nothing else at project level, reads the bucket of --load_parameters_path and writes the
    bucket of --gcs_scratch_location; every other pool runs as the general account with Workload Identity on."""
    general = next(r for r in of_type(items, NODE_POOL) if r["name"] == "cluster-system")["inputs"]["nodeConfig"][
        "serviceAccount"
    ]
    problems: list[str] = []
    serving: dict[str, dict[str, Any]] = {}
    for lws in lws_of(items).values():
        leader, worker = templates(lws)
        weights = flags(containers(leader)["jax-tpu"])["load_parameters_path"]
        scratch = {
            flags(c)["gcs_scratch_location"]
            for t in (leader, worker)
            for c in t["spec"]["containers"]
            if "gcs_scratch_location" in flags(c)
        }
        for template in (leader, worker):
            for pool_name, pool in pools_selected(items, template).items():
                serving[pool_name] = pool
                node, sa = pool["nodeConfig"], pool["nodeConfig"]["serviceAccount"]
                if node["workloadMetadataConfig"]["mode"] != "GCE_METADATA":
                    problems.append(f"{pool_name}: {node['workloadMetadataConfig']['mode']}")
                if sa == general:
                    problems.append(f"{pool_name}: runs as the general node account")
                held = grants(items, f"serviceAccount:{sa}")
                if not any((bucket_of(weights), role) in held for role in READ_ROLES):
                    problems.append(f"{pool_name}: {sa} cannot read {weights}")
                problems += [
                    f"{pool_name}: {sa} cannot write {s}"
                    for s in scratch
                    if (bucket_of(s), "roles/storage.objectUser") not in held
                ]
    accounts = {p["nodeConfig"]["serviceAccount"] for p in serving.values()}
    if len(accounts) > 1:
        problems.append(f"Pathways pools run as {sorted(accounts)}: one account per stack")
    for sa in accounts:
        roles = sorted(
            r["inputs"]["role"] for r in of_type(items, PROJECT_IAM) if r["inputs"]["member"] == f"serviceAccount:{sa}"
        )
        if roles != sorted(NODE_SA_ROLES):
            problems.append(f"{sa} holds {roles} at project level")
    for r in of_type(items, NODE_POOL):
        node = r["inputs"]["nodeConfig"]
        if r["name"] not in serving and (node["workloadMetadataConfig"]["mode"], node["serviceAccount"]) != (
            "GKE_METADATA",
            general,
        ):
            problems.append(
                f"{r['name']} serves no Pathways workload but runs as {node['serviceAccount']} on {node['workloadMetadataConfig']['mode']}"
            )
    return problems


@pytest.mark.parametrize("env", JETSTREAM_ENVS)
def test_pathways_pools_run_as_their_own_node_account(plans: dict[str, Items], env: str) -> None:
    """The pools Pathways' LWSs select are GCE_METADATA with the Pathways node account, which can read the weights and
    write the scratch location the LWS names; every other pool keeps Workload Identity and the general account."""
    assert lws_of(plans[env])
    assert pathways_identity_problems(plans[env]) == []


def test_a_pathways_pool_on_the_gke_metadata_server_is_refused(plans: dict[str, Items]) -> None:
    """The old object, a Pathways pool with Workload Identity on as the general account, fails the relationship."""
    items = copy.deepcopy(plans["staging"])
    general = next(r for r in of_type(items, NODE_POOL) if r["name"] == "cluster-system")["inputs"]["nodeConfig"][
        "serviceAccount"
    ]
    pool = next(r for r in of_type(items, NODE_POOL) if r["name"] == "v6e-2x4-0")["inputs"]["nodeConfig"]
    pool["workloadMetadataConfig"], pool["serviceAccount"] = {"mode": "GKE_METADATA"}, general
    problems = pathways_identity_problems(items)
    assert "v6e-2x4-0: GKE_METADATA" in problems and "v6e-2x4-0: runs as the general node account" in problems


@pytest.mark.parametrize(("env", "name"), CASES)
def test_pathways_accounts_act_through_workload_identity_only_where_nodes_have_it(
    plans: dict[str, Items], configs: dict[str, StackConfig], env: str, name: str
) -> None:
    """A Pathways workload's Kubernetes account holds bucket grants only when a compute class may auto-create nodes
    for it (GKE creates those with Workload Identity on): otherwise its pods act as their node, and a binding to the
    Kubernetes account would be dead and misleading."""
    cfg, workload = configs[env], configs[env].workloads[name]
    principal = workload_principal(FAKE_PROJECT_NUMBER, cfg.project, workload.config.namespace, workload.service_account)
    expected = {
        (cfg.bucket_name, "roles/storage.objectViewer"),
        (scratch_bucket_name(cfg.bucket_name), "roles/storage.objectUser"),
    }
    assert grants(plans[env], principal) == (expected if auto_created_nodes(cfg, workload) else set())
