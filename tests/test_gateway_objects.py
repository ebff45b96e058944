"""The Inference Gateway's objects one at a time: the endpoint picker (its pool, RBAC and network policies), the
external and internal listeners and their addresses, the example requests and endpoint outputs a client calls, bad
gateway inputs, and offline admission of the rendered objects against the upstream schemas.
"""

from __future__ import annotations

import contextvars
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest
from click.testing import CliRunner
from conftest import BASE, STACKS, mutate
from gateway_helpers import (
    ADDRESS,
    EXTERNAL,
    IAP_CLIENT_ID,
    NAMESPACE,
    NS,
    POOL_GROUP,
    SCHEMAS,
    SHIPPED,
    SUBNETWORK,
    VARIANT,
    VARIANT_GATEWAY,
    WALKED,
    Items,
    _route,
    container_ports,
    labels_of,
    objects,
    of_kind,
    resolve,
    selects,
    server_templates,
)
from pulumi.runtime import mocks
from pulumi.runtime.sync_await import _sync_await
from test_platform import of_type

from components.endpoint_picker import CHART_RESOURCES, EXT_PROC_PORT, HEALTH_PORT, picker_labels
from components.inference_gateway import CERT_OPTION, IAP_SECRET_KEY
from components.serving_objects import GOOGLE_HEALTH_CHECK_RANGES
from infra.config import ConfigError, StackConfig, load_config
from infra.config.checks.serving import picker_resources
from infra.names import gateway_address_name, stack_prefix
from infra.serving.gateway import GATEWAY_NAME, example_request, exposed, uses_pool
from infra.tooling.cli import main
from infra.tooling.plan import SECRET

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
        # GKE's gateway controller health-checks the picker over gRPC on its health port, from Google's ranges; each
        # port admits its own caller only.
        health = container_ports(template)["grpc-health"]
        assert container["readinessProbe"]["grpc"]["port"] == health == HEALTH_PORT
        for google in GOOGLE_HEALTH_CHECK_RANGES:
            assert netpol_admits(policy, from_cidr(google), health, template)
            assert not netpol_admits(policy, from_cidr(google), EXT_PROC_PORT, template)
        assert not netpol_admits(policy, from_cidr(proxy), health, template)
        # Sized as llm-d-router's chart (or gateway.picker): requests, the memory limit, no CPU limit.
        resources = container["resources"]
        want = picker_resources(cfg.gateway.picker)
        assert resources["requests"] == {"cpu": f"{want.cpu_millis}m", "memory": f"{want.memory_mib}Mi"}
        assert resources["limits"] == {"memory": f"{want.memory_limit_mib}Mi"}
        assert (cfg.gateway.picker is None) == (want == CHART_RESOURCES)

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
    assert len(policies) == len(exposed(cfg))
    assert cfg.gateway.iap is not None and cfg.gateway.iap.client_id == IAP_CLIENT_ID
    assert all(p["spec"]["default"]["iap"]["clientID"] == IAP_CLIENT_ID for p in policies)
    # The client secret reaches the cluster only as a Secret's data, masked in everything plan writes.
    secrets = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in of_kind(objs, "Secret")}
    for p in policies:
        ref = p["spec"]["default"]["iap"]["oauth2ClientSecret"]["name"]
        assert secrets[(p["metadata"]["namespace"], ref)]["stringData"] == {IAP_SECRET_KEY: SECRET}
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
    # The subnet is the platform stack's; the serving stack reads its name through the StackReference.
    [reference] = of_type(items, "pulumi:pulumi:StackReference")
    assert (nodes[0]["layer"], address["layer"]) == ("platform", "serving") and reference["urn"] in address["dependencies"]
    assert address["inputs"]["name"] == gateway_address_name(stack_prefix(cfg))


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
    """`infra.serving.gateway.build`'s stack outputs (gateway_endpoint, <workload>_example), resolved under mocks."""
    from infra.serving import gateway as gateway_serving

    result: dict[str, Any] = {}

    def program() -> None:
        mocks.set_mocks(_Cloud(), project="gke-inference", stack=cfg.stack, preview=False)
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
                "iap": {"enabled": False},
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
"""A second single-L4 server: BASE's L4 pool (one node) then needs a second node for it."""

EXTERNAL_DEV = {"enabled": True, "gateway_class": "gke-l7-regional-external-managed"}

BAD_GATEWAYS: list[tuple[str, list[tuple[str, Any]], str]] = [
    (
        "external gateway without TLS outside dev",
        [
            (f"{NS}:environment", "staging"),
            (f"{NS}:gateway", {"enabled": True, "gateway_class": "gke-l7-regional-external-managed", "iap": {"enabled": False}}),
        ],
        f"{NS}:gateway.tls: an external gateway serves HTTPS only outside dev (staging); expected a Certificate Manager certificate, got nothing",
    ),
    (
        "external gateway with IAP by default and no OAuth client ID",
        [(f"{NS}:gateway", {**EXTERNAL_DEV, "iap": None}), (f"{NS}:iap_client_secret", "s3cret")],
        f"{NS}:gateway.iap.client_id: IAP is on (the default for an external gateway); GKE's GCPBackendPolicy needs the "
        "OAuth client it signs users in with; expected an OAuth client ID (<number>-<id>.apps.googleusercontent.com), "
        "or iap.enabled: false, got nothing",
    ),
    (
        "IAP on an internal gateway without the client secret",
        [(f"{NS}:gateway", {"enabled": True, "iap": {"client_id": IAP_CLIENT_ID}}), (f"{NS}:environment", "prod")],
        f"{NS}:iap_client_secret: IAP is on; the OAuth client's secret is missing; expected the secret set with "
        "`pulumi config set --secret iap_client_secret`, got nothing",
    ),
    (
        "an IAP client secret with IAP off",
        [(f"{NS}:gateway", {**EXTERNAL_DEV, "iap": {"enabled": False}}), (f"{NS}:iap_client_secret", "s3cret")],
        f"{NS}:iap_client_secret: set while the gateway's IAP is off; expected no secret, or IAP on, got a secret",
    ),
    (
        "two exposed workloads serving the same model",
        [
            (f"{NS}:workloads.small2", SAME_MODEL),
            (f"{NS}:gpu_pools.l4.max_nodes_per_zone", 2),
            (f"{NS}:gateway", {"enabled": True}),
        ],
        f"{NS}:gateway.routes: small, small2 all serve llama-3.1-8b: one gateway routes a model name to one backend; "
        'expected one exposed workload per model (list the routes explicitly), got ["small", "small2"]',
    ),
    (
        "route to a batch workload",
        [(f"{NS}:workloads.small.batch", {}), (f"{NS}:gateway", {"enabled": True, "routes": ["small"]})],
        f"{NS}:gateway.routes[0]: small is a batch Job: nothing to route to; expected a real-time server, got 'small'",
    ),
    (
        "endpoint picker at the chart's size on the default system pool",
        [(f"{NS}:gateway", {"enabled": True}), (f"{NS}:cluster", {})],
        f"{NS}:cluster.system_pool.machine_type: the endpoint picker requests 8 CPU / 8 GiB (llm-d-router v0.10.0's "
        "chart default); one e2-standard-4 node of the system pool schedules 1.92 CPU / 8.2 GiB; expected a system-pool "
        "machine type that fits it (e.g. e2-standard-16), or smaller gateway.picker requests, got 'e2-standard-4'",
    ),
    (
        "endpoint picker sized beyond the system pool",
        [(f"{NS}:gateway", {"enabled": True, "picker": {"cpu": 15, "memory_gib": 8}}), (f"{NS}:environment", "dev")],
        f"{NS}:gateway.picker: the endpoint picker requests 15 CPU / 8 GiB (gateway.picker); one e2-standard-16 node of "
        "the system pool schedules 13.89 CPU / 50.0 GiB; expected a system-pool machine type that fits it (e.g. "
        'e2-standard-16), or smaller gateway.picker requests, got {"cpu": 15.0, "memory_gib": 8.0}',
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
    secrets = {f"{NS}:iap_client_secret"} & raw.keys()
    with pytest.raises(ConfigError) as caught:
        load_config(raw, stack="test", secret_keys=secrets)
    assert str(caught.value).splitlines() == [message]
    assert "s3cret" not in str(caught.value)


def test_two_workloads_of_one_model_are_fine_when_the_routes_pick_one() -> None:
    raw = mutate(mutate(BASE, f"{NS}:workloads.small2", SAME_MODEL), f"{NS}:gpu_pools.l4.max_nodes_per_zone", 2)
    raw = mutate(raw, f"{NS}:gateway", {"enabled": True, "routes": ["big", "small"]})
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


def test_a_picker_sized_down_fits_the_default_system_pool_and_keeps_the_charts_limit_ratio() -> None:
    raw = mutate(mutate(BASE, f"{NS}:cluster", {}), f"{NS}:gateway", {"enabled": True, "picker": {"cpu": 1, "memory_gib": 2}})
    cfg = load_config(raw, stack="t")
    assert cfg.cluster.system_pool.machine_type == "e2-standard-4"
    resources = picker_resources(cfg.gateway.picker)
    assert (resources.cpu_millis, resources.memory_mib) == (1000, 2048)
    assert resources.memory_limit_mib / resources.memory_mib == CHART_RESOURCES.memory_limit_mib / CHART_RESOURCES.memory_mib
