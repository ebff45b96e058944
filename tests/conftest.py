"""Shared fixtures: a minimal valid stack config and helpers to break it one key at a time."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from infra.catalog import Catalog
from infra.catalog import load as load_catalog

REPO = Path(__file__).resolve().parent.parent
STACKS = REPO / "stacks"
ENVIRONMENTS = ("dev", "staging", "prod")

BASE: dict[str, Any] = {
    "gcp:project": "acme-test-1",
    "gcp:region": "us-east5",
    "gke-inference:environment": "dev",
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
