"""Catalog integrity: every fact is sourced and dated, every shape and price the stacks use resolves."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import ENVIRONMENTS, STACKS

from infra.catalog import Catalog
from infra.config import load_config
from infra.report import cost_lines


def test_every_tpu_shape_uses_a_known_machine_type(catalog: Catalog) -> None:
    for gen in catalog.tpus.values():
        for topology, machines in gen.shapes.items():
            assert set(machines) <= set(gen.machine_types), (gen.name, topology)
            for machine in machines:
                s = catalog.tpu_slice(gen.name, topology, machine)
                assert s.chips % s.chips_per_vm == 0


def test_zones_look_like_zones(catalog: Catalog) -> None:
    zones = [z for g in catalog.tpus.values() for z in g.zones] + [z for g in catalog.gpus.values() for z in g.zones]
    assert all(re.fullmatch(r"[a-z]+-[a-z]+\d-[a-z]", z) for z in zones)


def test_every_gpu_machine_type_belongs_to_one_gpu(catalog: Catalog) -> None:
    owners: dict[str, str] = {}
    for gpu in catalog.gpus.values():
        for machine in gpu.machine_types:
            assert machine not in owners, f"{machine} listed for {owners.get(machine)} and {gpu.name}"
            owners[machine] = gpu.name


def test_price_rows_are_sourced_and_dated(catalog: Catalog) -> None:
    for row in [*catalog.tpu_chip_prices.values(), *catalog.machine_prices.values()]:
        assert row.source and re.fullmatch(r"\d{4}-\d{2}-\d{2}", row.as_of)
        assert 0 < row.spot <= row.on_demand


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_billable_line_of_shipped_stacks_has_a_price(env: str, catalog: Catalog) -> None:
    cfg = load_config(yaml.safe_load((STACKS / f"Pulumi.{env}.yaml").read_text())["config"], stack=env)
    assert [line.item for line in cost_lines(cfg, catalog) if line.unit_price is None] == []
