"""What an environment needs from its projects' quota before its first `up`: accelerators at their maximum, per region.

Every TPU chip and GPU the stack's pools can scale to (a TPU pool's slices at max, a GPU pool's nodes at max in
every zone), by the quota's own grouping: TPU chips per generation and GPUs per type, in the cluster's region;
and the reservations the config names, which must exist before the pools that consume them.
"""

from __future__ import annotations

from collections import defaultdict

from infra.config import StackConfig


def needs(cfg: StackConfig) -> dict[str, int]:
    """Quota line -> amount, e.g. 'TPU v6e chips in us-east5' -> 48."""
    out: dict[str, int] = defaultdict(int)
    for tpu in cfg.tpu_pools.values():
        out[f"TPU {tpu.slice.generation.name} chips in {cfg.region}"] += tpu.slice.chips * tpu.config.max_slices
    for gpu in cfg.gpu_pools.values():
        nodes = gpu.config.max_nodes_per_zone * len(gpu.zones)
        out[f"{gpu.gpu.name} GPUs in {cfg.region}"] += gpu.gpus_per_vm * nodes
    return dict(sorted(out.items()))


def reservations(cfg: StackConfig) -> list[str]:
    return sorted({t.config.reservation for t in cfg.tpu_pools.values() if t.config.reservation})
