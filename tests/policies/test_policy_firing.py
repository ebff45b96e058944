"""Every policy of the pack fires on some input and on no compliant one (issue #21), as test_check_firing.py proves
for the config checks.

The compliant input is the captured prod platform plus the fixtures' serving layer (`serving_stack`); no policy fires
on it (test_policy_stack.test_compliant_stack_passes_every_policy_at_mandatory), nor, at mandatory, on the three shipped
stacks' plans (test_policy_plan.test_shipped_stacks_plan_with_zero_mandatory_violations). FIRING gives each policy one
small change to that input which makes the whole pack report that policy and no other. The resource policies' changes
are cases of test_policy_resources.CASES, whose exact messages they keep in a whole stack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from fixtures import (
    BUCKET_TYPE,
    CACHE_IN_ANOTHER_REGION,
    CLASS_SCALING_UP_ANYWAY,
    CLUSTER_TYPE,
    HPA_ON_ABSENT_TARGET,
    LWS_SUBGROUP_OF_TWO,
    MONITORING_UNDECLARED_PORT,
    NAMES,
    PDB_WITHOUT_DISRUPTION,
    PLATFORM_APIS,
    PROXY_ONLY_SUBNET,
    VLLM_ON_ABSENT_GPU,
    VLLM_ON_GCSFUSE,
    keyed,
    mutate,
    node_sa_editor,
    prod_platform,
    project_services,
    replaced,
    serving_stack,
    with_cluster,
)
from pulumi_policy import ResourceValidationPolicy
from test_policy_resources import CASES, bases

from infra.tooling.plan import Captured
from infra.tooling.policy_runner import Violation
from infra.tooling.policy_runner import run as run_pack
from policies.registry import POLICIES

Stack = list[Captured]
MANDATORY = {p.name: "mandatory" for p in POLICIES}
RESOURCE_POLICIES = {p.name for p in POLICIES if isinstance(p, ResourceValidationPolicy)}


@dataclass(frozen=True)
class Firing:
    """A bad input: the serving stack built from the platform with one thing broken, and what it is run with."""

    build: Callable[[Stack], Stack]
    about: str = ""
    """What every message of a stack policy names: the resource or setting at fault (a resource policy's violations
    are on the changed resource)."""
    messages: list[str] | None = None
    """The exact messages, where test_policy_resources.CASES gives them."""
    stack_config: Mapping[str, str] = field(default_factory=dict)


def case(base: str, path: str) -> Callable[[str], Firing]:
    """The case of test_policy_resources.CASES that breaks a policy on `base` at `path`, made in the serving stack.

    The cluster bases are the stack's own cluster (`public_cluster` made public); the others are fixtures, which
    `serving_stack` adapts (a pool gets the cluster's name and node service account), so the stack's copy is changed.
    """

    def firing(policy: str) -> Firing:
        value, expected = next((c[3], c[4]) for c in CASES if c[:3] == (policy, base, path) and c[4])

        def build(platform: Stack) -> Stack:
            stack = serving_stack(platform)
            type_, inputs = bases(cluster_of(platform))[base]
            if type_ == CLUSTER_TYPE:
                name = next(r.name for r in stack if r.type == type_)
            else:
                name = {**NAMES, "proxy_subnet": PROXY_ONLY_SUBNET}.get(base) or inputs["metadata"]["name"]
                (inputs,) = (r.inputs for r in stack if (r.type, r.name) == (type_, name))
            return replaced(stack, type_, name, mutate(inputs, path, value))

        return Firing(build, messages=expected)

    return firing


def cluster_of(stack: Stack) -> dict[str, Any]:
    return next(r.inputs for r in stack if r.type == CLUSTER_TYPE)


def overriding(**fixtures: Mapping[str, Any]) -> Callable[[Stack], Stack]:
    """The serving stack with these fixtures replaced (`serving_stack`'s keywords)."""
    return lambda platform: serving_stack(platform, **fixtures)


VLLM_CONTAINER = "spec.template.spec.containers.0"
WORKER = "spec.leaderWorkerTemplate.workerTemplate.spec"

# Each policy's bad input: a Firing, or the case of test_policy_resources.CASES that `case` finds for the policy.
TABLE: dict[str, Firing | Callable[[str], Firing]] = {
    # GKE security
    "inf-gke-private-nodes": case("cluster", "privateClusterConfig.enablePrivateNodes"),
    "inf-gke-control-plane-restricted": case("public_cluster", "masterAuthorizedNetworksConfig.cidrBlocks.0.cidrBlock"),
    "inf-gke-shielded-nodes": case("cluster", "enableShieldedNodes"),
    "inf-gke-workload-identity": case("tpu_pool", "nodeConfig.workloadMetadataConfig.mode"),
    "inf-gke-no-legacy-auth": case("cluster", "enableLegacyAbac"),
    "inf-gke-dataplane-v2": case("cluster", "datapathProvider"),
    "inf-gke-release-channel": case("cluster", "releaseChannel.channel"),
    "inf-gke-node-auto-upgrade-repair": case("gpu_pool", "management.autoRepair"),
    "inf-gke-secrets-kms": case("cluster", "databaseEncryption.state"),
    "inf-gke-binary-authorization": case("cluster", "binaryAuthorization.evaluationMode"),
    "inf-gke-node-sa-not-default": case("tpu_pool", "nodeConfig.serviceAccount"),
    "inf-gke-cos-containerd": case("tpu_pool", "nodeConfig.imageType"),
    "inf-gke-vpc-native": case("cluster", "ipAllocationPolicy"),
    "inf-gke-regional": case("cluster", "location"),
    "inf-gke-deletion-protected": case("cluster", "deletionProtection"),
    "inf-stateful-protected": Firing(
        lambda platform: replaced(serving_stack(platform), BUCKET_TYPE, NAMES["bucket"], protect=False)
    ),
    "inf-gke-security-posture": case("cluster", "enableIntranodeVisibility"),
    "inf-gke-logging-monitoring": case("cluster", "loggingConfig.enableComponents"),
    # Accelerator pools
    "inf-tpu-pool-shape": case("tpu_pool", "nodeCount"),
    "inf-gpu-pool-shape": case("gpu_pool", "nodeConfig.guestAccelerators.0.type"),
    # Storage
    "inf-gcs-ubla": case("bucket", "uniformBucketLevelAccess"),
    "inf-gcs-public-access-prevention": case("bucket", "publicAccessPrevention"),
    "inf-gcs-no-public-members": case("bucket_member", "member"),
    "inf-gcs-recoverability": case("bucket", "forceDestroy"),
    "inf-gcs-no-lock-outside-prod": case("bucket", "retentionPolicy"),
    "inf-gcs-cmek": case("bucket", "encryption"),
    # Kubernetes workloads
    "inf-k8s-no-privileged": case("lws", f"{WORKER}.hostNetwork"),
    "inf-k8s-capabilities": case("vllm", f"{VLLM_CONTAINER}.securityContext.capabilities.add"),
    "inf-k8s-nonroot-readonly": case("vllm", f"{VLLM_CONTAINER}.securityContext.runAsNonRoot"),
    "inf-k8s-image-pinned": case("vllm", f"{VLLM_CONTAINER}.image"),
    "inf-k8s-resources": case("vllm", f"{VLLM_CONTAINER}.resources.requests.cpu"),
    "inf-k8s-probes": case("vllm", f"{VLLM_CONTAINER}.readinessProbe"),
    "inf-k8s-sa-token": case("vllm", "spec.template.spec.automountServiceAccountToken"),
    "inf-k8s-namespace": case("service", "metadata.namespace"),
    "inf-k8s-service-type": case("service", "spec.type"),
    "inf-k8s-cr-spec-camelcase": case("compute_class", "spec.when_unsatisfiable"),
    "inf-k8s-no-secret-env-literals": case("vllm", f"{VLLM_CONTAINER}.env.0"),
    # Gateway and autoscaling
    "inf-proxy-subnet-shape": case("proxy_subnet", "logConfig"),
    "inf-k8s-hpa-bounds": case("hpa", "spec.minReplicas"),
    "inf-gateway-class": case("gateway", "spec.gatewayClassName"),
    "inf-inferencepool-endpoint-picker": case("inference_pool", "spec.endpointPickerRef"),
    # Stack consistency: the shared bad inputs of test_policy_stack, which checks their messages
    "inf-stack-workload-matches-pool": Firing(overriding(vllm=VLLM_ON_ABSENT_GPU), about="Deployment inference/gemma-9b"),
    "inf-stack-lws-size": Firing(overriding(lws=LWS_SUBGROUP_OF_TWO), about="LeaderWorkerSet inference/llama-405b"),
    "inf-stack-compute-class-capacity": Firing(
        overriding(compute_class=CLASS_SCALING_UP_ANYWAY), about="ComputeClass tpu-v6e-4x4"
    ),
    "inf-stack-anywhere-cache-placement": Firing(
        overriding(cache=CACHE_IN_ANOTHER_REGION), about="AnywhereCache models-us-east5-b"
    ),
    "inf-stack-inference-gateway-prereqs": Firing(
        lambda platform: [r for r in serving_stack(platform) if r.name != PROXY_ONLY_SUBNET], about="cluster cluster-gke"
    ),
    "inf-stack-gmp-podmonitoring": Firing(overriding(pod_monitoring=MONITORING_UNDECLARED_PORT), about="PodMonitoring gemma-9b"),
    "inf-stack-hpa-target": Firing(overriding(hpa=HPA_ON_ABSENT_TARGET), about="HPA gemma-9b"),
    "inf-stack-pdb-and-netpol": Firing(overriding(pdb=PDB_WITHOUT_DISRUPTION), about="PodDisruptionBudget serving"),
    "inf-stack-gcsfuse-addon": Firing(
        lambda platform: serving_stack(
            with_cluster(platform, addonsConfig__gcsFuseCsiDriverConfig__enabled=False), vllm=VLLM_ON_GCSFUSE
        ),
        about="cluster cluster-gke",
    ),
    "inf-stack-node-sa-roles": Firing(
        lambda platform: [*serving_stack(platform), node_sa_editor(platform)], about="binding cluster-nodes-editor"
    ),
    "inf-stack-cmek-bindings": Firing(lambda platform: keyed(serving_stack(platform)), about="Bucket models"),
    "inf-stack-required-apis": Firing(
        lambda platform: [*serving_stack(platform), *project_services(*PLATFORM_APIS)], about="no gcp:projects/service:Service"
    ),
    "inf-stack-cost-budget": Firing(
        serving_stack, about="(gke-inference:budget)", stack_config={"gke-inference:budget": '{"monthly_usd": 1}'}
    ),
}
FIRING = {policy: entry if isinstance(entry, Firing) else entry(policy) for policy, entry in TABLE.items()}


@pytest.fixture(scope="module")
def platform() -> Stack:
    return prod_platform()


@pytest.fixture(scope="module")
def compliant(platform: Stack) -> set[str]:
    """The policies that fire on the compliant stack (none: test_policy_stack checks it)."""
    return {v.policy for v in fired(serving_stack(platform))}


def fired(stack: Stack, stack_config: Mapping[str, str] | None = None) -> list[Violation]:
    return run_pack(stack, POLICIES, MANDATORY, stack_config)


def test_the_table_names_every_policy_of_the_pack() -> None:
    assert set(FIRING) == {p.name for p in POLICIES}


@pytest.mark.parametrize("policy", sorted(FIRING))
def test_the_policy_fires_alone_on_its_bad_input_and_not_on_the_compliant_one(
    platform: Stack, compliant: set[str], policy: str
) -> None:
    firing = FIRING[policy]
    good = serving_stack(platform)
    bad = firing.build(platform)
    found = fired(bad, firing.stack_config)
    assert {v.policy for v in found} == {policy}
    if firing.messages is not None:
        assert [v.message for v in found] == firing.messages
    if policy in RESOURCE_POLICIES:
        before = {r.urn: (r.inputs, r.options) for r in good}
        touched = {r.urn for r in bad if before.get(r.urn) != (r.inputs, r.options)}
        assert {v.urn for v in found} <= touched
    else:
        assert all(firing.about in v.message for v in found)
    assert policy not in compliant
