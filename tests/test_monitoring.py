"""Dashboards, alerts and load tests: every metric they read is one something rendered provides, thresholds follow the
config, each load test calls its own model's route, and bad input stops the plan with the key named."""

from __future__ import annotations

import json
import operator
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from click.testing import CliRunner
from conftest import BASE, STACKS, mutate
from gateway_helpers import EXTERNAL, SHIPPED, VARIANT, Items, objects, of_kind, pod_templates

from components.load_test import PREFIX_ROLES, account_name
from infra.catalog import Catalog
from infra.catalog.monitoring import PROMETHEUS
from infra.catalog.monitoring import load as load_monitoring
from infra.config import ConfigError, StackConfig, load_config
from infra.serving import load_tests
from infra.serving import monitoring as serving_monitoring
from infra.serving.common import hpa_target
from infra.simulate.run import start_s
from infra.tooling.cli import main

NS = "gke-inference"
DASHBOARD = "gcp:monitoring/dashboard:Dashboard"
ALERT = "gcp:monitoring/alertPolicy:AlertPolicy"
TERM = re.compile(r'(metric|resource)\.(type|label\."([^"]+)")=(?:"([^"]*)"|(\d+)|monitoring\.regex\.full_match\("[^"]*"\))')
GATEWAY_ON = [(f"{NS}:gateway", {"enabled": True})]


def filters(items: Items) -> list[str]:
    """Every time-series filter the dashboard's charts and the alert policies' conditions read."""
    out: list[str] = []
    for r in items:
        if r["type"] == DASHBOARD:
            for tile in json.loads(r["inputs"]["dashboardJson"])["mosaicLayout"]["tiles"]:
                for data in tile["widget"].get("xyChart", {}).get("dataSets", []):
                    out.append(data["timeSeriesQuery"]["timeSeriesFilter"]["filter"])
        if r["type"] == ALERT:
            for c in r["inputs"]["conditions"]:
                threshold = c["conditionThreshold"]
                out += [threshold["filter"], *([threshold["denominatorFilter"]] if "denominatorFilter" in threshold else [])]
    return out


def terms(flt: str) -> dict[str, str]:
    found = {}
    for scope, what, label, text, number in TERM.findall(flt):
        found[f"{scope}.type" if what == "type" else f"{scope}.{label}"] = text or number
    return found


def unprovided(cfg: StackConfig, items: Items) -> list[str]:
    """Filters whose metric nothing rendered provides: an engine metric must come from the PodMonitoring its `job`
    names (the workload's engine, or the endpoint picker's), in that namespace; any other from GKE or the load
    balancer (the catalog's platform list)."""
    mon = load_monitoring()
    monitors = {(m["metadata"]["namespace"], m["metadata"]["name"]) for m in of_kind(objects(items), "PodMonitoring")}
    pickers = {f"{n}-epp": w for n, w in cfg.workloads.items()}
    bad = []
    for flt in filters(items):
        t = terms(flt)
        metric, job = t["metric.type"], t.get("resource.job")
        if job is None:
            ok = metric in mon.platform_types()
        elif (t.get("resource.namespace"), job) not in monitors:
            ok = False
        elif job in cfg.workloads:
            ok = metric in mon.engine_types(cfg.workloads[job].config.engine)
        else:
            ok = job in pickers and metric in mon.picker.types()
        if not ok:
            bad.append(flt)
    return bad


@pytest.mark.parametrize("env", SHIPPED)
def test_every_chart_and_alert_reads_a_metric_something_rendered_provides(
    gateway_stacks: dict[str, tuple[StackConfig, Items]], env: str
) -> None:
    cfg, items = gateway_stacks[env]
    found = filters(items)
    assert len(found) > 20 and all(terms(f)["metric.type"] for f in found)
    assert any(terms(f)["metric.type"].startswith(PROMETHEUS) and "resource.job" in terms(f) for f in found)
    assert unprovided(cfg, items) == []


@pytest.mark.parametrize(
    ("real", "typo"),
    [
        ("vllm:time_to_first_token_seconds/histogram", "vllm:time_to_first_token/histogram"),
        ("llm_d_epp_average_queue_size/gauge", "inference_pool_average_queue_size/gauge"),
        ("kubernetes.io/container/restart_count", "kubernetes.io/container/restarts"),
    ],
)
def test_a_misspelt_metric_is_caught(gateway_stacks: dict[str, tuple[StackConfig, Items]], real: str, typo: str) -> None:
    cfg, items = gateway_stacks["staging"]
    mutated = json.loads(json.dumps(items).replace(real, typo))
    assert mutated != items
    assert unprovided(cfg, mutated) and all(typo in f for f in unprovided(cfg, mutated))


@pytest.mark.parametrize("env", SHIPPED)
def test_each_load_test_calls_its_models_route_and_writes_only_its_own_folder(
    gateway_stacks: dict[str, tuple[StackConfig, Items]], env: str
) -> None:
    cfg, items = gateway_stacks[env]
    objs = objects(items)
    tested = load_tests.tested(cfg)
    assert tested  # every shipped gateway routes a vLLM model
    routes = {r["spec"]["rules"][0]["backendRefs"][0]["name"]: r for r in of_kind(objs, "HTTPRoute")}
    for name, workload in tested.items():
        ns = workload.config.namespace
        config = yaml.safe_load(objs[("ConfigMap", ns, account_name(name))]["data"]["config.yml"])
        prefix = routes[name]["spec"]["rules"][0]["matches"][0]["path"]["value"]
        assert urlparse(config["server"]["base_url"]).path + "/" == prefix
        assert config["server"]["model_name"] == workload.model.name and prefix == f"/models/{workload.model.name}/"
        storage = config["storage"]["google_cloud_storage"]
        assert (storage["bucket_name"], storage["path"]) == (cfg.bucket_name, f"benchmarks/{name}/{{timestamp}}")
        cron = objs[("CronJob", ns, account_name(name))]
        assert cron["spec"]["suspend"] is True
        assert cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"] == account_name(name)
        grants = [
            r["inputs"]
            for r in items
            if r["type"] == "gcp:storage/bucketIAMMember:BucketIAMMember"
            and r["inputs"]["member"].endswith(f"/sa/{account_name(name)}")
        ]
        writes = {g["role"]: g["condition"]["expression"] for g in grants if g["role"] in PREFIX_ROLES}
        assert set(writes) == set(PREFIX_ROLES)
        assert all(e.endswith(f'/objects/benchmarks/{name}/")') for e in writes.values())


def test_the_rates_climb_to_the_hpa_design_load_within_what_the_pools_serve(
    gateway_stacks: dict[str, tuple[StackConfig, Items]], catalog: Catalog
) -> None:
    cfg, _ = gateway_stacks["prod"]
    for workload in load_tests.tested(cfg).values():
        plan = load_tests.load_plan(cfg.sections.monitoring.load_test, catalog, workload)
        assert plan.rates[-1] == plan.peak_rps == plan.design_rps <= plan.capacity_rps
        assert list(plan.rates) == sorted(plan.rates) and len(plan.rates) == cfg.sections.monitoring.load_test.stages


def alert_conditions(raw: dict[str, Any], catalog: Catalog) -> dict[str, list[tuple[str, float, int]]]:
    cfg = load_config(raw, stack="t")
    return {
        a.name: [(c.comparison, c.value, c.duration_s) for c in a.conditions]
        for a in serving_monitoring.alerts(cfg, catalog, load_monitoring())
    }


def test_alert_thresholds_follow_the_config(catalog: Catalog) -> None:
    raw = mutate(BASE, f"{NS}:gpu_pools.l4.max_nodes_per_zone", 3)
    raw = mutate(raw, f"{NS}:workloads.small.autoscaling", {"min_replicas": 1, "max_replicas": 2})
    before = alert_conditions(raw, catalog)
    after = alert_conditions(
        mutate(mutate(raw, f"{NS}:workloads.small.slo_ttft_s", 2.5), f"{NS}:workloads.small.autoscaling.max_replicas", 3),
        catalog,
    )
    assert before["small-ttft"][0][1] == 5.0 and after["small-ttft"][0][1] == 2.5
    assert before["small-saturated"][1][:2] == ("COMPARISON_GE", 2) and after["small-saturated"][1][:2] == ("COMPARISON_GE", 3)
    cfg = load_config(raw, stack="t")
    assert before["small-saturated"][0][1] == hpa_target(catalog, cfg.workloads["small"])
    # The saturation alert waits one replica start; the unschedulable one the pool's provisioning time.
    start = serving_monitoring.minutes(start_s(catalog, cfg.workloads["small"]))
    assert {d for _, _, d in before["small-saturated"]} == {start}
    assert before["l4-unschedulable"][0][2] == serving_monitoring.minutes(catalog.loading.provisioning["gpu"].seconds)
    assert "small-saturated" not in alert_conditions(BASE, catalog)  # no HPA, nothing to saturate
    assert "gateway-errors" not in before and "gateway-errors" in alert_conditions(mutate(raw, *GATEWAY_ON[0]), catalog)


BAD_INPUTS = [
    (
        "prod alerts without a channel",
        [(f"{NS}:environment", "prod"), (f"{NS}:monitoring.notification_channels", [])],
        f"{NS}:monitoring.notification_channels: prod's alert policies (2 servers) would notify no one; expected at "
        "least one projects/P/notificationChannels/ID, got []",
    ),
    (
        "a load test above what the pools serve",
        [*GATEWAY_ON, (f"{NS}:monitoring.load_test.peak_rps", {"small": 50})],
        f"{NS}:monitoring.load_test.peak_rps.small: monitoring.load_test.peak_rps of 50 requests/s exceeds what 1 replicas "
        "serve by the capacity model (",
    ),
    (
        "a peak for a workload without a load test",
        [*GATEWAY_ON, (f"{NS}:monitoring.load_test.peak_rps", {"big": 1})],
        f"{NS}:monitoring.load_test.peak_rps.big: no load test is rendered for this workload (a routed vLLM server, "
        "gateway without IAP); expected one of ['small'], got 'big'",
    ),
    (
        "a dashboard metric no engine exports",
        [(f"{NS}:monitoring.dashboard_metrics", ["vllm:gpu_cache_usage_perc"])],
        f"{NS}:monitoring.dashboard_metrics[0]: no served engine exports this metric; expected one of",
    ),
]


@pytest.mark.parametrize(("case", "changes", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_monitoring_input_is_refused_with_its_key(case: str, changes: list[tuple[str, Any]], message: str) -> None:
    raw = BASE
    for path, value in changes:
        raw = mutate(raw, path, value)
    with pytest.raises(ConfigError) as caught:
        load_config(raw, stack="t")
    [line] = str(caught.value).splitlines()
    assert line.startswith(message)


def test_each_refused_input_has_an_accepted_neighbour() -> None:
    """The same keys one step away pass: a channel in prod, the override, a metric the engine exports, a routed vLLM."""
    accepted = [
        [(f"{NS}:environment", "prod")],
        [*GATEWAY_ON, (f"{NS}:monitoring.load_test", {"peak_rps": {"small": 50}, "over_capacity": True})],
        [*GATEWAY_ON, (f"{NS}:monitoring.load_test.peak_rps", {"small": 0.1})],
        [(f"{NS}:monitoring.dashboard_metrics", ["vllm:prompt_tokens_total"])],
    ]
    for changes in accepted:
        raw = BASE
        for path, value in changes:
            raw = mutate(raw, path, value)
        load_config(raw, stack="t")


def test_a_refused_plan_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    raw = yaml.safe_load((STACKS / "Pulumi.prod.yaml").read_text())
    del raw["config"][f"{NS}:monitoring"]
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(main, ["plan", "--stack-file", str(stack_file), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"{NS}:monitoring.notification_channels" in result.output
    assert not (tmp_path / "out").exists()


# Every label a filter may name, per monitored resource type, as Cloud Monitoring's list of monitored resources
# documents them (https://cloud.google.com/monitoring/api/resources): a filter on a label the resource lacks matches
# no series, so its chart stays empty and its alert never fires. Managed Service for Prometheus writes every scraped
# series on prometheus_target (https://cloud.google.com/stackdriver/docs/managed-prometheus/query-cm).
RESOURCE_LABELS = {
    "prometheus_target": {"project_id", "location", "cluster", "namespace", "job", "instance"},
    "k8s_container": {"project_id", "location", "cluster_name", "namespace_name", "pod_name", "container_name"},
    **{
        lb: {
            "project_id", "network_name", "region", "forwarding_rule_name", "target_proxy_name", "url_map_name",
            "matched_url_path_rule", "backend_target_name", "backend_target_type", "backend_name", "backend_type",
            "backend_scope", "backend_scope_type",
        }
        for lb in ("internal_http_lb_rule", "http_external_regional_lb_rule")
    },
}  # fmt: skip
FILTER = re.compile(rf"{TERM.pattern}(?: {TERM.pattern})*")


@pytest.mark.parametrize("env", [*SHIPPED, EXTERNAL, VARIANT])
def test_every_filter_names_only_labels_its_resource_type_has(
    gateway_stacks: dict[str, tuple[StackConfig, Items]], env: str
) -> None:
    """Each filter is a conjunction of well-formed terms, on a documented resource type (the one Managed Prometheus
    writes a Prometheus metric on), naming only that type's resource labels."""
    _, items = gateway_stacks[env]
    types = set()
    for flt in filters(items):
        assert FILTER.fullmatch(flt), flt
        t = terms(flt)
        resource = t["resource.type"]
        types.add(resource)
        assert resource in RESOURCE_LABELS, flt
        assert (resource == "prometheus_target") == t["metric.type"].startswith(f"{PROMETHEUS}/"), flt
        assert {k.removeprefix("resource.") for k in t if k.startswith("resource.")} - {"type"} <= RESOURCE_LABELS[resource], flt
    assert {"prometheus_target", "k8s_container"} <= types and types & {"internal_http_lb_rule", "http_external_regional_lb_rule"}


def conditions(items: Items) -> list[dict[str, Any]]:
    return [c["conditionThreshold"] for r in items if r["type"] == ALERT for c in r["inputs"]["conditions"]]


@pytest.mark.parametrize("env", SHIPPED)
def test_the_saturation_alert_compares_what_the_hpa_does(gateway_stacks: dict[str, tuple[StackConfig, Items]], env: str) -> None:
    """An AverageValue HPA holds the mean of its metric over the workload's pods at its target: the alert on the
    same series must take that mean over all of them (not one pod's value) and compare it with the same target."""
    _, items = gateway_stacks[env]
    hpas = of_kind(objects(items), "HorizontalPodAutoscaler")
    assert hpas
    for hpa in hpas:
        [metric] = hpa["spec"]["metrics"]
        target = metric["pods"]["target"]
        metric_type = metric["pods"]["metric"]["name"].replace("|", "/")
        ns, name = hpa["metadata"]["namespace"], hpa["metadata"]["name"]
        [cond] = [
            c
            for c in conditions(items)
            if terms(c["filter"]) | {"resource.namespace": ns, "resource.job": name, "metric.type": metric_type}
            == terms(c["filter"])
        ]
        [agg] = cond["aggregations"]
        assert target["type"] == "AverageValue"
        assert (agg.get("crossSeriesReducer"), agg.get("groupByFields")) == ("REDUCE_MEAN", [])
        assert cond["thresholdValue"] == float(target["averageValue"])


@pytest.mark.parametrize("env", SHIPPED)
def test_one_unschedulable_pod_or_one_restart_fires_and_none_does_not(
    gateway_stacks: dict[str, tuple[StackConfig, Items]], env: str
) -> None:
    """kube_pod_status_unschedulable is 1 per unschedulable pod and the restart count's delta 1 per restart; both are
    summed over the workload's pods, so a sum of one must cross the threshold and a sum of zero must not."""
    _, items = gateway_stacks[env]
    compare = {"COMPARISON_GT": operator.gt, "COMPARISON_GE": operator.ge}
    counts = {f"{PROMETHEUS}/kube_pod_status_unschedulable/gauge", "kubernetes.io/container/restart_count"}
    counted = [c for c in conditions(items) if terms(c["filter"])["metric.type"] in counts]
    assert {terms(c["filter"])["metric.type"] for c in counted} == counts
    for c in counted:
        assert [a["crossSeriesReducer"] for a in c["aggregations"]] == ["REDUCE_SUM"]
        fires = compare[c["comparison"]]
        assert fires(1, c["thresholdValue"]) and not fires(0, c["thresholdValue"]), c["filter"]


@pytest.mark.parametrize("env", [*SHIPPED, EXTERNAL, VARIANT])
def test_a_rate_chart_is_labelled_per_second(gateway_stacks: dict[str, tuple[StackConfig, Items]], env: str) -> None:
    """ALIGN_RATE turns a counter into a per-second rate; a chart whose axis names a rate (`x/<time>`) must chart only
    rates and name the second (UCUM's `s`) as its time unit."""
    _, items = gateway_stacks[env]
    [dashboard] = [json.loads(r["inputs"]["dashboardJson"]) for r in items if r["type"] == DASHBOARD]
    rates = 0
    for tile in dashboard["mosaicLayout"]["tiles"]:
        chart = tile["widget"].get("xyChart")
        if chart and "/" in chart["yAxis"]["label"]:
            rates += 1
            aligners = {d["timeSeriesQuery"]["timeSeriesFilter"]["aggregation"]["perSeriesAligner"] for d in chart["dataSets"]}
            assert chart["yAxis"]["label"].rpartition("/")[2] == "s" and aligners == {"ALIGN_RATE"}, tile["widget"]["title"]
    assert rates >= 3  # the gateway's requests and 5xx, a token rate at least


def test_a_dashboard_metric_is_charted_for_the_engines_that_export_it(catalog: Catalog) -> None:
    """`dashboard_metrics` may name metrics of several engines: each workload charts those its own engine exports, as
    that engine stores them (a counter as a per-second rate), and skips the others."""
    mon = load_monitoring()
    extras = ["vllm:prompt_tokens_total", "jetstream_request_success_count_total"]
    cfg = load_config(mutate(BASE, f"{NS}:monitoring.dashboard_metrics", extras), stack="t")
    charted = {}
    for name, w in serving_monitoring.servers(cfg).items():
        section = serving_monitoring.workload_section(cfg, catalog, mon, w)
        for chart in section.charts:
            for extra in extras:
                if chart.title == f"{name}: {extra}":
                    [series] = chart.series
                    charted[name, extra] = series
    assert set(charted) == {
        (n, e)
        for n, w in cfg.workloads.items()
        for e in extras
        if any(t.split("/")[1] == e for t in mon.engine_types(w.config.engine))
    }
    assert len(charted) == 2 and {w for w, _ in charted} == {"big", "small"}
    for (name, _), series in charted.items():
        assert series.metric_type in mon.engine_types(cfg.workloads[name].config.engine)
        assert series.aligner == "ALIGN_RATE" and series.metric_type.endswith("/counter")


@pytest.mark.parametrize("env", SHIPPED)
def test_each_load_test_tokenizes_with_the_weights_its_server_loads(
    gateway_stacks: dict[str, tuple[StackConfig, Items]], env: str
) -> None:
    """inference-perf generates prompts to token lengths with its tokenizer: it must be the repository whose weights
    the server mounts (the README's layout, gs://<bucket>/hf/<Hugging Face id>/), or the lengths it reports are not
    the server's."""
    cfg, items = gateway_stacks[env]
    objs = objects(items)
    checked = 0
    for name, workload in load_tests.tested(cfg).items():
        ns = workload.config.namespace
        config = yaml.safe_load(objs[("ConfigMap", ns, account_name(name))]["data"]["config.yml"])
        mounted = {
            opt.removeprefix("only-dir=")
            for v in pod_templates(objs, ns)[name]["spec"]["volumes"]
            for opt in v.get("csi", {}).get("volumeAttributes", {}).get("mountOptions", "").split(",")
            if opt.startswith("only-dir=")
        }
        if mounted:  # GCS FUSE; a Hyperdisk ML claim holds the same folder's copy
            assert mounted == {f"hf/{config['tokenizer']['pretrained_model_name_or_path']}"}
            checked += 1
    assert checked


@pytest.mark.parametrize("max_context", [1024, 2048, 2049])
def test_the_longest_load_test_request_fills_the_context_and_no_more(catalog: Catalog, max_context: int) -> None:
    """vLLM refuses a request whose prompt and max_tokens exceed max_model_len (max_context), so the longest prompt and
    the longest answer together stay within it; where the context, not the mix's tail, bounds them, they reach it:
    the load test exercises the longest requests the server accepts."""
    raw = mutate(mutate(BASE, *GATEWAY_ON[0]), f"{NS}:workloads.small.max_context", max_context)
    cfg = load_config(raw, stack="t")
    workload = cfg.workloads["small"]
    plan = load_tests.load_plan(cfg.sections.monitoring.load_test, catalog, workload)
    data = load_tests.perf_config(cfg, workload, plan, "http://gateway").to_dict()["data"]
    longest = data["input_distribution"]["max"] + data["output_distribution"]["max"]
    assert max_context - 1 <= longest <= max_context
