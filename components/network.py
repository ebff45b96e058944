"""VPC for one regional inference cluster: node subnet, proxy-only subnet, Cloud NAT, firewall."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

GOOGLE_HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
"""Source ranges of Google Cloud load-balancer health checks (regional L7 gateways probe pods)."""


@dataclass(frozen=True)
class NetworkArgs:
    project: str
    region: str
    prefix: str
    """Physical-name prefix, e.g. 'inference-prod'."""
    subnet_cidr: str
    pods_cidr: str
    services_cidr: str
    proxy_only_cidr: str | None
    """REGIONAL_MANAGED_PROXY range; None creates no proxy-only subnet (no regional L7 gateway)."""
    protect: bool = False
    """Protect the proxy-only subnet: every regional gateway of the VPC depends on it (policy inf-stateful-protected)."""


class Network(pulumi.ComponentResource):
    """A custom-mode VPC with Private Google Access, flow logs and NAT for private nodes.

    Outputs are the names the cluster needs: the VPC, the node subnet and its two secondary ranges.
    """

    network: pulumi.Output[str]
    subnetwork: pulumi.Output[str]
    pods_range_name: str
    services_range_name: str

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.pods_range_name = "pods"
        self.services_range_name = "services"

        vpc = gcp.compute.Network(
            f"{name}-vpc",
            name=f"{args.prefix}-vpc",
            project=args.project,
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            opts=child,
        )
        subnet = gcp.compute.Subnetwork(
            f"{name}-nodes",
            name=f"{args.prefix}-nodes",
            project=args.project,
            region=args.region,
            network=vpc.id,
            ip_cidr_range=args.subnet_cidr,
            private_ip_google_access=True,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(range_name=self.pods_range_name, ip_cidr_range=args.pods_cidr),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(range_name=self.services_range_name, ip_cidr_range=args.services_cidr),
            ],
            # CIS GCP 3.8: VPC flow logs on every subnet.
            log_config=gcp.compute.SubnetworkLogConfigArgs(
                aggregation_interval="INTERVAL_5_SEC", flow_sampling=0.5, metadata="INCLUDE_ALL_METADATA"
            ),
            opts=child,
        )
        if args.proxy_only_cidr is not None:
            # Regional Envoy load balancers (gke-l7-rilb, gke-l7-regional-external-managed) need one
            # ACTIVE proxy-only subnet per region and VPC; flow logs are not allowed on it.
            gcp.compute.Subnetwork(
                f"{name}-proxy-only",
                name=f"{args.prefix}-proxy-only",
                project=args.project,
                region=args.region,
                network=vpc.id,
                ip_cidr_range=args.proxy_only_cidr,
                purpose="REGIONAL_MANAGED_PROXY",
                role="ACTIVE",
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
            )
        router = gcp.compute.Router(
            f"{name}-router",
            name=f"{args.prefix}-router",
            project=args.project,
            region=args.region,
            network=vpc.id,
            opts=child,
        )
        gcp.compute.RouterNat(
            f"{name}-nat",
            name=f"{args.prefix}-nat",
            project=args.project,
            region=args.region,
            router=router.name,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
            subnetworks=[gcp.compute.RouterNatSubnetworkArgs(name=subnet.id, source_ip_ranges_to_nats=["ALL_IP_RANGES"])],
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            opts=child,
        )
        # Only load-balancer health checks may reach the nodes from outside the VPC; GKE adds the
        # rules it needs for the control plane itself.
        gcp.compute.Firewall(
            f"{name}-allow-health-checks",
            name=f"{args.prefix}-allow-health-checks",
            project=args.project,
            network=vpc.id,
            direction="INGRESS",
            source_ranges=list(GOOGLE_HEALTH_CHECK_RANGES),
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp")],
            log_config=gcp.compute.FirewallLogConfigArgs(metadata="INCLUDE_ALL_METADATA"),
            opts=child,
        )
        self.network = vpc.name
        self.subnetwork = subnet.name
        self.register_outputs({"network": self.network, "subnetwork": self.subnetwork})
