"""CI reaches the cluster (issue #18): the cluster's DNS-based control-plane endpoint is on and admits external traffic,
the IP endpoint is public, private or off per environment, the kubeconfig both programs' Kubernetes providers use talks
to the DNS endpoint through gke-gcloud-auth-plugin, and every CI job that runs Pulumi installs that plugin first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ENVIRONMENTS, REPO, STACKS, mutate
from google.protobuf import json_format

from components.cluster import dns_endpoint, kubeconfig
from infra import contract
from infra.config import ConfigError, load_config
from infra.config.schema import DEFAULT_IP_ENDPOINT
from infra.platform.composition import _existing_dns_endpoint
from infra.tooling.plan import CapturingMonitor, FakeCloud, StackFile, execute_both, fake_dns_endpoint

NS = "gke-inference"
CLUSTER = "gcp:container/cluster:Cluster"
K8S_PROVIDER = "pulumi:providers:kubernetes"
PLUGIN = "gke-gcloud-auth-plugin"


class ProviderInputsMonitor(CapturingMonitor):
    """Also keeps the Kubernetes providers' inputs unmasked (the plan masks the secret kubeconfig)."""

    def __init__(self, fake: FakeCloud) -> None:
        super().__init__(fake)
        self.providers: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == K8S_PROVIDER:
            self.providers[request.name] = json_format.MessageToDict(request.object)
        return response


def clear(value: Any) -> Any:
    """A wire secret {sig, value} as its value."""
    return value["value"] if isinstance(value, dict) and "value" in value else value


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[ProviderInputsMonitor, ProviderInputsMonitor]]:
    out = {}
    for env in ENVIRONMENTS:
        platform, serving = execute_both(StackFile.read(STACKS / f"Pulumi.{env}.yaml"), monitor=ProviderInputsMonitor)
        assert isinstance(platform, ProviderInputsMonitor) and isinstance(serving, ProviderInputsMonitor)
        out[env] = (platform, serving)
    return out


def cluster_inputs(monitor: CapturingMonitor) -> dict[str, Any]:
    (cluster,) = [r.as_json() for r in monitor.captured if r.type == CLUSTER]
    return cluster["inputs"]


# ------------------------------------------------------------------------------------------------ the cluster


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_cluster_enables_the_dns_endpoint_and_its_ip_endpoint_is_the_environments(
    env: str, runs: dict[str, tuple[ProviderInputsMonitor, ProviderInputsMonitor]]
) -> None:
    inputs = cluster_inputs(runs[env][0])
    assert inputs["controlPlaneEndpointsConfig"]["dnsEndpointConfig"] == {"allowExternalTraffic": True}
    ip = StackFile.read(STACKS / f"Pulumi.{env}.yaml").load().ip_endpoint
    assert ip == DEFAULT_IP_ENDPOINT[env]  # no shipped stack overrides it
    assert inputs["controlPlaneEndpointsConfig"]["ipEndpointsConfig"] == {"enabled": ip != "off"}
    assert inputs["privateClusterConfig"]["enablePrivateEndpoint"] is (ip != "public")
    assert inputs["masterAuthorizedNetworksConfig"]["gcpPublicCidrsAccessEnabled"] is False


def test_the_defaults_keep_the_ip_endpoint_public_only_in_dev() -> None:
    assert DEFAULT_IP_ENDPOINT == {"dev": "public", "staging": "private", "prod": "private"}


def test_ip_endpoint_off_turns_the_ip_endpoint_and_its_networks_off(tmp_path: Path) -> None:
    raw = yaml.safe_load((STACKS / "Pulumi.dev.yaml").read_text())["config"]
    raw = mutate(mutate(raw, f"{NS}:cluster.ip_endpoint", "off"), f"{NS}:cluster.authorized_networks", [])
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(yaml.safe_dump({"config": raw}))
    platform, _ = execute_both(StackFile.read(path), monitor=ProviderInputsMonitor)
    inputs = cluster_inputs(platform)
    assert inputs["controlPlaneEndpointsConfig"] == {
        "dnsEndpointConfig": {"allowExternalTraffic": True},
        "ipEndpointsConfig": {"enabled": False},
    }
    assert inputs["privateClusterConfig"]["enablePrivateEndpoint"] is True
    assert "masterAuthorizedNetworksConfig" not in inputs


def test_authorized_networks_with_no_ip_endpoint_are_refused() -> None:
    raw = yaml.safe_load((STACKS / "Pulumi.dev.yaml").read_text())["config"]
    with pytest.raises(ConfigError, match=r"cluster\.authorized_networks: the IP endpoint is off"):
        load_config(mutate(raw, f"{NS}:cluster.ip_endpoint", "off"), stack="dev")


# ------------------------------------------------------------------------------------------------ the kubeconfig


def test_the_kubeconfig_talks_to_the_dns_endpoint_through_the_auth_plugin() -> None:
    config = yaml.safe_load(kubeconfig("inference-dev", "gke-0123.us-east5.gke.goog"))
    ((cluster,),) = [config["clusters"]]
    assert cluster == {"name": "inference-dev", "cluster": {"server": "https://gke-0123.us-east5.gke.goog"}}
    ((user,),) = [config["users"]]
    assert user["user"]["exec"]["command"] == PLUGIN
    assert user["user"]["exec"]["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert config["current-context"] == "inference-dev"
    assert config["contexts"] == [{"name": "inference-dev", "context": {"cluster": "inference-dev", "user": "inference-dev"}}]


def test_the_dns_endpoint_is_read_from_objects_and_dicts_and_its_absence_refused() -> None:
    class Config:
        class dns_endpoint_config:
            endpoint = "gke-1.r.gke.goog"

    assert dns_endpoint(Config()) == "gke-1.r.gke.goog"
    assert dns_endpoint({"dns_endpoint_config": {"endpoint": "gke-2.r.gke.goog"}}) == "gke-2.r.gke.goog"
    with pytest.raises(Exception, match="no DNS-based control-plane endpoint"):
        dns_endpoint({"dns_endpoint_config": None})


def test_an_existing_cluster_needs_its_dns_endpoint_open_to_external_traffic() -> None:
    on = {"endpoint": "gke-3.r.gke.goog", "allow_external_traffic": True}
    assert _existing_dns_endpoint([{"dns_endpoint_configs": [on]}]) == "gke-3.r.gke.goog"
    for configs in ([], [{"dns_endpoint_configs": []}], [{"dns_endpoint_configs": [{**on, "allow_external_traffic": False}]}]):
        with pytest.raises(Exception, match="DNS-based control-plane endpoint is off or refuses external traffic"):
            _existing_dns_endpoint(configs)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_both_kubernetes_providers_use_the_platforms_kubeconfig_of_the_dns_endpoint(
    env: str, runs: dict[str, tuple[ProviderInputsMonitor, ProviderInputsMonitor]]
) -> None:
    platform, serving = runs[env]
    cfg = StackFile.read(STACKS / f"Pulumi.{env}.yaml").load()
    inputs = cluster_inputs(platform)
    expected = fake_dns_endpoint(cfg.project, cfg.region, inputs["name"])
    outputs = platform.stack_outputs
    assert outputs["contract_version"] == contract.VERSION == 2
    assert outputs["cluster_endpoint"] == expected
    assert yaml.safe_load(outputs["kubeconfig"])["clusters"][0]["cluster"] == {"server": f"https://{expected}"}
    for monitor in (platform, serving):
        assert clear(monitor.providers["k8s"]["kubeconfig"]) == outputs["kubeconfig"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_kubeconfig_names_the_cluster_it_talks_to(
    env: str, runs: dict[str, tuple[ProviderInputsMonitor, ProviderInputsMonitor]]
) -> None:
    """`kubectl config get-contexts` and the auth plugin's messages show which cluster a context is: the platform's."""
    platform, _ = runs[env]
    name = cluster_inputs(platform)["name"]
    config = yaml.safe_load(platform.stack_outputs["kubeconfig"])
    assert [c["name"] for c in config["clusters"]] == [c["context"]["cluster"] for c in config["contexts"]] == [name]
    assert config["current-context"] == name


def test_an_existing_cluster_exports_its_dns_endpoint(tmp_path: Path) -> None:
    raw = yaml.safe_load((STACKS / "Pulumi.dev.yaml").read_text())["config"]
    raw = mutate(raw, f"{NS}:cluster.existing", {"name": "shared", "location": "us-east5"})
    existing = {"network": "vpc", "subnetwork": "nodes", "pods_range_name": "pods", "services_range_name": "services"}
    raw = mutate(raw, f"{NS}:network.existing", existing)
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(yaml.safe_dump({"config": raw}))
    platform, serving = execute_both(StackFile.read(path), monitor=ProviderInputsMonitor)
    expected = fake_dns_endpoint(raw["gcp:project"], "us-east5", "shared")
    assert platform.stack_outputs["cluster_endpoint"] == expected
    assert yaml.safe_load(platform.stack_outputs["kubeconfig"])["clusters"][0]["cluster"]["server"] == f"https://{expected}"
    assert clear(serving.providers["k8s"]["kubeconfig"]) == platform.stack_outputs["kubeconfig"]


# ------------------------------------------------------------------------------------------------ CI


def pulumi_jobs() -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(workflow, job, steps) of every job with a pulumi/actions step."""
    out = []
    for path in sorted((REPO / ".github" / "workflows").glob("*.yml")):
        for name, job in (yaml.safe_load(path.read_text()).get("jobs") or {}).items():
            steps = job.get("steps") or []
            if any(str(s.get("uses", "")).startswith("pulumi/actions@") for s in steps):
                out.append((path.name, name, steps))
    return out


def installs_the_plugin(step: dict[str, Any]) -> bool:
    uses, with_ = str(step.get("uses", "")), step.get("with") or {}
    components = [c.strip() for c in str(with_.get("install_components", "")).split(",")]
    return (uses.startswith("google-github-actions/setup-gcloud@") and PLUGIN in components) or (
        "google-cloud-cli-gke-gcloud-auth-plugin" in str(step.get("run", ""))
    )


def test_the_jobs_running_pulumi_are_the_up_and_the_preview() -> None:
    assert {(w, j) for w, j, _ in pulumi_jobs()} == {("pulumi-up.yml", "up"), ("pull-request.yml", "preview")}


@pytest.mark.parametrize(("workflow", "job", "steps"), pulumi_jobs(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_job_running_pulumi_installs_the_auth_plugin_first(workflow: str, job: str, steps: list[dict[str, Any]]) -> None:
    first_pulumi = next(i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("pulumi/actions@"))
    plugin = [i for i, s in enumerate(steps) if installs_the_plugin(s)]
    assert plugin and plugin[0] < first_pulumi, f"{workflow} {job}: install {PLUGIN} before step {first_pulumi}"
    # gcloud (and so the plugin) authenticates as the identity google-github-actions/auth set up before it.
    auth = next(i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("google-github-actions/auth@"))
    assert auth < plugin[0]
