"""GKE cluster and node security (CIS GKE Benchmark, GKE hardening guide): controls C01-C17, C20."""

from __future__ import annotations

import re
from collections.abc import Iterator

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, Severity

from policies.base import EXCEPTION_METADATA, Config, Meta, get, is_unknown, items, metadata_reason, resource_policy, string_list
from policies.inventory import CLUSTER, NODE_POOL, Pool, pool_name

SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"
CRYPTO_KEY = "gcp:kms/cryptoKey:CryptoKey"
BUCKET = "gcp:storage/bucket:Bucket"
REGION = re.compile(r"^[a-z]+-[a-z]+\d+$")
DEFAULT_COMPUTE_SA = re.compile(r"-compute@developer\.gserviceaccount\.com$")
WORKLOAD_IDENTITY = "inf-gke-workload-identity"


def _private_nodes(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    if get(args.props, "privateClusterConfig.enablePrivateNodes") is not True:
        yield "privateClusterConfig.enablePrivateNodes is not true: nodes would get public IP addresses"


def _control_plane(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    if get(args.props, "privateClusterConfig.enablePrivateEndpoint") is True:
        return
    if get(args.props, "controlPlaneEndpointsConfig.ipEndpointsConfig.enabled") is False:
        return  # no IP endpoint at all: only the IAM-authorised DNS-based endpoint
    if get(args.props, "masterAuthorizedNetworksConfig") is None:
        yield "masterAuthorizedNetworksConfig is not set: the public control-plane endpoint accepts every address"
        return
    # An empty cidrBlocks list admits no external network at all: the strictest setting.
    for cidr in [b.get("cidrBlock") for b in items(get(args.props, "masterAuthorizedNetworksConfig.cidrBlocks"))]:
        if cidr in ("0.0.0.0/0", "::/0"):
            yield f"masterAuthorizedNetworksConfig allows {cidr}"
    if get(args.props, "masterAuthorizedNetworksConfig.gcpPublicCidrsAccessEnabled") is True:
        yield "masterAuthorizedNetworksConfig.gcpPublicCidrsAccessEnabled is true: any Google Cloud IP can reach the control plane"


def _shielded(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    if args.resource_type == CLUSTER:
        if get(args.props, "enableShieldedNodes") is False:
            yield "enableShieldedNodes is false"
        if get(args.props, "clusterAutoscaling.enabled") is True:  # node auto-provisioning creates pools of its own
            nap = "clusterAutoscaling.autoProvisioningDefaults.shieldedInstanceConfig"
            if get(args.props, f"{nap}.enableSecureBoot") is not True:
                yield f"{nap}.enableSecureBoot is not true (auto-provisioned nodes boot unverified)"
            if get(args.props, f"{nap}.enableIntegrityMonitoring") is False:
                yield f"{nap}.enableIntegrityMonitoring is false"
        return
    if get(args.props, "nodeConfig.shieldedInstanceConfig.enableSecureBoot") is not True:
        yield "nodeConfig.shieldedInstanceConfig.enableSecureBoot is not true"
    if get(args.props, "nodeConfig.shieldedInstanceConfig.enableIntegrityMonitoring") is False:
        yield "nodeConfig.shieldedInstanceConfig.enableIntegrityMonitoring is false"


def _workload_identity(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    if args.resource_type == CLUSTER:
        pool, project = get(args.props, "workloadIdentityConfig.workloadPool"), get(args.props, "project")
        if not pool:
            yield "workloadIdentityConfig.workloadPool is not set: Workload Identity is off"
        elif isinstance(project, str) and isinstance(pool, str) and pool != f"{project}.svc.id.goog":
            yield f"workloadIdentityConfig.workloadPool is {pool}; expected {project}.svc.id.goog"
        return
    mode = get(args.props, "nodeConfig.workloadMetadataConfig.mode")
    if mode == "GKE_METADATA":
        return
    found = f"nodeConfig.workloadMetadataConfig.mode is {mode or 'unset'}; expected GKE_METADATA (pods could read the node's credentials)"
    key = EXCEPTION_METADATA.format(policy=WORKLOAD_IDENTITY)
    reason = metadata_reason(args.props, WORKLOAD_IDENTITY)
    if not reason:
        yield found
    elif mode != "GCE_METADATA" or Pool(pool_name(args.name, args.props), args.props).tpu is None:
        # The one exception: TPU pools serving Pathways with JetStream and MaxText, which GKE's tutorial runs on the
        # GCE metadata server (infra.serving.composition.PATHWAYS_NODE_IDENTITY_REASON); any other pool still needs the GKE one.
        yield f"{found}; nodeConfig.metadata.{key} names an exception, which only a TPU pool on GCE_METADATA may take"


def _no_legacy_auth(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    if get(args.props, "enableLegacyAbac") is True:
        yield "enableLegacyAbac is true: legacy ABAC bypasses RBAC"
    if get(args.props, "masterAuth.clientCertificateConfig.issueClientCertificate") is True:
        yield "masterAuth.clientCertificateConfig.issueClientCertificate is true: long-lived client certificates"


def _dataplane_v2(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    if get(args.props, "datapathProvider") != "ADVANCED_DATAPATH" and get(args.props, "networkPolicy.enabled") is not True:
        yield "neither datapathProvider ADVANCED_DATAPATH nor networkPolicy.enabled: NetworkPolicies are not enforced"


def _release_channel(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    channel = get(args.props, "releaseChannel.channel") or "UNSPECIFIED"
    allowed = list(cfg["allowedChannels"])
    if channel not in allowed:
        yield f"releaseChannel.channel is {channel}; expected one of {', '.join(allowed)}"
    if not get(args.props, "maintenancePolicy"):
        yield "maintenancePolicy is not set: upgrades may run at any time"


def _auto_upgrade_repair(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    for key in ("autoRepair", "autoUpgrade"):
        if get(args.props, f"management.{key}") is False:
            yield f"management.{key} is false"


def _secrets_kms(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    state, key = get(args.props, "databaseEncryption.state"), get(args.props, "databaseEncryption.keyName")
    if state != "ENCRYPTED":
        yield f"databaseEncryption.state is {state or 'unset'}; expected ENCRYPTED with a Cloud KMS key"
        return
    location, key_location = get(args.props, "location"), None
    if isinstance(key, str):
        match = re.search(r"/locations/([^/]+)/", key)
        key_location = match.group(1) if match else None
    if not isinstance(location, str) or not key_location:
        return
    # Cloud KMS has no zonal locations: a zonal cluster's key lives in its zone's region.
    region = location if REGION.match(location) else location.rsplit("-", 1)[0]
    if key_location != region:
        yield f"databaseEncryption.keyName is in {key_location}; the cluster is in {region}"


def _binary_authorization(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    mode = get(args.props, "binaryAuthorization.evaluationMode")
    if mode != "PROJECT_SINGLETON_POLICY_ENFORCE":
        yield f"binaryAuthorization.evaluationMode is {mode or 'unset'}; expected PROJECT_SINGLETON_POLICY_ENFORCE"


def _node_sa(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    sa = get(args.props, "nodeConfig.serviceAccount")
    if is_unknown(sa):
        return  # computed from a service account of this stack, so not the Compute default
    if not sa or sa == "default":
        yield "nodeConfig.serviceAccount is not set: nodes run as the Compute Engine default service account"
    elif DEFAULT_COMPUTE_SA.search(str(sa)):
        yield f"nodeConfig.serviceAccount is the Compute Engine default service account {sa}"


def _cos(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    image = get(args.props, "nodeConfig.imageType")
    if isinstance(image, str) and image.upper() != "COS_CONTAINERD":
        yield f"nodeConfig.imageType is {image}; expected COS_CONTAINERD"


def _vpc_native(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    if get(args.props, "networkingMode") != "VPC_NATIVE" or not get(args.props, "ipAllocationPolicy"):
        yield "networkingMode is not VPC_NATIVE with an ipAllocationPolicy: routes-based clusters cannot use the Gateway API"


def _regional(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    location = get(args.props, "location")
    if isinstance(location, str) and not REGION.match(location):
        yield f"location {location} is a zone: a zonal control plane is a single point of failure"


def _deletion_protected(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    if get(args.props, "deletionProtection") is False:
        yield "deletionProtection is false"
    if not args.opts.protect:
        yield "the Pulumi protect option is off: a replacing change would delete the cluster and every workload on it"


def _stateful_protected(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    if args.resource_type == NODE_POOL and not Pool(pool_name(args.name, args.props), args.props).is_accelerator:
        return  # CPU pools are cattle: GKE recreates their nodes anyway
    if args.resource_type == SUBNETWORK and get(args.props, "purpose") != "REGIONAL_MANAGED_PROXY":
        return
    if not args.opts.protect:
        kind = args.resource_type.rsplit(":", 1)[-1]
        yield f"{kind} without the Pulumi protect option: a replacing change or a destroy would delete it"


def _security_posture(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    if get(args.props, "securityPostureConfig.mode") in (None, "DISABLED"):
        yield "securityPostureConfig.mode is not set"
    if get(args.props, "securityPostureConfig.vulnerabilityMode") in (None, "VULNERABILITY_DISABLED"):
        yield "securityPostureConfig.vulnerabilityMode is not set: workload images are not scanned"
    if get(args.props, "enableIntranodeVisibility") is not True:
        yield "enableIntranodeVisibility is not true: pod-to-pod traffic on a node is invisible to flow logs"


def _logging_monitoring(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    if get(args.props, "loggingService") == "none" or get(args.props, "monitoringService") == "none":
        yield "loggingService or monitoringService is none"
    logged = set(items(get(args.props, "loggingConfig.enableComponents")))
    missing = [c for c in ("SYSTEM_COMPONENTS", "WORKLOADS") if c not in logged]
    if get(args.props, "loggingConfig") is not None and missing:
        yield f"loggingConfig.enableComponents lacks {', '.join(missing)}"


RELEASE_CHANNELS = string_list(
    "Release channels this environment accepts.", ["REGULAR", "STABLE"], enum=["RAPID", "REGULAR", "STABLE"]
)

POLICIES = [
    resource_policy(
        Meta(
            "inf-gke-private-nodes",
            "GKE nodes have no public IP addresses (private nodes).",
            Severity.HIGH,
            "Set private_cluster_config.enable_private_nodes=True; private nodes reach the internet through Cloud NAT.",
            cis="5.6.5",
        ),
        [CLUSTER],
        _private_nodes,
    ),
    resource_policy(
        Meta(
            "inf-gke-control-plane-restricted",
            "The control-plane endpoint accepts only listed networks, never 0.0.0.0/0.",
            Severity.HIGH,
            "List the networks that may reach the API server in cluster.authorized_networks, or use a private endpoint.",
            cis="5.6.3",
        ),
        [CLUSTER],
        _control_plane,
    ),
    resource_policy(
        Meta(
            "inf-gke-shielded-nodes",
            "Clusters use Shielded GKE nodes; every pool, and every pool node auto-provisioning creates, has Secure Boot "
            "and integrity monitoring.",
            Severity.HIGH,
            "Keep enable_shielded_nodes, the pool's shielded_instance_config and node auto-provisioning's defaults "
            "(secure boot, integrity monitoring) on; components.cluster.secure_node_config and Cluster._autoscaling set them.",
            cis="5.5.5",
        ),
        [CLUSTER, NODE_POOL],
        _shielded,
    ),
    resource_policy(
        Meta(
            WORKLOAD_IDENTITY,
            "Workload Identity is on for the cluster (<project>.svc.id.goog) and every pool uses the GKE metadata server, "
            "but a TPU pool that names its exception with a reason (the pools serving Pathways).",
            Severity.HIGH,
            "Set workload_identity_config.workload_pool to '<project>.svc.id.goog' and the pool's "
            "workload_metadata_config.mode to GKE_METADATA. Exception: a TPU pool serving Pathways runs on GCE_METADATA as "
            f"a node account of its own and says why in node_config.metadata['{EXCEPTION_METADATA.format(policy=WORKLOAD_IDENTITY)}'].",
            cis="5.2.2",
        ),
        [CLUSTER, NODE_POOL],
        _workload_identity,
    ),
    resource_policy(
        Meta(
            "inf-gke-no-legacy-auth",
            "No legacy ABAC and no client certificates: RBAC and short-lived credentials only.",
            Severity.CRITICAL,
            "Set enable_legacy_abac=False and master_auth.client_certificate_config.issue_client_certificate=False.",
            cis="5.8.4",
        ),
        [CLUSTER],
        _no_legacy_auth,
    ),
    resource_policy(
        Meta(
            "inf-gke-dataplane-v2",
            "NetworkPolicies are enforced (Dataplane V2).",
            Severity.MEDIUM,
            "Set datapath_provider='ADVANCED_DATAPATH' (at creation; it cannot be changed later).",
            cis="5.6.7",
        ),
        [CLUSTER],
        _dataplane_v2,
    ),
    resource_policy(
        Meta(
            "inf-gke-release-channel",
            "The cluster is on an allowed release channel and has a maintenance window.",
            Severity.HIGH,
            "Set cluster.release_channel to REGULAR or STABLE and keep cluster.maintenance_window.",
            cis="5.5.4",
            params={"allowedChannels": RELEASE_CHANNELS},
        ),
        [CLUSTER],
        _release_channel,
    ),
    resource_policy(
        Meta(
            "inf-gke-node-auto-upgrade-repair",
            "Node pools repair and upgrade themselves.",
            Severity.HIGH,
            "Set management.auto_repair and auto_upgrade to True; pause upgrades with a maintenance exclusion instead.",
            cis="5.5.3",
        ),
        [NODE_POOL],
        _auto_upgrade_repair,
    ),
    resource_policy(
        Meta(
            "inf-gke-secrets-kms",
            "Kubernetes secrets are encrypted in etcd with a Cloud KMS key in the cluster's region.",
            Severity.HIGH,
            "Set cluster.secrets_encryption_key to a key in the cluster's region "
            "(projects/P/locations/REGION/keyRings/R/cryptoKeys/K).",
            cis="5.3.1",
        ),
        [CLUSTER],
        _secrets_kms,
    ),
    resource_policy(
        Meta(
            "inf-gke-binary-authorization",
            "Binary Authorization enforces the project policy: only trusted images run.",
            Severity.MEDIUM,
            "Set binary_authorization.evaluation_mode='PROJECT_SINGLETON_POLICY_ENFORCE'.",
            cis="5.10.5",
        ),
        [CLUSTER],
        _binary_authorization,
    ),
    resource_policy(
        Meta(
            "inf-gke-node-sa-not-default",
            "Node pools run as a dedicated service account, not the Compute Engine default one.",
            Severity.HIGH,
            "Create a node service account with only the roles GKE nodes need (components.cluster does) and set it "
            "as node_config.service_account.",
            cis="5.2.1",
        ),
        [NODE_POOL],
        _node_sa,
    ),
    resource_policy(
        Meta(
            "inf-gke-cos-containerd",
            "Nodes run Container-Optimized OS with containerd.",
            Severity.MEDIUM,
            "Set node_config.image_type='COS_CONTAINERD' (or leave it unset: it is GKE's default).",
            cis="5.5.1",
        ),
        [NODE_POOL],
        _cos,
    ),
    resource_policy(
        Meta(
            "inf-gke-vpc-native",
            "The cluster is VPC-native (alias IPs), as the Gateway API and Inference Gateway require.",
            Severity.MEDIUM,
            "Set networking_mode='VPC_NATIVE' with an ip_allocation_policy naming the pod and service ranges.",
            cis="5.6.2",
        ),
        [CLUSTER],
        _vpc_native,
    ),
    resource_policy(
        Meta(
            "inf-gke-regional",
            "The cluster is regional: its control plane survives a zone outage.",
            Severity.MEDIUM,
            "Set the cluster location to a region (gcp:region), not a zone.",
        ),
        [CLUSTER],
        _regional,
    ),
    resource_policy(
        Meta(
            "inf-gke-deletion-protected",
            "The cluster has GKE deletion protection and the Pulumi protect option.",
            Severity.HIGH,
            "Keep protection.deletion_protection and protection.protect on (the prod default); to destroy on "
            "purpose, turn them off in a reviewed change first.",
        ),
        [CLUSTER],
        _deletion_protected,
    ),
    resource_policy(
        Meta(
            "inf-stateful-protected",
            "Stateful and expensive resources (cluster, accelerator pools, buckets, proxy-only subnet, KMS keys) are protected.",
            Severity.HIGH,
            "Keep protection.protect on in this environment; components pass it as the protect resource option.",
        ),
        [CLUSTER, NODE_POOL, BUCKET, SUBNETWORK, CRYPTO_KEY],
        _stateful_protected,
    ),
    resource_policy(
        Meta(
            "inf-gke-security-posture",
            "Security posture and workload vulnerability scanning are on, with intranode visibility.",
            Severity.LOW,
            "Set security_posture_config (mode BASIC, vulnerability_mode VULNERABILITY_BASIC) and "
            "enable_intranode_visibility=True.",
            enforcement=EnforcementLevel.ADVISORY,
        ),
        [CLUSTER],
        _security_posture,
    ),
    resource_policy(
        Meta(
            "inf-gke-logging-monitoring",
            "Cloud Logging and Monitoring are on, with system and workload logs.",
            Severity.MEDIUM,
            "Keep logging_config.enable_components with SYSTEM_COMPONENTS and WORKLOADS; never set the services to 'none'.",
            cis="5.7.1",
        ),
        [CLUSTER],
        _logging_monitoring,
    ),
]
