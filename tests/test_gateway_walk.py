"""The Inference Gateway, end to end: from the Gateway to the pods that answer, every link computed from the config.

The walk (gateway_helpers.walk) follows what a request follows: the Gateway's listener, the HTTPRoute attached to it
from a namespace the listener admits, the path prefix and rewrite, the backend (an InferencePool and its endpoint
picker, or a Service), the pods behind it, and the health and backend policies GKE programs for that backend. Each
link is checked against the config and the rendered server, and each one-change break of a rendered object makes the
walk fail. Then the streaming timeouts each backend gets, and the order the objects are created in.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import pytest
from gateway_helpers import (
    ADDRESS,
    NAMESPACE,
    VARIANT,
    WALKED,
    Items,
    Objects,
    _route,
    items_by_key,
    objects,
    of_kind,
    walk,
)
from test_platform import of_type

from components.serving_namespace import ROUTES_LABEL
from infra.config import StackConfig, Workload
from infra.serving.gateway import GATEWAY_NAME, exposed, uses_pool


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


def _iap(objs: Objects, w: Workload) -> dict[str, Any] | None:
    return _backend(objs, w).get("iap")


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
    "health port given without USE_FIXED_PORT": edit(_health, "portSpecification", lambda _: None),
    "timeout wrong": edit(_backend, "timeoutSec", lambda v: v + 1),
    "session affinity": edit(_backend, "sessionAffinity", lambda _: {"type": "CLIENT_IP"}),
    "iap flipped": edit(_backend, "iap", lambda v: None if v else {"enabled": True}),
    "iap without its OAuth client": edit(_iap, "clientID", lambda _: None),
    "iap secret in another namespace's name": edit(_iap, "oauth2ClientSecret", lambda _: {"name": "other"}),
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
