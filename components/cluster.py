"""Regional, private GKE Standard cluster for inference, with a least-privilege system node pool."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_gcp as gcp
import yaml


@dataclass(frozen=True)
class AcceleratorLimit:
    """Node auto-provisioning ceiling for one accelerator type, derived from the pools."""

    resource_type: str
    maximum: int


@dataclass(frozen=True)
class AuthorizedNetwork:
    """A CIDR allowed to reach the control plane."""

    cidr: str
    display_name: str


IpEndpoint = Literal["public", "private", "off"]


@dataclass(frozen=True)
class MaintenanceWindow:
    """Recurring window in which GKE may upgrade: RFC 3339 times and an RFC 5545 RRULE."""

    start_time: str
    end_time: str
    recurrence: str


SYSTEM_POOL_ZONES = 3
"""The system pool sets no node_locations: a regional node pool without them runs in three zones of the region."""


@dataclass(frozen=True)
class SystemPool:
    """The small CPU pool for cluster add-ons; accelerator pools are separate components."""

    machine_type: str
    min_nodes_per_zone: int
    max_nodes_per_zone: int


@dataclass(frozen=True)
class NodeAutoProvisioning:
    enabled: bool
    cpu_max: int
    memory_max_gb: int


@dataclass(frozen=True)
class ClusterArgs:
    project: str
    region: str
    prefix: str
    """Physical-name prefix: the cluster is named after it."""
    network: pulumi.Input[str]
    subnetwork: pulumi.Input[str]
    pods_range_name: str
    services_range_name: str
    master_cidr: str
    node_service_account: pulumi.Input[str]
    """Email of the dedicated node service account (components.identity.NodeIdentity)."""
    release_channel: str
    auto_upgrade: bool
    """Of the system pool; GKE rejects false on a release channel."""
    maintenance_window: MaintenanceWindow
    authorized_networks: tuple[AuthorizedNetwork, ...]
    ip_endpoint: IpEndpoint
    """The control plane's IP endpoint: public (authorized networks only), private (the VPC) or off. The DNS-based
    endpoint is on whatever this is: the Kubernetes provider and the kubeconfig use it."""
    gateway_api_channel: str
    http_load_balancing: bool
    secrets_encryption_key: str | None
    """Cloud KMS key for etcd secrets; None leaves them Google-encrypted."""
    system_pool: SystemPool
    node_auto_provisioning: NodeAutoProvisioning
    hpa_profile: str
    managed_prometheus: bool
    auto_monitoring: bool
    dcgm: bool
    """GKE-managed DCGM metrics; the composition sets it only when GPU pools exist."""
    protect: bool
    deletion_protection: bool
    accelerator_limits: tuple[AcceleratorLimit, ...] = field(default=())


class Cluster(pulumi.ComponentResource):
    """Private nodes, Workload Identity, Dataplane V2, shielded nodes, release channel + maintenance
    window, Gateway API, GCS FUSE / PD CSI, Managed Prometheus, image streaming, cost allocation,
    NAP with accelerator limits, HPA profile PERFORMANCE, optional KMS secrets encryption."""

    name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    """The DNS-based control-plane endpoint (gke-<id>.<region>.gke.goog), reachable from outside the VPC."""
    kubeconfig: pulumi.Output[str]
    workload_pool: str

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:cluster:Cluster", name, None, opts)
        self.workload_pool = f"{args.project}.svc.id.goog"

        depends: list[pulumi.Resource] = []
        if args.secrets_encryption_key:
            # The GKE service agent encrypts etcd secrets with the key; grant it before the cluster.
            number = gcp.organizations.get_project_output(
                project_id=args.project, opts=pulumi.InvokeOutputOptions(parent=self)
            ).number
            depends.append(
                gcp.kms.CryptoKeyIAMMember(
                    f"{name}-etcd-kms",
                    crypto_key_id=args.secrets_encryption_key,
                    role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
                    member=number.apply(lambda n: f"serviceAccount:service-{n}@container-engine-robot.iam.gserviceaccount.com"),
                    # The project's GKE service agent: every stack in the project holds this same grant, so destroying
                    # one must not revoke it for the others.
                    opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
                )
            )

        components = [
            "SYSTEM_COMPONENTS",
            "APISERVER",
            "SCHEDULER",
            "CONTROLLER_MANAGER",
            "STORAGE",
            "HPA",
            "POD",
            "DEPLOYMENT",
            "STATEFULSET",
        ]
        if args.dcgm:
            components.append("DCGM")

        cluster = gcp.container.Cluster(
            f"{name}-gke",
            name=args.prefix,
            project=args.project,
            location=args.region,
            network=args.network,
            subnetwork=args.subnetwork,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name=args.pods_range_name,
                services_secondary_range_name=args.services_range_name,
            ),
            remove_default_node_pool=True,
            initial_node_count=1,
            deletion_protection=args.deletion_protection,
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel=args.release_channel),
            maintenance_policy=gcp.container.ClusterMaintenancePolicyArgs(
                recurring_window=gcp.container.ClusterMaintenancePolicyRecurringWindowArgs(
                    start_time=args.maintenance_window.start_time,
                    end_time=args.maintenance_window.end_time,
                    recurrence=args.maintenance_window.recurrence,
                )
            ),
            private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=True,
                enable_private_endpoint=args.ip_endpoint != "public",
                master_ipv4_cidr_block=args.master_cidr,
            ),
            # The DNS-based endpoint admits any network and authorises each request with IAM
            # (container.clusters.connect) before Kubernetes RBAC: CI's hosted runners reach the cluster through it.
            control_plane_endpoints_config=gcp.container.ClusterControlPlaneEndpointsConfigArgs(
                dns_endpoint_config=gcp.container.ClusterControlPlaneEndpointsConfigDnsEndpointConfigArgs(
                    allow_external_traffic=True
                ),
                ip_endpoints_config=gcp.container.ClusterControlPlaneEndpointsConfigIpEndpointsConfigArgs(
                    enabled=args.ip_endpoint != "off"
                ),
            ),
            # No IP endpoint, no list of networks that may reach it (GKE refuses one).
            master_authorized_networks_config=None
            if args.ip_endpoint == "off"
            else gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
                cidr_blocks=[
                    gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                        cidr_block=n.cidr, display_name=n.display_name
                    )
                    for n in args.authorized_networks
                ],
                gcp_public_cidrs_access_enabled=False,
            ),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(workload_pool=self.workload_pool),
            datapath_provider="ADVANCED_DATAPATH",
            enable_shielded_nodes=True,
            enable_legacy_abac=False,
            enable_intranode_visibility=True,
            master_auth=gcp.container.ClusterMasterAuthArgs(
                client_certificate_config=gcp.container.ClusterMasterAuthClientCertificateConfigArgs(
                    issue_client_certificate=False
                )
            ),
            security_posture_config=gcp.container.ClusterSecurityPostureConfigArgs(
                mode="BASIC", vulnerability_mode="VULNERABILITY_BASIC"
            ),
            binary_authorization=gcp.container.ClusterBinaryAuthorizationArgs(evaluation_mode="PROJECT_SINGLETON_POLICY_ENFORCE"),
            gateway_api_config=gcp.container.ClusterGatewayApiConfigArgs(channel=args.gateway_api_channel),
            addons_config=gcp.container.ClusterAddonsConfigArgs(
                http_load_balancing=gcp.container.ClusterAddonsConfigHttpLoadBalancingArgs(disabled=not args.http_load_balancing),
                horizontal_pod_autoscaling=gcp.container.ClusterAddonsConfigHorizontalPodAutoscalingArgs(disabled=False),
                gcs_fuse_csi_driver_config=gcp.container.ClusterAddonsConfigGcsFuseCsiDriverConfigArgs(enabled=True),
                gce_persistent_disk_csi_driver_config=gcp.container.ClusterAddonsConfigGcePersistentDiskCsiDriverConfigArgs(
                    enabled=True
                ),
            ),
            monitoring_config=gcp.container.ClusterMonitoringConfigArgs(
                enable_components=components,
                managed_prometheus=gcp.container.ClusterMonitoringConfigManagedPrometheusArgs(
                    enabled=args.managed_prometheus,
                    auto_monitoring_config=gcp.container.ClusterMonitoringConfigManagedPrometheusAutoMonitoringConfigArgs(
                        scope="ALL" if args.auto_monitoring else "NONE"
                    ),
                ),
            ),
            logging_config=gcp.container.ClusterLoggingConfigArgs(enable_components=["SYSTEM_COMPONENTS", "WORKLOADS"]),
            node_pool_defaults=gcp.container.ClusterNodePoolDefaultsArgs(
                node_config_defaults=gcp.container.ClusterNodePoolDefaultsNodeConfigDefaultsArgs(
                    gcfs_config=gcp.container.ClusterNodePoolDefaultsNodeConfigDefaultsGcfsConfigArgs(enabled=True),
                    insecure_kubelet_readonly_port_enabled="FALSE",
                )
            ),
            cost_management_config=gcp.container.ClusterCostManagementConfigArgs(enabled=True),
            pod_autoscaling=gcp.container.ClusterPodAutoscalingArgs(hpa_profile=args.hpa_profile),
            cluster_autoscaling=self._autoscaling(args),
            database_encryption=gcp.container.ClusterDatabaseEncryptionArgs(
                state="ENCRYPTED" if args.secrets_encryption_key else "DECRYPTED",
                key_name=args.secrets_encryption_key,
            ),
            resource_labels={"app": "gke-inference", "env-prefix": args.prefix},
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=args.protect,
                # The default pool is removed right after creation; its node_config must not
                # trigger replacement of the whole cluster (pulumi/pulumi#8991).
                ignore_changes=["nodeConfig", "initialNodeCount"],
                depends_on=depends,
            ),
        )

        gcp.container.NodePool(
            f"{name}-system",
            name="system",
            project=args.project,
            location=args.region,
            cluster=cluster.name,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                min_node_count=args.system_pool.min_nodes_per_zone,
                max_node_count=args.system_pool.max_nodes_per_zone,
                location_policy="BALANCED",
            ),
            initial_node_count=max(args.system_pool.min_nodes_per_zone, 1),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=args.auto_upgrade),
            node_config=secure_node_config(args.node_service_account, machine_type=args.system_pool.machine_type),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["initialNodeCount"]),
        )

        self.name = cluster.name
        self.endpoint = cluster.control_plane_endpoints_config.apply(dns_endpoint)
        self.ca_certificate = cluster.master_auth.cluster_ca_certificate
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.name, self.endpoint).apply(lambda v: kubeconfig(str(v[0]), str(v[1])))
        )
        self.register_outputs({"name": self.name, "endpoint": self.endpoint})

    @staticmethod
    def _autoscaling(args: ClusterArgs) -> gcp.container.ClusterClusterAutoscalingArgs:
        nap = args.node_auto_provisioning
        limits = [
            gcp.container.ClusterClusterAutoscalingResourceLimitArgs(resource_type="cpu", minimum=0, maximum=nap.cpu_max),
            gcp.container.ClusterClusterAutoscalingResourceLimitArgs(
                resource_type="memory", minimum=0, maximum=nap.memory_max_gb
            ),
        ] + [
            gcp.container.ClusterClusterAutoscalingResourceLimitArgs(
                resource_type=limit.resource_type, minimum=0, maximum=limit.maximum
            )
            for limit in args.accelerator_limits
        ]
        return gcp.container.ClusterClusterAutoscalingArgs(
            enabled=nap.enabled,
            autoscaling_profile="OPTIMIZE_UTILIZATION",
            resource_limits=limits if nap.enabled else None,
            auto_provisioning_defaults=gcp.container.ClusterClusterAutoscalingAutoProvisioningDefaultsArgs(
                service_account=args.node_service_account,
                oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                management=gcp.container.ClusterClusterAutoscalingAutoProvisioningDefaultsManagementArgs(
                    auto_repair=True, auto_upgrade=True
                ),
                shielded_instance_config=gcp.container.ClusterClusterAutoscalingAutoProvisioningDefaultsShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True
                ),
            )
            if nap.enabled
            else None,
        )


NODE_METADATA = {"disable-legacy-endpoints": "true"}
"""Instance metadata every node carries: the v0.1/v1beta1 metadata endpoints are off."""


def secure_node_config(service_account: pulumi.Input[str], **overrides: object) -> gcp.container.NodePoolNodeConfigArgs:
    """Node settings every pool shares: dedicated SA, GKE metadata server, shielded VM, COS, gVNIC."""
    settings: dict[str, object] = dict(
        service_account=service_account,
        oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
        image_type="COS_CONTAINERD",
        workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(mode="GKE_METADATA"),
        shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
            enable_secure_boot=True, enable_integrity_monitoring=True
        ),
        gvnic=gcp.container.NodePoolNodeConfigGvnicArgs(enabled=True),
        metadata=dict(NODE_METADATA),
    )
    settings.update(overrides)
    return gcp.container.NodePoolNodeConfigArgs(**settings)  # type: ignore[arg-type]


def dns_endpoint(config: object) -> str:
    """The DNS-based endpoint of a cluster's control_plane_endpoints_config (an output object, or the dict the SDK
    hands back for an unresolved or invoked value)."""

    def part(value: object, name: str) -> object:
        return value.get(name) if isinstance(value, dict) else getattr(value, name, None)

    endpoint = part(part(config, "dns_endpoint_config"), "endpoint")
    if not endpoint:
        raise pulumi.RunError("the cluster reports no DNS-based control-plane endpoint (control_plane_endpoints_config)")
    return str(endpoint)


def kubeconfig(name: str, dns_endpoint: str) -> str:
    """Kubeconfig for the cluster's DNS-based endpoint, authenticating through gke-gcloud-auth-plugin (no static
    credentials). As `gcloud container clusters get-credentials --dns-endpoint` writes it: the server is
    https://<dns endpoint> and no certificate-authority-data, the endpoint serving a publicly trusted certificate."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": f"https://{dns_endpoint}"}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "users": [
                {
                    "name": name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "gke-gcloud-auth-plugin",
                            "provideClusterInfo": True,
                            "installHint": "Install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin",
                        }
                    },
                }
            ],
        },
        sort_keys=False,
    )
