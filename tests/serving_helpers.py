"""Helpers shared by the serving tests (JetStream, vLLM, Triton): rendered objects by type and name, LeaderWorkerSet
pod templates, their containers, ports, flags and probes, and the shipped stacks' JetStream workloads (CASES).

The plans these tests read are session fixtures in conftest.py (`plans`, `configs`), so each stack is planned once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from test_platform import load_stack, of_type

from infra import sizing
from infra.catalog import Catalog
from infra.config import StackConfig, Workload
from infra.tooling.plan import StackFile, run

Items = list[dict[str, Any]]
LWS = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SERVICE = "kubernetes:core/v1:Service"
NAMESPACE = "kubernetes:core/v1:Namespace"
CHART = "kubernetes:helm.sh/v4:Chart"
BUCKET = "gcp:storage/bucket:Bucket"
JETSTREAM_ENVS = ("staging", "prod")


# ------------------------------------------------------------------------------------------------ helpers


def plan_items(path: Path) -> Items:
    return [r.as_json() for r in run(StackFile.read(path)).resources]


def plan_raw(tmp: Path, name: str, raw: dict[str, Any]) -> Items:
    path = tmp / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": raw}))
    return plan_items(path)


def jetstream(cfg: StackConfig) -> dict[str, Workload]:
    return {n: w for n, w in cfg.workloads.items() if w.config.engine == "jetstream-pathways"}


def lws_of(items: Items) -> dict[str, dict[str, Any]]:
    """LeaderWorkerSet inputs by metadata.name."""
    return {r["inputs"]["metadata"]["name"]: r["inputs"] for r in of_type(items, LWS)}


def named(items: Items, type_: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Inputs of every object of a type by (namespace, metadata.name)."""
    return {
        (r["inputs"]["metadata"].get("namespace", ""), r["inputs"]["metadata"]["name"]): r["inputs"]
        for r in of_type(items, type_)
    }


def templates(lws: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    t = lws["spec"]["leaderWorkerTemplate"]
    return t["leaderTemplate"], t["workerTemplate"]


def containers(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in template["spec"]["containers"]}


def port_numbers(template: dict[str, Any]) -> dict[str, int]:
    """Port name -> containerPort over every container of a pod template."""
    return {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}


def flags(container: dict[str, Any]) -> dict[str, str]:
    """`--key=value` and MaxText `key=value` arguments of a container, by key."""
    out = {}
    for arg in container.get("args") or []:
        if "=" in arg:
            key, _, value = arg.partition("=")
            assert key.lstrip("-") not in out, f"{container['name']}: {key} given twice"
            out[key.lstrip("-")] = value
    return out


def probe_budget(probe: dict[str, Any]) -> int:
    return probe["failureThreshold"] * probe["periodSeconds"]


def handler(probe: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in probe.items() if k in ("httpGet", "tcpSocket", "exec", "grpc")}


def walk_containers(node: Any) -> Iterator[dict[str, Any]]:
    """Every container (and init container) anywhere in a resource's inputs."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from value
            else:
                yield from walk_containers(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_containers(value)


def startup(catalog: Catalog, workload: Workload) -> sizing.StartupEstimate:
    """The estimate from the catalog: one slice's hosts read one copy of the weights over the cached path."""
    return sizing.startup_estimate(
        catalog.loading,
        path=sizing.JETSTREAM_LOAD_PATH,
        engine=workload.config.engine,
        weight_bytes=sizing.weight_bytes(workload.model, workload.config.weight_dtype),
        hosts=workload.tpu_pools[0].slice.vms,
    )


def cases() -> list[tuple[str, str]]:
    return [(env, name) for env in JETSTREAM_ENVS for name in jetstream(load_stack(env))]


CASES = cases()
