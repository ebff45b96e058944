"""Helpers shared by the Inference Gateway tests (test_gateway_walk.py, test_gateway_objects.py): the stacks they
plan (the shipped gateway stacks, an external HTTPS one and a variant of staging), rendered objects by kind, namespace
and name, pod templates, their labels, ports and readiness probes, and the walk from the Gateway to the pods that answer.

The plans these tests read are a session fixture in conftest.py (`gateway_stacks`), so each stack is planned once.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from conftest import BASE, H100_POOL, REPO, STACKS, WIDE_WORKLOAD, mutate

from components.endpoint_picker import EXT_PROC_PORT
from components.inference_gateway import CERT_OPTION, IAP_SECRET_KEY
from components.serving_namespace import ROUTES_LABEL
from infra.config import StackConfig, Workload
from infra.serving.gateway import GATEWAY_NAME, NAMESPACE, timeout_s, uses_pool
from infra.tooling.plan import StackFile, run

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


IAP_CLIENT_ID = "123456789-abcdef.apps.googleusercontent.com"


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
            "iap": {"client_id": IAP_CLIENT_ID},
        },
    )
    raw[f"{NS}:iap_client_secret"] = {"secure": "v1:ciphertext"}
    raw[f"{NS}:gpu_pools"]["h100"] = copy.deepcopy(H100_POOL)
    raw[f"{NS}:workloads"]["wide"] = copy.deepcopy(WIDE_WORKLOAD)
    return raw


VARIANT_GATEWAY = {"enabled": True, "listener_port": 8080, "tokens_per_second": 20, "min_timeout_s": 150}


def variant_raw() -> dict[str, Any]:
    """staging with another listener port, decode rate and floor."""
    raw = yaml.safe_load((STACKS / "Pulumi.staging.yaml").read_text())["config"]
    return mutate(raw, f"{NS}:gateway", VARIANT_GATEWAY)


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
    # GKE's CRD admits a port only with USE_FIXED_PORT (the default, USE_SERVING_PORT, forbids one).
    assert check["httpHealthCheck"].get("portSpecification") == "USE_FIXED_PORT"
    assert serving_port in container_ports(server).values()

    # Backend: the streaming timeout, no session affinity (InferencePool targets refuse it), IAP as configured.
    backend = [p for p in of_kind(objs, "GCPBackendPolicy", ns) if p["spec"]["targetRef"] == target_ref]
    assert len(backend) == 1, f"{name}: {len(backend)} GCPBackendPolicies for {target_ref}"
    default = backend[0]["spec"]["default"]
    assert default["timeoutSec"] == timeout_s(cfg, w)
    assert "sessionAffinity" not in default
    if gw.iap_enabled:
        # IAP with its OAuth client: the ID, and a Secret in the policy's namespace holding the client secret.
        assert gw.iap is not None
        iap = default.get("iap") or {}
        assert (iap.get("enabled"), iap.get("clientID")) == (True, gw.iap.client_id)
        secret = objs.get(("Secret", ns, (iap.get("oauth2ClientSecret") or {}).get("name")))
        assert secret is not None and set(secret["stringData"]) == {IAP_SECRET_KEY}
    else:
        assert "iap" not in default


WALKED = (*SHIPPED, EXTERNAL, VARIANT)


# The HTTPRoute of a workload: the walk's breaks (test_gateway_walk.py) and the example requests (test_gateway_objects.py).
def _route(objs: Objects, w: Workload) -> dict[str, Any]:
    return objs[("HTTPRoute", w.config.namespace, w.model.name.replace(".", "-"))]
