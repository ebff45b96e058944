"""Shared fixtures: a minimal valid stack config and helpers to break it one key at a time, and the plans several
serving and gateway test modules read (session-scoped, so each stack is planned once)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from infra.catalog import Catalog
from infra.catalog import load as load_catalog
from infra.config import StackConfig
from infra.tooling.plan import StackFile
from infra.tooling.render import write

if TYPE_CHECKING:
    from model_serving_helpers import Stack
    from serving_helpers import Items

# Plain helper modules of the tests: rewrite their asserts as pytest does a test module's.
pytest.register_assert_rewrite("serving_helpers", "model_serving_helpers", "gateway_helpers")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":  # mutmut is mapping functions to the tests that call them
        from mutation_credit import SharedFixtureCredit

        config.pluginmanager.register(SharedFixtureCredit(), "mutation-credit")


REPO = Path(__file__).resolve().parent.parent
STACKS = REPO / "stacks"
ENVIRONMENTS = ("dev", "staging", "prod")

BASE: dict[str, Any] = {
    "gcp:project": "acme-test-1",
    "gcp:region": "us-east5",
    "gke-inference:environment": "dev",
    # Large enough for an endpoint picker at the chart's size, for the stacks that enable the gateway.
    "gke-inference:cluster": {"system_pool": {"machine_type": "e2-standard-16"}},
    "gke-inference:tpu_pools": {"serve": {"topology": "4x4", "zones": ["us-east5-b"]}},
    "gke-inference:gpu_pools": {"l4": {"gpu": "l4", "machine_type": "g2-standard-8", "zones": ["us-east5-a"]}},
    "gke-inference:workloads": {
        "big": {
            "engine": "jetstream-pathways",
            "model": "llama-3.1-405b",
            "tpu_pools": ["serve"],
            "weight_dtype": "int8",
            "kv_cache_dtype": "int8",
            "max_context": 2048,
            "per_device_batch_size": 10,
        },
        "small": {"engine": "vllm", "model": "llama-3.1-8b", "gpu_pool": "l4", "max_context": 4096, "max_num_seqs": 4},
    },
    # Alerts notify someone, which prod requires (tests that switch the environment to prod rely on it).
    "gke-inference:monitoring": {"notification_channels": ["projects/acme-test-1/notificationChannels/42"]},
}


# A two-node H100 pool and a 16-GPU Llama 70B server on it (multi-node TP x PP), for the stacks that need one.
H100_POOL: dict[str, Any] = {
    "gpu": "h100-80gb",
    "machine_type": "a3-highgpu-8g",
    "zones": ["us-east5-a"],
    "max_nodes_per_zone": 2,
}
WIDE_WORKLOAD: dict[str, Any] = {
    "engine": "vllm",
    "model": "llama-3.1-70b",
    "gpu_pool": "h100",
    "gpus": 16,
    "max_context": 8192,
    "max_num_seqs": 64,
    "autoscaling": {"min_replicas": 1, "max_replicas": 1},
    "justification": "throughput",  # 16 GPUs where 8 hold it: the fixture wants a replica across two nodes
}


def mutate(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `raw` with the key path 'ns:key.a.b' set to `value` (None deletes it)."""
    out = copy.deepcopy(raw)
    top, _, rest = path.partition(".")
    if not rest:
        if value is None:
            out.pop(top, None)
        else:
            out[top] = value
        return out
    node = out.setdefault(top, {})
    keys = rest.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return out


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


# ------------------------------------------------------------------------------------------------ serving plans
# The helper modules import test modules that import this one, so the fixtures below import them when first run.
# test_platform.py has a module-scoped `plans` of its own (every environment), which overrides this one there.


@pytest.fixture(scope="session")
def plans() -> dict[str, Items]:
    """The JetStream stacks (serving_helpers.JETSTREAM_ENVS), planned."""
    from serving_helpers import JETSTREAM_ENVS, plan_items

    return {env: plan_items(STACKS / f"Pulumi.{env}.yaml") for env in JETSTREAM_ENVS}


@pytest.fixture(scope="session")
def configs() -> dict[str, StackConfig]:
    from serving_helpers import JETSTREAM_ENVS
    from test_platform import load_stack

    return {env: load_stack(env) for env in JETSTREAM_ENVS}


@pytest.fixture(scope="session")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Stack]:
    """The test stack, captured and written to disk as `plan` writes it."""
    from model_serving_helpers import TEST_STACK, TEST_STACK_FILE, capture

    cap, stack = capture(TEST_STACK_FILE)
    out = tmp_path_factory.mktemp("plan")
    write(cap, out)
    return out / TEST_STACK, stack


@pytest.fixture(scope="session")
def stacks(written: tuple[Path, Stack]) -> dict[str, Stack]:
    from model_serving_helpers import SHIPPED, TEST_STACK, capture

    out = {env: capture(StackFile.read(STACKS / f"Pulumi.{env}.yaml"))[1] for env in SHIPPED}
    return {**out, TEST_STACK: written[1]}


@pytest.fixture(scope="session")
def gateway_stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[StackConfig, Items]]:
    """The gateway stacks (gateway_helpers: the shipped ones, EXTERNAL and VARIANT), loaded and planned."""
    from gateway_helpers import EXTERNAL, SHIPPED, VARIANT, external_raw, plan, variant_raw
    from test_platform import load_stack

    out = {env: (load_stack(env), plan(STACKS / f"Pulumi.{env}.yaml")) for env in SHIPPED}
    tmp = tmp_path_factory.mktemp("gateway")
    for name, raw in ((EXTERNAL, external_raw()), (VARIANT, variant_raw())):
        path = tmp / f"Pulumi.{name}.yaml"
        path.write_text(yaml.safe_dump({"config": raw}))
        out[name] = (StackFile.read(path).load(), plan(path))
    return out
