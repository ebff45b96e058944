"""Two relationships every served workload's objects must keep, whatever its engine (JetStream, vLLM, Triton), in
every shipped stack and the test stack of model_serving_helpers:

- each pod of a vLLM or Triton server lands on the node pools of its own pool: its nodeSelector names the pool by the
  label (or compute class) those node pools carry, so another pool with the same accelerator never takes its pods;
- Managed Prometheus reaches what it scrapes: the NetworkPolicy over the pods a PodMonitoring selects admits the
  collectors' namespace on the port that PodMonitoring scrapes, and on no other.
"""

from __future__ import annotations

from typing import Any

import pytest
from gateway_helpers import Objects, labels_of, objects, of_kind, pod_templates, resolve, selects
from model_serving_helpers import CASES, SHIPPED, TEST_STACK, Stack
from model_serving_helpers import pod_templates as server_pod_templates
from test_gateway_objects import from_namespace, netpol_admits
from test_platform import of_type

from components.node_pools import COMPUTE_CLASS_KEY, POOL_LABEL
from components.serving_objects import GMP_NAMESPACE
from infra.config import StackConfig, Workload
from infra.platform.composition import tpu_node_pool_names
from infra.serving.models import GPU_ACCELERATOR_KEY

NODE_POOL = "gcp:container/nodePool:NodePool"
TPU_ACCELERATOR_KEY, TPU_TOPOLOGY_KEY = "cloud.google.com/gke-tpu-accelerator", "cloud.google.com/gke-tpu-topology"
"""The labels GKE itself puts on accelerator nodes (GPU type; TPU generation and slice topology)."""


def node_labels(cfg: StackConfig, items: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Node-pool name -> the labels its nodes carry: the rendered nodeConfig.labels, plus those GKE adds for the pool's
    accelerator (the rendered GPU type must be the configured one for that to hold)."""
    rendered = {r["inputs"]["name"]: r["inputs"] for r in of_type(items, NODE_POOL)}
    out = {name: dict(p["nodeConfig"].get("labels", {})) for name, p in rendered.items()}
    for gpu in cfg.gpu_pools.values():
        (accelerator,) = rendered[gpu.name]["nodeConfig"]["guestAccelerators"]
        assert accelerator["type"] == gpu.gpu.gke_accelerator
        out[gpu.name][GPU_ACCELERATOR_KEY] = accelerator["type"]
    for tpu in cfg.tpu_pools.values():
        for name in tpu_node_pool_names(tpu.name, tpu.config.slices):
            out[name] |= {TPU_ACCELERATOR_KEY: tpu.slice.generation.gke_accelerator, TPU_TOPOLOGY_KEY: tpu.slice.topology}
    return out


def own_node_pools(w: Workload) -> set[str]:
    if w.tpu_pools:
        return {n for p in w.tpu_pools for n in tpu_node_pool_names(p.name, p.config.slices)}
    assert w.gpu_pool is not None
    return {w.gpu_pool.name}


@pytest.mark.parametrize(("env", "name"), CASES)
def test_every_server_pod_lands_on_its_own_pool_by_the_pools_label(stacks: dict[str, Stack], env: str, name: str) -> None:
    stack = stacks[env]
    w = stack.cfg.workloads[name]
    nodes = node_labels(stack.cfg, stack.items)
    own = own_node_pools(w)
    for role, template in server_pod_templates(stack.items, w).items():
        selector = template["spec"]["nodeSelector"]
        assert {n for n, labels in nodes.items() if selects(selector, labels)} == own, (role, selector)
        # The pool is named, not only its accelerator: a second pool of the same GPU would not take these pods.
        naming = {k: v for k, v in selector.items() if k in (POOL_LABEL, COMPUTE_CLASS_KEY)}
        assert naming and {n for n, labels in nodes.items() if selects(naming, labels)} == own, (role, selector)


def test_the_placement_cases_cover_gpu_tpu_and_a_compute_class(stacks: dict[str, Stack]) -> None:
    ws = [stacks[env].cfg.workloads[name] for env, name in CASES]
    assert any(w.gpu_pool for w in ws) and any(w.tpu_pools for w in ws)
    assert {w.config.engine for w in ws} == {"vllm", "triton"}


def templates_of(objs: Objects, namespace: str) -> dict[str, dict[str, Any]]:
    """Every pod template of a namespace, Jobs' included."""
    jobs = {j["metadata"]["name"]: j["spec"]["template"] for j in of_kind(objs, "Job", namespace)}
    return pod_templates(objs, namespace) | jobs


def collector_ports(objs: Objects, namespace: str, template: dict[str, Any]) -> set[int]:
    """The ports of a pod that Managed Prometheus's collectors may reach, by the NetworkPolicies that select it."""
    policies = [
        p
        for p in of_kind(objs, "NetworkPolicy", namespace)
        if selects(p["spec"]["podSelector"]["matchLabels"], labels_of(template))
    ]
    ports = {p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
    return {port for port in ports if any(netpol_admits(p, from_namespace(GMP_NAMESPACE), port, template) for p in policies)}


@pytest.mark.parametrize("env", [*SHIPPED, TEST_STACK])
def test_managed_prometheus_may_reach_exactly_the_port_each_pod_monitoring_scrapes(stacks: dict[str, Stack], env: str) -> None:
    objs = objects(stacks[env].items)
    monitors = of_kind(objs, "PodMonitoring")
    assert monitors
    for monitor in monitors:
        namespace = monitor["metadata"]["namespace"]
        selected = {
            n: t
            for n, t in templates_of(objs, namespace).items()
            if selects(monitor["spec"]["selector"]["matchLabels"], labels_of(t))
        }
        assert selected, monitor["metadata"]["name"]
        for name, template in selected.items():
            scraped = {resolve(e["port"], template) for e in monitor["spec"]["endpoints"]}
            assert None not in scraped, (name, monitor["spec"]["endpoints"])
            assert collector_ports(objs, namespace, template) == scraped, name


def test_some_scraped_port_is_not_the_serving_port(stacks: dict[str, Stack]) -> None:
    """The case above tells the metrics port from the serving one: a Triton and a JetStream server scrape another port
    than the one they serve on."""
    engines = set()
    for env in SHIPPED:
        objs = objects(stacks[env].items)
        for name, w in stacks[env].cfg.workloads.items():
            monitor = objs.get(("PodMonitoring", w.config.namespace, name))
            service = objs.get(("Service", w.config.namespace, name))
            if monitor and service and monitor["spec"]["endpoints"][0]["port"] != service["spec"]["ports"][0]["targetPort"]:
                engines.add(w.config.engine)
    assert {"triton", "jetstream-pathways"} <= engines
