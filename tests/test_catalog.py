"""Catalog integrity: every fact is sourced and dated, every shape and price the stacks use resolves."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import ENVIRONMENTS, STACKS
from pydantic import ValidationError

from infra import sizing, versions
from infra.catalog import Catalog, XlaTuning
from infra.config import load_config
from infra.tooling.report import cost_lines


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


def test_pathways_settings_name_catalog_models_and_shapes(catalog: Catalog) -> None:
    """Each MaxText file belongs to a catalog model whose tokenizer it sets, and sets no key both fixed and varying; each
    XLA tuning names a catalog model and a shape of its TPU generation, disaggregated only where MaxText has a server
    for that slice."""
    configs = catalog.pathways.maxtext_configs
    assert configs.default.sets == configs.default.varies == {} and configs.default.path == "MaxText/configs/base.yml"
    for model, file in configs.models.items():
        arch = catalog.models[model]
        assert file.path != configs.default.path and file.base_config
        assert file.sets.get("tokenizer_path", arch.maxtext_tokenizer) == arch.maxtext_tokenizer
        assert not set(file.sets) & set(file.varies)
    window = configs.commit_window
    assert all(re.fullmatch(r"[0-9a-f]{40}", c) for c in (window.after, window.before, *window.checked_at))
    for tuning in catalog.pathways.proxy_xla_flags:
        t = tuning.tuned_for
        assert t.model in catalog.models and t.topology in catalog.tpus[t.generation].shapes
        if t.mode == "disaggregated":
            assert sizing.disaggregated_server(catalog.tpu_slice(t.generation, t.topology)), t
        assert tuning.flags and tuning.source and tuning.origin


def test_a_repeated_or_malformed_xla_flag_is_refused(catalog: Catalog) -> None:
    tuning = catalog.pathways.proxy_xla_flags[0]
    for flags in ((*tuning.flags, tuning.flags[0].replace("=", "=x")), (*tuning.flags, "xla_tpu_rwb_fusion=true")):
        with pytest.raises(ValidationError, match="expected unique --xla_<name>=<value> flags"):
            XlaTuning(**{**tuning.model_dump(), "flags": flags})


def test_pathways_settings_were_checked_against_the_pinned_images(catalog: Catalog) -> None:
    """A bump of the JetStream or Pathways proxy image fails here until pathways.yaml is re-checked against it (the config
    files live in the image; the XLA flags are read by the proxy's compiler)."""
    assert catalog.pathways.maxtext_configs.image == versions.JETSTREAM_PATHWAYS_IMAGE.ref
    for tuning in catalog.pathways.proxy_xla_flags:
        assert tuning.proxy_image == versions.PATHWAYS_PROXY_IMAGE.ref, tuning.tuned_for
