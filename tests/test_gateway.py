"""The Inference Gateway: from the Gateway to the pods that answer, every link computed from the config.

The walk follows what a request follows: the Gateway's listener, the HTTPRoute attached to it from a namespace
the listener admits, the path prefix and rewrite, the backend (an InferencePool and its endpoint picker, or a
Service), the pods behind it, and the health and backend policies GKE programs for that backend. Each
link is checked against the config and the rendered server, and each one-change break of a rendered
object makes the walk fail.
"""

from __future__ import annotations

import contextvars
import copy
import math
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from click.testing import CliRunner
from conftest import BASE, REPO, STACKS, mutate
from pulumi.runtime import mocks
from pulumi.runtime.sync_await import _sync_await
from test_platform import load_stack, of_type

from components.endpoint_picker import EXT_PROC_PORT, picker_labels
from components.inference_gateway import CERT_OPTION
from components.serving_namespace import ROUTES_LABEL
from infra.cli import main
from infra.config import ConfigError, StackConfig, Workload, load_config
from infra.gateway_serving import GATEWAY_NAME, NAMESPACE, example_request, exposed, timeout_s, uses_pool
from infra.plan import StackFile, run

NS = "gke-inference"
SHIPPED = ("staging", "prod")
EXTERNAL = "external"
VARIANT = "variant"
POOL_GROUP = "inference.networking.k8s.io"
ADDRESS = "gcp:compute/address:Address"
SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"
SCHEMAS = Path(os.environ.get("GKE_INFERENCE_SCHEMAS", REPO.parent / "shared" / "schemas"))

Items = list[dict[str, Any]]
Key = tuple[str, str, str]
"""(kind, namespace, metadata.name); cluster-scoped objects have namespace ''."""
Objects = dict[Key, dict[str, Any]]


# ------------------------------------------------------------------------------------------------ stacks


def plan(path: Path) -> Items:
    return [r.as_json() for r in run(StackFile.read(path)).resources]


def external_raw() -> dict[str, Any]:
    """BASE in staging behind an external HTTPS gateway with a hostname, plus a vLLM replica spanning two H100 nodes
    (an LWS: the pool must hold its leaders and not its workers)."""
    raw = mutate(BASE, f"{NS}:environment", "staging")
    raw = mutate(
        raw,
        f"{NS}:gateway",
        {
            "enabled": True,
            "gateway_class": "gke-l7-regional-external-managed",
            "tls": {"certificate": "my-cert"},
            "hostname": "api.example.com",
        },
    )
    raw[f"{NS}:gpu_pools"]["h100"] = {
        "gpu": "h100-80gb",
        "machine_type": "a3-highgpu-8g",
        "zones": ["us-east5-a"],
        "max_nodes_per_zone": 2,
    }
    raw[f"{NS}:workloads"]["wide"] = {
        "engine": "vllm",
        "model": "llama-3.1-70b",
        "gpu_pool": "h100",
        "gpus": 16,
        "max_context": 8192,
        "max_num_seqs": 64,
        "autoscaling": {"min_replicas": 1, "max_replicas": 1},
    }
    return raw


VARIANT_GATEWAY = {"enabled": True, "listener_port": 8080, "tokens_per_second": 20, "min_timeout_s": 150}


def variant_raw() -> dict[str, Any]:
    """staging with another listener port, decode rate and floor."""
    raw = yaml.safe_load((STACKS / "Pulumi.staging.yaml").read_text())["config"]
    return mutate(raw, f"{NS}:gateway", VARIANT_GATEWAY)


@pytest.fixture(scope="module")
def gateway_stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[StackConfig, Items]]:
    out = {env: (load_stack(env), plan(STACKS / f"Pulumi.{env}.yaml")) for env in SHIPPED}
    tmp = tmp_path_factory.mktemp("gateway")
    for name, raw in ((EXTERNAL, external_raw()), (VARIANT, variant_raw())):
        path = tmp / f"Pulumi.{name}.yaml"
        path.write_text(yaml.safe_dump({"config": raw}))
        out[name] = (load_config(raw, stack=name), plan(path))
    return out


def objects(items: Items) -> Objects:
    """Every rendered Kubernetes object's manifest by (kind, namespace, name)."""
    out = {}
    for r in items:
        if r["type"].startswith("kubernetes:") and "kind" in r["inputs"]:
            m = r["inputs"]
            out[(m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"])] = m
    return out


def items_by_key(items: Items) -> dict[Key, dict[str, Any]]:
    return {
        (r["inputs"]["kind"], r["inputs"]["metadata"].get("namespace", ""), r["inputs"]["metadata"]["name"]): r
        for r in items
        if r["type"].startswith("kubernetes:") and "kind" in r["inputs"]
    }


def of_kind(objs: Objects, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
    return [o for (k, ns, _), o in objs.items() if k == kind and (namespace is None or ns == namespace)]


# ------------------------------------------------------------------------------------------------ pods


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """A matchLabels selector over a pod's labels (an empty selector selects every pod)."""
    return all(labels.get(k) == v for k, v in selector.items())


def pod_templates(objs: Objects, namespace: str) -> dict[str, dict[str, Any]]:
    """Every pod template of a namespace: `<Deployment>` and `<LWS>/leader`, `<LWS>/worker`."""
    out = {}
    for d in of_kind(objs, "Deployment", namespace):
        out[d["metadata"]["name"]] = d["spec"]["template"]
    for lws in of_kind(objs, "LeaderWorkerSet", namespace):
        t = lws["spec"]["leaderWorkerTemplate"]
        out[f"{lws['metadata']['name']}/leader"] = t["leaderTemplate"]
        out[f"{lws['metadata']['name']}/worker"] = t["workerTemplate"]
    return out


def server_templates(objs: Objects, w: Workload) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The pod template that answers requests for a workload (a Deployment's, or an LWS's leader) and its LWS workers."""
    ns = w.config.namespace
    deployment = objs.get(("Deployment", ns, w.name))
    if deployment is not None:
        return deployment["spec"]["template"], []
    lws = objs.get(("LeaderWorkerSet", ns, w.name))
    if lws is None:
        return None, []
    t = lws["spec"]["leaderWorkerTemplate"]
    return t["leaderTemplate"], [t["workerTemplate"]]


def labels_of(template: dict[str, Any]) -> dict[str, str]:
    return template.get("metadata", {}).get("labels", {})


def container_ports(template: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}


def resolve(port: int | str, template: dict[str, Any]) -> int | None:
    """A probe's or Service's target port as a number (a name resolves against the pod's container ports)."""
    return port if isinstance(port, int) else container_ports(template).get(port)


def http_readiness(template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The container whose readiness probe is an HTTP GET, and that probe's httpGet."""
    found = [
        (c, c["readinessProbe"]["httpGet"]) for c in template["spec"]["containers"] if "httpGet" in c.get("readinessProbe", {})
    ]
    assert len(found) == 1, [c["name"] for c, _ in found]
    return found[0]


# ------------------------------------------------------------------------------------------------ the walk


def walk(cfg: StackConfig, objs: Objects, name: str) -> None:
    """Gateway -> HTTPRoute -> backend -> pods -> HealthCheckPolicy -> GCPBackendPolicy for one exposed workload."""
    w, gw = cfg.workloads[name], cfg.gateway
    ns = w.config.namespace

    # The Gateway: class from the config, one listener (HTTPS on 443 with the certificate, else HTTP on listener_port).
    gateway = objs.get(("Gateway", NAMESPACE, GATEWAY_NAME))
    assert gateway is not None
    assert gateway["spec"]["gatewayClassName"] == gw.gateway_class
    [listener] = gateway["spec"]["listeners"]
    if gw.tls:
        assert (listener["name"], listener["port"], listener["protocol"]) == ("https", 443, "HTTPS")
        assert listener["tls"]["options"] == {CERT_OPTION: gw.tls.certificate}
    else:
        assert (listener["name"], listener["port"], listener["protocol"]) == ("http", gw.listener_port, "HTTP")
        assert "tls" not in listener
    assert listener.get("hostname") == gw.hostname

    # The route: in the workload's namespace, attached to that listener, the namespace admitted by the listener.
    def attached(route: dict[str, Any]) -> bool:
        return any(
            (p.get("name"), p.get("namespace"), p.get("sectionName")) == (GATEWAY_NAME, NAMESPACE, listener["name"])
            for p in route["spec"]["parentRefs"]
        )

    prefix = f"/models/{w.model.name}/"
    routes = [
        r
        for r in of_kind(objs, "HTTPRoute", ns)
        if attached(r)
        and any(m["path"] == {"type": "PathPrefix", "value": prefix} for rule in r["spec"]["rules"] for m in rule["matches"])
    ]
    assert len(routes) == 1, f"{name}: {len(routes)} routes on {prefix}"
    route = routes[0]
    namespace = objs.get(("Namespace", "", ns))
    assert namespace is not None
    allowed = listener["allowedRoutes"]["namespaces"]
    assert allowed["from"] == "Selector" and selects(allowed["selector"]["matchLabels"], namespace["metadata"].get("labels", {}))
    assert namespace["metadata"]["labels"].get(ROUTES_LABEL) == "true"
    assert route["spec"].get("hostnames") == ([gw.hostname] if gw.hostname else None)
    [rule] = route["spec"]["rules"]
    assert rule["filters"] == [
        {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}
    ]
    [ref] = rule["backendRefs"]
    assert "namespace" not in ref  # the backend lives in the route's namespace

    server, workers = server_templates(objs, w)
    assert server is not None
    probe_container, probe = http_readiness(server)

    if uses_pool(w):
        assert (ref.get("group"), ref["kind"]) == (POOL_GROUP, "InferencePool")
        pool = objs.get(("InferencePool", ns, ref["name"]))
        assert pool is not None, ref["name"]
        selector = pool["spec"]["selector"]["matchLabels"]
        matched = [t for t in pod_templates(objs, ns).values() if selects(selector, labels_of(t))]
        assert matched == [server]  # the serving pods (the LWS leaders), nothing else
        assert not any(selects(selector, labels_of(t)) for t in workers)
        [target] = pool["spec"]["targetPorts"]
        serving_port = target["number"]
        assert serving_port in {p["containerPort"] for p in probe_container.get("ports", [])}
        # The endpoint picker: its Service's ext-proc port reaches the picker container's grpc port.
        picker_ref = pool["spec"]["endpointPickerRef"]
        assert picker_ref["failureMode"] == "FailOpen"
        service = objs.get(("Service", ns, picker_ref["name"]))
        assert service is not None, picker_ref["name"]
        assert picker_ref["name"] == f"{ref['name']}-epp"
        ports = [p for p in service["spec"]["ports"] if p["port"] == picker_ref["port"]["number"] == EXT_PROC_PORT]
        assert len(ports) == 1
        pickers = [t for t in pod_templates(objs, ns).values() if selects(service["spec"]["selector"], labels_of(t))]
        assert len(pickers) == 1
        grpc = {p["name"]: p["containerPort"] for c in pickers[0]["spec"]["containers"] for p in c.get("ports", [])}.get("grpc")
        assert grpc is not None and resolve(ports[0]["targetPort"], pickers[0]) == grpc
        target_ref = {"group": POOL_GROUP, "kind": "InferencePool", "name": pool["metadata"]["name"]}
    else:
        assert ref["kind"] == "Service" and ref.get("group") in (None, "")
        service = objs.get(("Service", ns, ref["name"]))
        assert service is not None, ref["name"]
        assert selects(service["spec"]["selector"], labels_of(server))
        assert not any(selects(service["spec"]["selector"], labels_of(t)) for t in workers)
        ports = [p for p in service["spec"]["ports"] if p["port"] == ref.get("port")]
        assert len(ports) == 1, f"{name}: the route names port {ref.get('port')}"
        resolved = resolve(ports[0]["targetPort"], server)
        assert resolved is not None
        serving_port = resolved
        target_ref = {"group": "", "kind": "Service", "name": service["metadata"]["name"]}

    # Health: the path and port the server's own readiness probe uses, on the port traffic lands on.
    health = [p for p in of_kind(objs, "HealthCheckPolicy", ns) if p["spec"]["targetRef"] == target_ref]
    assert len(health) == 1, f"{name}: {len(health)} HealthCheckPolicies for {target_ref}"
    check = health[0]["spec"]["default"]["config"]
    assert check["type"] == "HTTP"
    assert check["httpHealthCheck"]["requestPath"] == probe["path"]
    probe_port = (
        probe["port"] if isinstance(probe["port"], int) else resolve(probe["port"], {"spec": {"containers": [probe_container]}})
    )
    assert check["httpHealthCheck"]["port"] == probe_port == serving_port
    assert serving_port in container_ports(server).values()

    # Backend: the streaming timeout, no session affinity (InferencePool targets refuse it), IAP as configured.
    backend = [p for p in of_kind(objs, "GCPBackendPolicy", ns) if p["spec"]["targetRef"] == target_ref]
    assert len(backend) == 1, f"{name}: {len(backend)} GCPBackendPolicies for {target_ref}"
    default = backend[0]["spec"]["default"]
    assert default["timeoutSec"] == timeout_s(cfg, w)
    assert "sessionAffinity" not in default
    assert default.get("iap") == ({"enabled": True} if gw.iap_enabled else None)


WALKED = (*SHIPPED, EXTERNAL, VARIANT)


@pytest.mark.parametrize("env", WALKED)
def test_every_exposed_model_walks_from_the_gateway_to_its_server(
    gateway_stacks: dict[str, tuple[StackConfig, Items]], env: str
) -> None:
    cfg, items = gateway_stacks[env]
    objs = objects(items)
    served = exposed(cfg)
    assert set(served) == {n for n, w in cfg.workloads.items() if w.config.batch is None} and served
    assert len(of_kind(objs, "HTTPRoute")) == len(served)
    assert len(of_kind(objs, "InferencePool")) == sum(uses_pool(w) for w in served.values())
    for name in served:
        walk(cfg, objs, name)


def test_the_walk_covers_every_kind_of_backend(gateway_stacks: dict[str, tuple[StackConfig, Items]]) -> None:
    """Deployment and LWS-leader pools, JetStream and Triton Services: each case of the walk runs somewhere."""
    engines = {
        (w.config.engine, w.name in {lws["metadata"]["name"] for lws in of_kind(objects(items), "LeaderWorkerSet")})
        for cfg, items in gateway_stacks.values()
        for w in exposed(cfg).values()
    }
    assert engines >= {("vllm", False), ("vllm", True), ("jetstream-pathways", True), ("triton", False)}


# ------------------------------------------------------------------------------------------------ breaking the walk

Mutation = Callable[[Objects, Workload], bool]
"""Break one link for a workload in place; False when the link does not exist for it."""


def _route(objs: Objects, w: Workload) -> dict[str, Any]:
    return objs[("HTTPRoute", w.config.namespace, w.model.name.replace(".", "-"))]


def _gateway(objs: Objects, w: Workload) -> dict[str, Any]:
    return objs[("Gateway", NAMESPACE, GATEWAY_NAME)]["spec"]


def _listener(objs: Objects, w: Workload) -> dict[str, Any]:
    return _gateway(objs, w)["listeners"][0]


def _parent(objs: Objects, w: Workload) -> dict[str, Any]:
    return _route(objs, w)["spec"]["parentRefs"][0]


def _match(objs: Objects, w: Workload) -> dict[str, Any]:
    return _route(objs, w)["spec"]["rules"][0]["matches"][0]["path"]


def _rewrite(objs: Objects, w: Workload) -> dict[str, Any]:
    return _route(objs, w)["spec"]["rules"][0]["filters"][0]["urlRewrite"]["path"]


def _ref(objs: Objects, w: Workload) -> dict[str, Any]:
    return _route(objs, w)["spec"]["rules"][0]["backendRefs"][0]


def _service_ref(objs: Objects, w: Workload) -> dict[str, Any] | None:
    return None if uses_pool(w) else _ref(objs, w)


def _pool(objs: Objects, w: Workload) -> dict[str, Any] | None:
    return objs[("InferencePool", w.config.namespace, w.name)]["spec"] if uses_pool(w) else None


def _pool_selector(objs: Objects, w: Workload) -> dict[str, Any] | None:
    pool = _pool(objs, w)
    return None if pool is None else pool["selector"]["matchLabels"]


def _pool_target(objs: Objects, w: Workload) -> dict[str, Any] | None:
    pool = _pool(objs, w)
    return None if pool is None else pool["targetPorts"][0]


def _picker_ref(objs: Objects, w: Workload) -> dict[str, Any] | None:
    pool = _pool(objs, w)
    return None if pool is None else pool["endpointPickerRef"]


def _picker_port(objs: Objects, w: Workload) -> dict[str, Any] | None:
    return objs[("Service", w.config.namespace, f"{w.name}-epp")]["spec"]["ports"][0] if uses_pool(w) else None


def _health_target(objs: Objects, w: Workload) -> dict[str, Any]:
    return objs[("HealthCheckPolicy", w.config.namespace, w.name)]["spec"]["targetRef"]


def _health(objs: Objects, w: Workload) -> dict[str, Any]:
    return objs[("HealthCheckPolicy", w.config.namespace, w.name)]["spec"]["default"]["config"]["httpHealthCheck"]


def _backend(objs: Objects, w: Workload) -> dict[str, Any]:
    return objs[("GCPBackendPolicy", w.config.namespace, w.name)]["spec"]["default"]


def _unlabel(objs: Objects, w: Workload) -> bool:
    objs[("Namespace", "", w.config.namespace)]["metadata"]["labels"].pop(ROUTES_LABEL)
    return True


def _take_workers(objs: Objects, w: Workload) -> bool:
    """Drop the role label from an LWS pool's selector: it then holds the workers too."""
    selector = _pool_selector(objs, w)
    if selector is None or ("LeaderWorkerSet", w.config.namespace, w.name) not in objs:
        return False
    selector.pop("app.kubernetes.io/component")
    return True


def edit(node: Callable[[Objects, Workload], dict[str, Any] | None], key: str, value: Callable[[Any], Any]) -> Mutation:
    """Set one key of the node a getter finds (to a function of its old value); no node: the link does not apply."""

    def apply(objs: Objects, w: Workload) -> bool:
        found = node(objs, w)
        if found is None:
            return False
        found[key] = value(found.get(key))
        return True

    return apply


MUTATIONS: dict[str, Mutation] = {
    "gateway class": edit(_gateway, "gatewayClassName", lambda _: "gke-l7-gxlb"),
    "listener port": edit(_listener, "port", lambda v: v + 1),
    "wrong sectionName": edit(_parent, "sectionName", lambda _: "other"),
    "wrong parent gateway": edit(_parent, "name", lambda _: "other"),
    "namespace not admitted": _unlabel,
    "wrong prefix": edit(_match, "value", lambda v: v.rstrip("/")),
    "rewrite keeps a prefix": edit(_rewrite, "replacePrefixMatch", lambda _: "/v1/"),
    "wrong backend name": edit(_ref, "name", lambda v: f"{v}-x"),
    "pool selector matches nothing": edit(_pool_selector, "app.kubernetes.io/name", lambda _: "nothing"),
    "pool selector takes the LWS workers": _take_workers,
    "targetPort not a container port": edit(_pool_target, "number", lambda v: v + 1),
    "picker Service port mismatch": edit(_picker_port, "port", lambda v: v + 1),
    "picker Service targets another container port": edit(_picker_port, "targetPort", lambda _: "metrics"),
    "picker fails closed": edit(_picker_ref, "failureMode", lambda _: "FailClose"),
    "route names another Service port": edit(_service_ref, "port", lambda v: v + 1),
    "health policy on another target": edit(_health_target, "name", lambda v: f"{v}-x"),
    "health path wrong": edit(_health, "requestPath", lambda _: "/healthz"),
    "health port wrong": edit(_health, "port", lambda v: v + 1),
    "timeout wrong": edit(_backend, "timeoutSec", lambda v: v + 1),
    "session affinity": edit(_backend, "sessionAffinity", lambda _: {"type": "CLIENT_IP"}),
    "iap flipped": edit(_backend, "iap", lambda v: None if v else {"enabled": True}),
}


@pytest.mark.parametrize("case", MUTATIONS, ids=list(MUTATIONS))
def test_the_walk_fails_on_any_one_broken_link(gateway_stacks: dict[str, tuple[StackConfig, Items]], case: str) -> None:
    broken = 0
    for env in WALKED:
        cfg, items = gateway_stacks[env]
        pristine = objects(items)
        for name, w in exposed(cfg).items():
            objs = copy.deepcopy(pristine)
            if not MUTATIONS[case](objs, w):
                continue
            assert objs != pristine
            with pytest.raises(AssertionError):
                walk(cfg, objs, name)
            broken += 1
    assert broken > 0, f"{case} applied to no exposed workload"


# ------------------------------------------------------------------------------------------------ timeouts


@pytest.mark.parametrize("env", WALKED)
def test_timeouts_cover_max_context_at_the_decode_rate_above_the_floor(
    gateway_stacks: dict[str, tuple[StackConfig, Items]], env: str
) -> None:
    cfg, items = gateway_stacks[env]
    objs = objects(items)
    gw = cfg.gateway
    for name, w in exposed(cfg).items():
        seconds = objs[("GCPBackendPolicy", w.config.namespace, name)]["spec"]["default"]["timeoutSec"]
        assert seconds == max(gw.min_timeout_s, math.ceil(w.config.max_context / gw.tokens_per_second)) >= gw.min_timeout_s


def test_the_decode_rate_and_floor_move_the_timeouts(gateway_stacks: dict[str, tuple[StackConfig, Items]]) -> None:
    """staging as shipped (10 tokens/s, floor 60) against the same stack at 20 tokens/s with a floor of 150."""
    (before_cfg, before), (after_cfg, after) = gateway_stacks["staging"], gateway_stacks[VARIANT]
    assert after_cfg.gateway.tokens_per_second != before_cfg.gateway.tokens_per_second

    def seconds(items: Items) -> dict[str, int]:
        return {o["metadata"]["name"]: o["spec"]["default"]["timeoutSec"] for o in of_kind(objects(items), "GCPBackendPolicy")}

    old, new = seconds(before), seconds(after)
    assert set(old) == set(new) == set(exposed(before_cfg))
    floored = {n for n, w in exposed(after_cfg).items() if w.config.max_context / 20 < 150}
    assert floored and floored != set(new)  # the floor binds for some, the rate for the others
    for name, w in exposed(after_cfg).items():
        assert new[name] == (150 if name in floored else math.ceil(w.config.max_context / 20))
        assert new[name] != old[name]


# ------------------------------------------------------------------------------------------------ ordering


@pytest.mark.parametrize("env", WALKED)
def test_routes_wait_for_their_backends_and_the_gateway_for_its_address(
    gateway_stacks: dict[str, tuple[StackConfig, Items]], env: str
) -> None:
    cfg, items = gateway_stacks[env]
    by_key = items_by_key(items)
    gateway = by_key[("Gateway", NAMESPACE, GATEWAY_NAME)]
    [address] = of_type(items, ADDRESS)
    assert address["urn"] in gateway["dependencies"]
    assert gateway["inputs"]["spec"]["addresses"] == [{"type": "NamedAddress", "value": address["inputs"]["name"]}]
    for name, w in exposed(cfg).items():
        ns = w.config.namespace
        route = by_key[("HTTPRoute", ns, w.model.name.replace(".", "-"))]
        ref = route["inputs"]["spec"]["rules"][0]["backendRefs"][0]
        if uses_pool(w):
            pool = by_key[("InferencePool", ns, ref["name"])]
            picker = by_key[("Service", ns, pool["inputs"]["spec"]["endpointPickerRef"]["name"])]
            backend = {pool["urn"], picker["urn"]}
        else:
            backend = {by_key[("Service", ns, ref["name"])]["urn"]}
        assert backend <= set(route["dependencies"]), name
        assert gateway["urn"] in route["dependencies"]
        for kind in ("HealthCheckPolicy", "GCPBackendPolicy"):
            assert backend <= set(by_key[(kind, ns, name)]["dependencies"]), (kind, name)


# ------------------------------------------------------------------------------------------------ the endpoint picker


Peer = Callable[[dict[str, Any]], bool]


def from_cidr(cidr: str) -> Peer:
    return lambda peer: peer.get("ipBlock", {}).get("cidr") == cidr


def from_namespace(name: str) -> Peer:
    return lambda peer: peer.get("namespaceSelector", {}).get("matchLabels") == {"kubernetes.io/metadata.name": name}


def from_pods(labels: dict[str, str]) -> Peer:
    """A peer selecting these pods of the policy's own namespace."""
    return lambda peer: (
        "podSelector" in peer and "namespaceSelector" not in peer and selects(peer["podSelector"].get("matchLabels", {}), labels)
    )


def netpol_admits(policy: dict[str, Any], peer: Peer, port: int, template: dict[str, Any]) -> bool:
    """Some ingress rule of a NetworkPolicy lets a peer reach a (resolved) port."""
    for rule in policy["spec"].get("ingress", []):
        ports = [resolve(p["port"], template) for p in rule.get("ports", [])]
        if (not ports or port in ports) and any(peer(p) for p in rule.get("from", [])):
            return True
    return False


@pytest.mark.parametrize("env", WALKED)
def test_the_endpoint_picker_watches_its_pool_and_is_reachable_from_the_proxies(
    gateway_stacks: dict[str, tuple[StackConfig, Items]], env: str
) -> None:
    cfg, items = gateway_stacks[env]
    objs = objects(items)
    pooled = {n: w for n, w in exposed(cfg).items() if uses_pool(w)}
    assert pooled
    assert len(of_kind(objs, "Deployment")) >= len(pooled)
    for name, w in pooled.items():
        ns, epp = w.config.namespace, f"{name}-epp"
        deployment = objs[("Deployment", ns, epp)]
        template = deployment["spec"]["template"]
        labels = labels_of(template)
        assert labels == picker_labels(name)
        [container] = template["spec"]["containers"]
        args = dict(a.removeprefix("--").split("=", 1) for a in container["args"] if "=" in a)
        assert (args["pool-name"], args["pool-namespace"]) == (name, ns)
        assert objs[("InferencePool", ns, name)]["metadata"]["namespace"] == ns
        assert template["spec"]["serviceAccountName"] == epp

        role = objs[("Role", ns, epp)]
        binding = objs[("RoleBinding", ns, epp)]
        assert binding["roleRef"]["name"] == epp and binding["subjects"] == [
            {"kind": "ServiceAccount", "name": epp, "namespace": ns}
        ]
        grants = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
        assert grants[("", "pods")] >= {"get", "watch", "list"}
        assert grants[(POOL_GROUP, "inferencepools")] >= {"get", "watch", "list"}
        assert all(not ({"create", "update", "patch", "delete", "*"} & verbs) for verbs in grants.values())

        # The gateway's proxies (the proxy-only subnet) reach ext-proc; only Managed Prometheus the metrics.
        policy = objs[("NetworkPolicy", ns, epp)]
        assert selects(policy["spec"]["podSelector"]["matchLabels"], labels)
        proxy = cfg.network.proxy_only_cidr
        assert proxy is not None
        assert netpol_admits(policy, from_cidr(proxy), EXT_PROC_PORT, template)
        assert container_ports(template)["grpc"] == EXT_PROC_PORT
        assert netpol_admits(policy, from_namespace("gmp-system"), container_ports(template)["metrics"], template)
        assert not netpol_admits(policy, from_cidr(proxy), container_ports(template)["metrics"], template)

        # The server admits the picker on its serving port (the picker reads vLLM's /metrics there).
        server, _ = server_templates(objs, w)
        assert server is not None
        serving = objs[("InferencePool", ns, name)]["spec"]["targetPorts"][0]["number"]
        server_policy = objs[("NetworkPolicy", ns, name)]
        assert selects(server_policy["spec"]["podSelector"]["matchLabels"], labels_of(server))
        assert netpol_admits(server_policy, from_pods(labels), serving, server)

        # Managed Prometheus scrapes the picker's metrics port.
        monitors = [m for m in of_kind(objs, "PodMonitoring", ns) if selects(m["spec"]["selector"]["matchLabels"], labels)]
        assert len(monitors) == 1
        assert [e["port"] for e in monitors[0]["spec"]["endpoints"]] == ["metrics"]
        assert "metrics" in container_ports(template)


def test_the_server_admits_the_picker_by_its_labels_not_every_pod_of_the_namespace(
    gateway_stacks: dict[str, tuple[StackConfig, Items]],
) -> None:
    cfg, items = gateway_stacks["prod"]
    objs = objects(items)
    for name, w in exposed(cfg).items():
        server, _ = server_templates(objs, w)
        assert server is not None
        policy = objs[("NetworkPolicy", w.config.namespace, name)]
        own = policy["spec"]["podSelector"]["matchLabels"]
        for rule in policy["spec"]["ingress"]:
            for peer in rule.get("from", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    selector = peer["podSelector"].get("matchLabels", {})
                    assert selector in (own, *((picker_labels(name),) if uses_pool(w) else ())), (name, selector)


# ------------------------------------------------------------------------------------------------ external and internal


def test_an_external_gateway_serves_https_with_its_certificate_behind_iap(
    gateway_stacks: dict[str, tuple[StackConfig, Items]],
) -> None:
    cfg, items = gateway_stacks[EXTERNAL]
    objs = objects(items)
    assert cfg.gateway.external and cfg.gateway.iap_enabled
    [listener] = objs[("Gateway", NAMESPACE, GATEWAY_NAME)]["spec"]["listeners"]
    assert (listener["protocol"], listener["port"], listener["hostname"]) == ("HTTPS", 443, "api.example.com")
    assert listener["tls"] == {"mode": "Terminate", "options": {CERT_OPTION: "my-cert"}}
    routes = of_kind(objs, "HTTPRoute")
    assert routes and all(r["spec"]["hostnames"] == ["api.example.com"] for r in routes)
    assert all(r["spec"]["parentRefs"][0]["sectionName"] == "https" for r in routes)
    policies = of_kind(objs, "GCPBackendPolicy")
    assert len(policies) == len(exposed(cfg)) and all(p["spec"]["default"]["iap"] == {"enabled": True} for p in policies)
    [address] = of_type(items, ADDRESS)
    assert address["inputs"]["addressType"] == "EXTERNAL" and address["inputs"]["networkTier"] == "STANDARD"
    assert "subnetwork" not in address["inputs"] and address["inputs"]["region"] == cfg.region


@pytest.mark.parametrize("env", (*SHIPPED, VARIANT))
def test_an_internal_gateway_listens_on_http_in_the_node_subnet_without_iap(
    gateway_stacks: dict[str, tuple[StackConfig, Items]], env: str
) -> None:
    cfg, items = gateway_stacks[env]
    objs = objects(items)
    assert not cfg.gateway.external and not cfg.gateway.iap_enabled and cfg.gateway.tls is None
    gateway = objs[("Gateway", NAMESPACE, GATEWAY_NAME)]["spec"]
    assert gateway["gatewayClassName"] == "gke-l7-rilb"
    [listener] = gateway["listeners"]
    assert (listener["name"], listener["protocol"], listener["port"]) == ("http", "HTTP", cfg.gateway.listener_port)
    assert "tls" not in listener and "hostname" not in listener
    assert all("iap" not in p["spec"]["default"] for p in of_kind(objs, "GCPBackendPolicy"))
    [address] = of_type(items, ADDRESS)
    nodes = [s for s in of_type(items, SUBNETWORK) if s["inputs"].get("purpose") is None]
    assert len(nodes) == 1
    assert address["inputs"]["addressType"] == "INTERNAL" and "networkTier" not in address["inputs"]
    assert address["inputs"]["subnetwork"] == nodes[0]["inputs"]["name"]
    assert nodes[0]["urn"] in address["dependencies"]
    assert address["inputs"]["name"] == f"{cfg.cluster.name}-{cfg.environment}-gateway"


def test_variant_listener_port_is_the_configured_one(gateway_stacks: dict[str, tuple[StackConfig, Items]]) -> None:
    cfg, items = gateway_stacks[VARIANT]
    assert cfg.gateway.listener_port == VARIANT_GATEWAY["listener_port"] != gateway_stacks["staging"][0].gateway.listener_port
    [listener] = objects(items)[("Gateway", NAMESPACE, GATEWAY_NAME)]["spec"]["listeners"]
    assert listener["port"] == 8080


# ------------------------------------------------------------------------------------------------ what a client calls


class _Cloud(mocks.Mocks):
    """The gateway's reserved address resolves to a documentation-range IP."""

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == ADDRESS:
            state["address"] = "203.0.113.7"
        return f"{args.name}-id", state

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        return {}, []


def gateway_outputs(cfg: StackConfig) -> dict[str, Any]:
    """`infra.gateway_serving.build`'s stack outputs (gateway_endpoint, <workload>_example), resolved under mocks."""
    from infra import gateway_serving

    result: dict[str, Any] = {}

    def program() -> None:
        mocks.set_mocks(_Cloud(), project="gke-inference", stack=cfg.environment, preview=False)
        opts = pulumi.ResourceOptions()
        outs = gateway_serving.build(cfg, opts, opts, "nodes", {}, set())
        for key, value in outs.items():
            result[key] = _sync_await(pulumi.Output.from_input(value).future())

    contextvars.Context().run(program)
    return result


def curl(request: str) -> tuple[list[str], str, dict[str, Any]]:
    import json

    words = shlex.split(request)
    assert words[0] == "curl" and "-N" in words  # -N: no buffering, tokens print as they stream
    url = next(w for w in words if w.startswith(("http://", "https://")))
    return words, url, json.loads(words[words.index("-d") + 1])


@pytest.mark.parametrize("env", WALKED)
def test_each_example_request_streams_through_its_route(gateway_stacks: dict[str, tuple[StackConfig, Items]], env: str) -> None:
    cfg, items = gateway_stacks[env]
    objs = objects(items)
    base = "https://gw.test"
    for w in exposed(cfg).values():
        route = _route(objs, w)
        prefix = route["spec"]["rules"][0]["matches"][0]["path"]["value"]
        words, url, body = curl(example_request(base, workload=w))
        assert url.startswith(base + prefix)
        if w.config.engine == "triton":  # KServe v2's generate extension: the stream flag is a parameter
            assert url == f"{base}{prefix}v2/models/{w.model.name}/generate_stream"
            assert body["parameters"]["stream"] is True and body["text_input"]
            continue
        assert body["stream"] is True
        if w.config.engine == "jetstream-pathways":
            assert url == f"{base}{prefix}generate" and "prompt" in body and body["max_tokens"] > 0
        else:
            assert url == f"{base}{prefix}v1/chat/completions"
            assert body["model"] == w.model.name  # the served model name (vLLM's --served-model-name)
            assert "Content-Type: application/json" in words


def test_the_triton_example_uses_tritons_own_generate_stream(gateway_stacks: dict[str, tuple[StackConfig, Items]]) -> None:
    cfg, _ = gateway_stacks["staging"]
    [w] = [w for w in exposed(cfg).values() if w.config.engine == "triton"]
    _, url, _ = curl(example_request("http://gw.test", workload=w))
    assert url.endswith(f"/v2/models/{w.model.name}/generate_stream")


def gateway_cfg(gateway: dict[str, Any]) -> StackConfig:
    return load_config(mutate(BASE, f"{NS}:gateway", gateway), stack="t")


@pytest.mark.parametrize(
    ("gateway", "endpoint"),
    [
        ({"enabled": True}, "http://203.0.113.7"),
        ({"enabled": True, "listener_port": 8080}, "http://203.0.113.7:8080"),
        (
            {
                "enabled": True,
                "gateway_class": "gke-l7-regional-external-managed",
                "tls": {"certificate": "my-cert"},
                "hostname": "api.example.com",
            },
            "https://api.example.com",
        ),
    ],
    ids=["internal", "internal-8080", "external-https"],
)
def test_the_endpoint_output_is_the_listener(gateway: dict[str, Any], endpoint: str) -> None:
    cfg = gateway_cfg(gateway)
    outputs = gateway_outputs(cfg)
    assert outputs["gateway_endpoint"] == endpoint
    assert set(outputs) == {"gateway_endpoint", *(f"{n}_example" for n in exposed(cfg))}
    for name, w in exposed(cfg).items():
        assert outputs[f"{name}_example"] == example_request(endpoint, workload=w)


def test_an_http_listener_on_443_keeps_its_port_in_the_endpoint() -> None:
    assert gateway_outputs(gateway_cfg({"enabled": True, "listener_port": 443}))["gateway_endpoint"] == "http://203.0.113.7:443"


def test_an_empty_certificate_is_refused() -> None:
    with pytest.raises(ConfigError):
        gateway_cfg({"enabled": True, "tls": {"certificate": ""}})


# ------------------------------------------------------------------------------------------------ bad inputs
# Each needs two changes to BASE (the single-change rows are in test_config.py's BAD_INPUTS).

SAME_MODEL = {"engine": "vllm", "model": "llama-3.1-8b", "gpu_pool": "l4", "max_context": 4096, "max_num_seqs": 4}

BAD_GATEWAYS: list[tuple[str, list[tuple[str, Any]], str]] = [
    (
        "external gateway without TLS outside dev",
        [
            (f"{NS}:environment", "staging"),
            (f"{NS}:gateway", {"enabled": True, "gateway_class": "gke-l7-regional-external-managed"}),
        ],
        f"{NS}:gateway.tls: an external gateway serves HTTPS only outside dev (staging); expected a Certificate Manager certificate, got nothing",
    ),
    (
        "two exposed workloads serving the same model",
        [(f"{NS}:workloads.small2", SAME_MODEL), (f"{NS}:gateway", {"enabled": True})],
        f"{NS}:gateway.routes: small, small2 all serve llama-3.1-8b: one gateway routes a model name to one backend; "
        'expected one exposed workload per model (list the routes explicitly), got ["small", "small2"]',
    ),
    (
        "route to a batch workload",
        [(f"{NS}:workloads.small.batch", {}), (f"{NS}:gateway", {"enabled": True, "routes": ["small"]})],
        f"{NS}:gateway.routes[0]: small is a batch Job: nothing to route to; expected a real-time server, got 'small'",
    ),
    (
        "gateway without the proxy-only subnet",
        [(f"{NS}:gateway", {"enabled": True}), (f"{NS}:network", {"proxy_only_cidr": None})],
        f"{NS}:network.proxy_only_cidr: gke-l7-rilb needs an ACTIVE REGIONAL_MANAGED_PROXY subnet in us-east5; expected a CIDR, got nothing",
    ),
]


@pytest.mark.parametrize(("case", "changes", "message"), BAD_GATEWAYS, ids=[c[0] for c in BAD_GATEWAYS])
def test_bad_gateway_input_message(case: str, changes: list[tuple[str, Any]], message: str) -> None:
    raw = BASE
    for path, value in changes:
        raw = mutate(raw, path, value)
    with pytest.raises(ConfigError) as caught:
        load_config(raw, stack="test")
    assert str(caught.value).splitlines() == [message]


def test_two_workloads_of_one_model_are_fine_when_the_routes_pick_one() -> None:
    raw = mutate(
        mutate(BASE, f"{NS}:workloads.small2", SAME_MODEL), f"{NS}:gateway", {"enabled": True, "routes": ["big", "small"]}
    )
    assert set(exposed(load_config(raw, stack="t"))) == {"big", "small"}


# ------------------------------------------------------------------------------------------------ offline admission


@pytest.mark.skipif(not SCHEMAS.is_dir(), reason="upstream schemas not available (conformance runs in CI)")
def test_gateway_objects_pass_admission_against_the_upstream_schema(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["plan", *SHIPPED, "--out", str(tmp_path), "--stacks-dir", str(STACKS), "--crds", str(SCHEMAS)]
    )
    assert result.exit_code == 0, result.output
    kinds = {p.name.split("_", 1)[0] for env in SHIPPED for p in (tmp_path / env / "manifests").glob("*.yaml")}
    assert {"Gateway", "HTTPRoute", "InferencePool", "HealthCheckPolicy", "GCPBackendPolicy"} <= kinds
