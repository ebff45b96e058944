"""The serving layer under mocks, JetStream LeaderWorkerSets: Pathways ports and buckets, Service and probes, group
layout and placement on the slices, the startup budget, a topology change end to end, refused serving configs and
seed 001's structure, each derived from config and catalog.

The scaling, Pod Security, metrics adapter and version checks of the same objects are in test_jetstream_platform.py;
shared helpers in serving_helpers.py, the `plans` and `configs` fixtures in conftest.py.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import BASE, STACKS, mutate
from serving_helpers import (
    BUCKET,
    CASES,
    HPA,
    SERVICE,
    Items,
    containers,
    flags,
    handler,
    jetstream,
    lws_of,
    named,
    plan_items,
    port_numbers,
    probe_budget,
    startup,
    templates,
)
from test_config import problems
from test_platform import NODE_POOL, by_name, of_type

from components.node_pools import COMPUTE_CLASS_KEY, POOL_LABEL
from components.pathways import EXCLUSIVE, SUBGROUP_EXCLUSIVE, TPU_RESOURCE
from infra import sizing
from infra.catalog import Catalog, TunedFor
from infra.config import StackConfig, load_config
from infra.names import scratch_bucket_name
from infra.platform.composition import tpu_node_pool_names
from infra.serving.common import HPA_MAX_PERIOD_S, HPA_MAX_WINDOW_S
from infra.serving.composition import TPU_ACCELERATOR_KEY, TPU_TOPOLOGY_KEY
from infra.tooling.cli import main

SEED_RESTORE_S = {"llama-3.1-405b": 420, "llama-2-70b": 120}
"""Seed 001's documented checkpoint restore times (405B int8 on one 4x4 slice, 70B int8 on one 2x4 slice)."""


def test_both_modes_and_both_placements_are_covered(configs: dict[str, StackConfig]) -> None:
    """The shipped stacks exercise interleaved and disaggregated serving, compute-class and pool-label placement."""
    workloads = [(cfg, w) for cfg in configs.values() for w in jetstream(cfg).values()]
    assert {w.config.mode for _, w in workloads} == {"interleaved", "disaggregated"}
    assert {cfg.compute_class_of(w.tpu_pools[0].name) is None for cfg, w in workloads} == {True, False}


# ------------------------------------------------------------------------------------------------ 1. wiring


@pytest.mark.parametrize(("env", "name"), CASES)
def test_pathways_ports_and_buckets_agree(plans: dict[str, Items], configs: dict[str, StackConfig], env: str, name: str) -> None:
    """RM address = the RM's port and --server_port; proxy/worker --server_port = their containerPort; scratch in the
    stack's scratch bucket, weights in the model bucket (both buckets rendered by this plan)."""
    cfg = configs[env]
    leader, worker = templates(lws_of(plans[env])[name])
    lc, wc = containers(leader), containers(worker)["worker"]
    rm, proxy = lc["pathways-rm"], lc["pathways-proxy"]
    (rm_port,) = (p["containerPort"] for p in rm["ports"])
    assert int(flags(rm)["server_port"]) == rm_port
    for c in (proxy, wc):
        assert flags(c)["resource_manager_address"] == f"$(LWS_LEADER_ADDRESS):{rm_port}"
    for c in (proxy, wc):
        (port,) = (p["containerPort"] for p in c["ports"])
        assert int(flags(c)["server_port"]) == port
    buckets = {b["name"] for b in by_name(plans[env], BUCKET).values()}
    assert {cfg.bucket_name, scratch_bucket_name(cfg.bucket_name)} <= buckets
    for c in (proxy, rm, wc):
        scratch = flags(c)["gcs_scratch_location"]
        assert scratch.startswith(f"gs://{scratch_bucket_name(cfg.bucket_name)}/")
        assert not scratch.startswith(f"gs://{cfg.bucket_name}/")
    assert flags(lc["jax-tpu"])["load_parameters_path"].startswith(f"gs://{cfg.bucket_name}/")


@pytest.mark.parametrize(("env", "name"), CASES)
def test_service_and_probes_reach_the_leader(plans: dict[str, Items], env: str, name: str) -> None:
    """The Service selects leader pods only and targets a leader port; jax-tpu probes /healthcheck on jetstream-http's port
    (by number: the pod shares one network namespace)."""
    lws = lws_of(plans[env])[name]
    leader, worker = templates(lws)
    namespace = lws["metadata"]["namespace"]
    spec = named(plans[env], SERVICE)[(namespace, name)]["spec"]
    selector = spec["selector"].items()
    assert selector <= leader["metadata"]["labels"].items()
    assert not selector <= worker["metadata"]["labels"].items()
    leader_ports = port_numbers(leader)
    for port in spec["ports"]:
        assert leader_ports[port["targetPort"]] == port["port"]
    http_ports = {p["containerPort"] for p in containers(leader)["jetstream-http"]["ports"]}
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = containers(leader)["jax-tpu"][kind]["httpGet"]
        assert get["path"] == "/healthcheck"
        assert get["port"] in http_ports


@pytest.mark.parametrize(("env", "name"), CASES)
def test_every_probe_port_exists_where_the_kubelet_looks(plans: dict[str, Items], env: str, name: str) -> None:
    """Kubernetes semantics: a probe's port name must be one of the same container's ports (prober.findPortByName);
    a port number must be served by some container of the pod."""
    for template in templates(lws_of(plans[env])[name]):
        pod_numbers = {p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        for c in template["spec"]["containers"]:
            own = {p["name"] for p in c.get("ports", [])}
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                port = next(iter(handler(c[kind]).values()))["port"]
                assert port in pod_numbers if isinstance(port, int) else port in own, f"{c['name']}.{kind} -> {port}"


# ------------------------------------------------------------------------------------------------ 2. layout


@pytest.mark.parametrize(("env", "name"), CASES)
def test_group_layout_follows_the_slices(plans: dict[str, Items], configs: dict[str, StackConfig], env: str, name: str) -> None:
    """Group = every VM of every slice + leader; TPU per worker = chips per VM; Pathways flags and the ICI mesh
    match the slice; disaggregated groups split into one subgroup per slice, interleaved groups own a node pool."""
    workload, lws = configs[env].workloads[name], lws_of(plans[env])[name]
    slice_ = workload.tpu_pools[0].slice
    template = lws["spec"]["leaderWorkerTemplate"]
    leader, worker = templates(lws)
    assert template["size"] == sum(p.slice.vms for p in workload.tpu_pools) + 1
    resources = containers(worker)["worker"]["resources"]
    assert resources["limits"][TPU_RESOURCE] == resources["requests"][TPU_RESOURCE] == str(slice_.chips_per_vm)
    assert all(TPU_RESOURCE not in c["resources"]["requests"] for c in leader["spec"]["containers"])
    rm = flags(containers(leader)["pathways-rm"])
    assert int(rm["instance_count"]) == len(workload.tpu_pools)
    assert rm["instance_type"] == f"{slice_.generation.pathways_type}:{slice_.topology}" == f"tpuv6e:{slice_.topology}"
    jax = flags(containers(leader)["jax-tpu"])
    ici = ("ici_fsdp_parallelism", "ici_autoregressive_parallelism", "ici_tensor_parallelism")
    assert math.prod(int(jax[k]) for k in ici) == slice_.chips
    annotations = lws["metadata"]["annotations"]
    if workload.config.mode == "disaggregated":
        assert template["subGroupPolicy"]["subGroupSize"] == slice_.vms
        assert SUBGROUP_EXCLUSIVE in annotations and EXCLUSIVE not in annotations
        assert jax["inference_server"] == sizing.disaggregated_server(slice_)
    else:
        assert EXCLUSIVE in annotations and SUBGROUP_EXCLUSIVE not in annotations
        assert "subGroupPolicy" not in template and "inference_server" not in jax


# ------------------------------------------------------------------------------------------------ 3. placement


@pytest.mark.parametrize(("env", "name"), CASES)
def test_every_pod_tolerates_the_tpu_and_lands_on_its_pool(
    plans: dict[str, Items], configs: dict[str, StackConfig], env: str, name: str
) -> None:
    """Leader and worker tolerate google.com/tpu; they select the pool's compute class (and tolerate its taint) when one
    selects the pool, else accelerator + topology + pool label, which the pool's node pools carry."""
    cfg, workload = configs[env], configs[env].workloads[name]
    pool = workload.tpu_pools[0]
    node_pools = [by_name(plans[env], NODE_POOL)[n] for n in tpu_node_pool_names(pool.name, pool.config.slices)]
    cls = cfg.compute_class_of(pool.name)
    for template in templates(lws_of(plans[env])[name]):
        spec = template["spec"]
        assert {"key": TPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        if cls is not None:
            assert spec["nodeSelector"] == {COMPUTE_CLASS_KEY: cls}
            for p in node_pools:
                assert p["nodeConfig"]["labels"][COMPUTE_CLASS_KEY] == cls
                for taint in p["nodeConfig"]["taints"]:
                    toleration = {"key": taint["key"], "operator": "Equal", "value": taint["value"], "effect": "NoSchedule"}
                    assert toleration in spec["tolerations"]
        else:
            assert spec["nodeSelector"] == {
                TPU_ACCELERATOR_KEY: pool.slice.generation.gke_accelerator,
                TPU_TOPOLOGY_KEY: pool.slice.topology,
                POOL_LABEL: pool.name,
            }
            for p in node_pools:
                assert p["nodeConfig"]["labels"][POOL_LABEL] == spec["nodeSelector"][POOL_LABEL]
                assert p["placementPolicy"]["tpuTopology"] == spec["nodeSelector"][TPU_TOPOLOGY_KEY]


# ------------------------------------------------------------------------------------------------ 4. startup


@pytest.mark.parametrize(("env", "name"), CASES)
def test_startup_budget_is_the_catalog_estimate(
    plans: dict[str, Items], configs: dict[str, StackConfig], catalog: Catalog, env: str, name: str
) -> None:
    """Every container's startup probe allows the catalog's budget, at least twice seed 001's restore; liveness
    (which Kubernetes starts only after startup succeeds) probes the same handler, more tolerantly than readiness."""
    workload = configs[env].workloads[name]
    estimate = startup(catalog, workload)
    assert estimate.budget_s >= 2 * SEED_RESTORE_S[workload.model.name]
    for template in templates(lws_of(plans[env])[name]):
        for c in template["spec"]["containers"]:
            assert probe_budget(c["startupProbe"]) == estimate.budget_s, c["name"]
            live, ready = c["livenessProbe"], c["readinessProbe"]
            assert handler(live) == handler(c["startupProbe"]) == handler(ready)
            assert live != ready and probe_budget(live) > probe_budget(ready)


# ------------------------------------------------------------------------------------------------ 5. topology


WIDE_POOL, WIDE_TOPOLOGY = "v6e-4x4", "4x8"


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> tuple[StackConfig, Items]:
    """prod with tpu_pools.v6e-4x4.topology changed, written as Pulumi.prod.yaml and planned; node auto-provisioning's
    CPU and memory ceilings raised with it (the loader refuses ceilings below the nodes the workloads scale to)."""
    raw = yaml.safe_load((STACKS / "Pulumi.prod.yaml").read_text())
    assert raw["config"]["gke-inference:tpu_pools"][WIDE_POOL]["topology"] != WIDE_TOPOLOGY
    raw["config"]["gke-inference:tpu_pools"][WIDE_POOL]["topology"] = WIDE_TOPOLOGY
    raw["config"]["gke-inference:cluster"]["node_auto_provisioning"] = {"cpu_max": 5000, "memory_max_gb": 20000}
    path = tmp_path_factory.mktemp("wide") / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(raw["config"], stack="prod"), plan_items(path)


def expected_shape(cfg: StackConfig, catalog: Catalog, workload: str) -> dict[str, Any]:
    """What the topology of a workload's pool implies, from catalog and config alone."""
    w = cfg.workloads[workload]
    pool = w.tpu_pools[0]
    s, estimate = pool.slice, startup(catalog, w)
    return {
        "node_pools": [(pool.config.slices_per_pool[1] * s.vms, s.topology)] * pool.config.slices,
        "size": sizing.lws_group_size(s, len(w.tpu_pools)),
        "tpu_per_worker": str(s.chips_per_vm),
        "instance_type": sizing.pathways_flags(s, len(w.tpu_pools)).instance_type,
        "ici_product": s.chips,
        "hpa": (
            min(HPA_MAX_PERIOD_S, math.ceil(estimate.predicted_s)),
            min(HPA_MAX_WINDOW_S, math.ceil(2 * estimate.predicted_s)),
        ),
        "startup_budget_s": estimate.budget_s,
        "compute_class_tpu": {(s.chips_per_vm, s.topology)},
    }


def observed_shape(cfg: StackConfig, items: Items, workload: str) -> dict[str, Any]:
    pool = cfg.workloads[workload].tpu_pools[0]
    lws = lws_of(items)[workload]
    leader, worker = templates(lws)
    jax = flags(containers(leader)["jax-tpu"])
    nps = [by_name(items, NODE_POOL)[n] for n in tpu_node_pool_names(pool.name, pool.config.slices)]
    behavior = named(items, HPA)[(lws["metadata"]["namespace"], workload)]["spec"]["behavior"]
    (up,) = behavior["scaleUp"]["policies"]
    classes = [c["inputs"]["spec"] for c in of_type(items, "kubernetes:cloud.google.com/v1:ComputeClass")]
    cls = cfg.compute_class_of(pool.name)
    rungs = [r for c in classes for r in c["priorities"] if "tpu" in r]
    return {
        "node_pools": [(p["autoscaling"]["maxNodeCount"], p["placementPolicy"]["tpuTopology"]) for p in nps],
        "size": lws["spec"]["leaderWorkerTemplate"]["size"],
        "tpu_per_worker": containers(worker)["worker"]["resources"]["limits"][TPU_RESOURCE],
        "instance_type": flags(containers(leader)["pathways-rm"])["instance_type"],
        "ici_product": math.prod(int(jax[f"ici_{k}_parallelism"]) for k in ("fsdp", "autoregressive", "tensor")),
        "hpa": (up["periodSeconds"], behavior["scaleDown"]["stabilizationWindowSeconds"]),
        "startup_budget_s": probe_budget(containers(leader)["jax-tpu"]["startupProbe"]),
        "compute_class_tpu": {(r["tpu"]["count"], r["tpu"]["topology"]) for r in rungs} if cls else set(),
    }


def test_topology_change_propagates_everywhere(
    plans: dict[str, Items], configs: dict[str, StackConfig], wide: tuple[StackConfig, Items], catalog: Catalog
) -> None:
    """4x4 -> 4x8 on the 405B pool: node pools, LWS size, TPU per worker, Pathways type, ICI mesh, HPA periods, startup
    budget and compute-class rungs all follow the catalog; the model still fits; other workloads render unchanged."""
    wide_cfg, wide_items = wide
    workload = next(n for n, w in jetstream(wide_cfg).items() if w.tpu_pools[0].name == WIDE_POOL)
    assert wide_cfg.workloads[workload].fit.fits
    before, after = expected_shape(configs["prod"], catalog, workload), expected_shape(wide_cfg, catalog, workload)
    assert observed_shape(configs["prod"], plans["prod"], workload) == before
    assert observed_shape(wide_cfg, wide_items, workload) == after
    changed = {k for k in before if before[k] != after[k]}
    assert changed == set(before) - {"tpu_per_worker"}  # ct6e-standard-4t holds 4 chips whatever the topology
    others = set(lws_of(plans["prod"])) - {workload}
    assert others and all(lws_of(wide_items)[n] == lws_of(plans["prod"])[n] for n in others)


# ------------------------------------------------------------------------------------------------ 6. GKE's samples

PROXY_PATHWAYS_FLAGS = {"resource_manager_address", "gcs_scratch_location", "server_port"}


def same_value(command_line: str, file_value: str | bool | int) -> bool:
    """A MaxText key=value argument and a config file's YAML value mean the same (pyconfig reads both as YAML)."""
    return yaml.safe_load(command_line) == file_value


@pytest.mark.parametrize(("env", "name"), CASES)
def test_the_proxy_gets_exactly_the_xla_flags_tuned_for_its_workload(
    plans: dict[str, Items], configs: dict[str, StackConfig], catalog: Catalog, env: str, name: str
) -> None:
    """After its Pathways flags, the proxy's arguments are the catalog's XLA flags for this model, slice and mode, in order
    (GKE's disaggregated Llama 2 70B sample), and nothing else."""
    workload = configs[env].workloads[name]
    proxy = containers(templates(lws_of(plans[env])[name])[0])["pathways-proxy"]
    assert set(flags(proxy)) - {k for k in flags(proxy) if k.startswith("xla_")} == PROXY_PATHWAYS_FLAGS
    expected = catalog.pathways.proxy_flags(workload.model.name, workload.tpu_pools[0].slice, workload.config.mode)
    assert proxy["args"][len(PROXY_PATHWAYS_FLAGS) :] == list(expected)


def test_the_shipped_workloads_the_flags_were_tuned_for_get_them(configs: dict[str, StackConfig], catalog: Catalog) -> None:
    """Every shipped disaggregated Llama 2 70B on v6e 2x4 is what a tuning was made for (so gets non-empty flags); the
    interleaved 405B, like GKE's 405B sample, gets none."""
    tuned = {t.tuned_for for t in catalog.pathways.proxy_xla_flags}
    got = {}
    for env, cfg in configs.items():
        for name, w in jetstream(cfg).items():
            s = w.tpu_pools[0].slice
            shape = TunedFor(model=w.model.name, generation=s.generation.name, topology=s.topology, mode=w.config.mode)
            got[env, name] = bool(catalog.pathways.proxy_flags(w.model.name, s, w.config.mode))
            assert got[env, name] == (shape in tuned)
    assert got[("prod", "llama2-70b")] and got[("staging", "llama2-70b")] and not got[("prod", "llama-405b")]


@pytest.mark.parametrize(("env", "name"), CASES)
def test_the_server_starts_from_its_models_config_file_and_agrees_with_it(
    plans: dict[str, Items], configs: dict[str, StackConfig], catalog: Catalog, env: str, name: str
) -> None:
    """jax-tpu's first argument is the catalog's MaxText file for the model; every key after it is given once, is one the
    catalog checked against base.yml, and where the file sets the same key the values agree; a key whose value in the
    file depends on the image's unknown MaxText commit is given on the command line whenever it can be."""
    workload = configs[env].workloads[name]
    jax = containers(templates(lws_of(plans[env])[name])[0])["jax-tpu"]
    file = catalog.pathways.maxtext_configs.for_model(workload.model.name)
    assert jax["args"][0] == file.path
    overrides = flags(jax)  # refuses a key given twice
    assert len(overrides) == len(jax["args"]) - 1
    assert set(overrides) <= catalog.pathways.maxtext_configs.command_line_keys
    for key in set(overrides) & set(file.sets):
        assert same_value(overrides[key], file.sets[key]), (
            f"{key}: {overrides[key]} on the command line, {file.sets[key]} in {file.path}"
        )
    assert set(file.varies) & catalog.pathways.maxtext_configs.command_line_keys <= set(overrides)


def test_the_405b_server_runs_the_file_gke_runs_it_with(plans: dict[str, Items], catalog: Catalog) -> None:
    """prod's 405B names its own file, not base.yml (what the image would otherwise apply), and keeps its tokenizer."""
    configs_ = catalog.pathways.maxtext_configs
    jax = containers(templates(lws_of(plans["prod"])["llama-405b"])[0])["jax-tpu"]
    assert jax["args"][0] == configs_.models["llama-3.1-405b"].path != configs_.default.path
    assert flags(jax)["tokenizer_path"] == configs_.models["llama-3.1-405b"].sets["tokenizer_path"]


SWAPPED_MODEL = "llama-3.1-70b"


@pytest.fixture(scope="module")
def swapped(tmp_path_factory: pytest.TempPathFactory) -> tuple[StackConfig, Items]:
    """prod with both JetStream workloads serving another model (same pools and modes), planned; the gateway routes one
    model name to one workload, so it leaves them out (vLLM's llama-70b serves that model too)."""
    raw = yaml.safe_load((STACKS / "Pulumi.prod.yaml").read_text())
    config = raw["config"]
    workloads = config["gke-inference:workloads"]
    swapped = ("llama-405b", "llama2-70b")
    for name in swapped:
        assert workloads[name]["model"] != SWAPPED_MODEL
        workloads[name]["model"] = SWAPPED_MODEL
    config["gke-inference:gateway"]["routes"] = [n for n in workloads if n not in swapped]
    workloads["llama-405b"]["justification"] = "throughput"  # a 70B model on the 405B's 4x4: over 2x its need
    path = tmp_path_factory.mktemp("swapped") / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(config, stack="prod"), plan_items(path)


def test_another_model_gets_base_yml_and_no_tuned_flags(swapped: tuple[StackConfig, Items], catalog: Catalog) -> None:
    """The file and the proxy flags follow the model, not the pool or the workload's name: on the same 4x4 the 405B's
    file gives way to base.yml, and a disaggregated 70B other than Llama 2 on the same 2x4 pair compiles with XLA's
    defaults."""
    cfg, items = swapped
    assert SWAPPED_MODEL not in catalog.pathways.maxtext_configs.models
    leaders = {n: containers(templates(lws_of(items)[n])[0]) for n in ("llama-405b", "llama2-70b")}
    assert cfg.workloads["llama2-70b"].config.mode == "disaggregated"
    for c in leaders.values():
        assert c["jax-tpu"]["args"][0] == catalog.pathways.maxtext_configs.default.path
        assert flags(c["jax-tpu"])["model_name"] == catalog.models[SWAPPED_MODEL].maxtext_name
        assert set(flags(c["pathways-proxy"])) == PROXY_PATHWAYS_FLAGS


# ------------------------------------------------------------------------------------------------ bad configs


NS = "gke-inference"


def mismatched_pair() -> dict[str, Any]:
    """BASE with big disaggregated over its 4x4 pool and a second pool of another shape."""
    raw = mutate(BASE, f"{NS}:tpu_pools.pair", {"topology": "2x4", "machine_type": "ct6e-standard-4t", "zones": ["us-east5-b"]})
    big = BASE[f"{NS}:workloads"]["big"]
    return mutate(raw, f"{NS}:workloads.big", {**big, "mode": "disaggregated", "tpu_pools": ["serve", "pair"]})


MISMATCHED_PAIR = (
    f"{NS}:workloads.big.tpu_pools: prefill and decode slices must have the same shape; expected pools of one topology and "
    'machine type, got [["2x4", "ct6e-standard-4t"], ["4x4", "ct6e-standard-4t"]]'
)


def test_disaggregated_pools_of_two_shapes_are_refused() -> None:
    assert problems(mismatched_pair()) == [MISMATCHED_PAIR]


def test_cli_refuses_a_bad_serving_config_and_writes_nothing(tmp_path: Path) -> None:
    """`plan --stack-file` exits 2 with the loader's message and renders nothing."""
    stack = tmp_path / "Pulumi.pair.yaml"
    stack.write_text(yaml.safe_dump({"config": mismatched_pair()}))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["plan", "--stack-file", str(stack), "--out", str(out)])
    assert result.exit_code == 2
    assert MISMATCHED_PAIR in result.stderr
    assert not (out / "pair").exists()


# ------------------------------------------------------------------------------------------------ seed 001

SEED_001 = {
    "leader": {
        "pathways-proxy": ({38681}, {"resource_manager_address", "server_port", "gcs_scratch_location"}),
        "pathways-rm": ({38677}, {"server_port", "gcs_scratch_location", "node_type", "instance_count", "instance_type"}),
        "jax-tpu": (
            {9000},
            {
                "model_name",
                "load_parameters_path",
                "max_prefill_predict_length",
                "max_target_length",
                "ici_fsdp_parallelism",
                "ici_autoregressive_parallelism",
                "ici_tensor_parallelism",
                "scan_layers",
                "weight_dtype",
                "per_device_batch_size",
                "quantization",
                "quantize_kvcache",
                "checkpoint_is_quantized",
                "enable_model_warmup",
            },
        ),
        "jetstream-http": ({8000}, set()),
    },
    "worker": {"worker": ({38679}, {"server_port", "resource_manager_address", "gcs_scratch_location"})},
}
"""Seed 001's two LeaderWorkerSets, as structure: per template, each container's ports and the flags both manifests
set. Deliberate differences (README, 'What changed'): a `metrics` port and `prometheus_port` added to jax-tpu; the
debugging flag of the 405B resource manager dropped. The config file (seed 001's for 405B) is checked in section 6."""
SEED_001_DISAGGREGATED = {"compute_axis_order", "ar_cache_axis_order", "stack_prefill_result_cache", "inference_server"}


@pytest.mark.parametrize(("env", "name"), CASES)
def test_lws_has_the_structure_of_seed_001(plans: dict[str, Items], configs: dict[str, StackConfig], env: str, name: str) -> None:
    """Same containers in the same templates, seed 001's ports and flags, plus only the documented additions."""
    lws, workload = lws_of(plans[env])[name], configs[env].workloads[name]
    for role, template in zip(("leader", "worker"), templates(lws), strict=True):
        seed = SEED_001[role]
        assert [c["name"] for c in template["spec"]["containers"]] == list(seed)
        for cname, container in containers(template).items():
            ports, seed_flags = seed[cname]
            named_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            added = {"metrics"} if cname == "jax-tpu" else set()
            assert set(named_ports.values()) == ports | {named_ports[n] for n in added}
            wanted = seed_flags | (
                SEED_001_DISAGGREGATED if cname == "jax-tpu" and workload.config.mode == "disaggregated" else set()
            )
            assert wanted <= set(flags(container)), f"{cname}: missing {wanted - set(flags(container))}"
