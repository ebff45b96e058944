"""Hyperdisk ML: the weights on a read-only volume many nodes attach, populated once from the bucket.

GKE's volume populator (`GCPDataSource`, datalayer.gke.io/v1) copies a bucket folder into the new
volume when the ReadOnlyMany claim is created; the workload's own read-only identity reads the bucket.
The disk is zonal: the loader allows this path only for pools in one zone.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.k8s_types import CamelModel

DATA_SOURCE_API = "datalayer.gke.io/v1"
THROUGHPUT = "2400Mi"
"""Provisioned throughput at creation, as GKE's Hyperdisk ML samples provision it (kubernetes-engine-samples)."""


class CloudStorageSource(CamelModel):
    service_account_name: str
    uri: str


class DataSourceSpec(CamelModel):
    cloud_storage: CloudStorageSource


@dataclass(frozen=True)
class HyperdiskWeightsArgs:
    namespace: str
    claim: str
    source_uri: str
    """gs://bucket/folder/ (a folder URI ends with '/')."""
    service_account: str
    zone: str
    size_gib: int


def claim_name(workload: str) -> str:
    """The ReadOnlyMany claim (and its GCPDataSource) of a workload's weights, in its namespace."""
    return f"{workload}-weights"


class HyperdiskWeights(pulumi.ComponentResource):
    """StorageClass (zonal, hyperdisk-ml), the GCPDataSource, and the ReadOnlyMany claim populated from it."""

    def __init__(self, name: str, args: HyperdiskWeightsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:storage:HyperdiskWeights", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        meta = k8s.meta.v1.ObjectMetaArgs(name=args.claim, namespace=args.namespace)
        storage_class = k8s.storage.v1.StorageClass(
            f"{name}-class",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"hyperdisk-ml-{args.claim}"),
            provisioner="pd.csi.storage.gke.io",
            parameters={"type": "hyperdisk-ml", "provisioned-throughput-on-create": THROUGHPUT},
            allow_volume_expansion=False,
            reclaim_policy="Delete",
            volume_binding_mode="Immediate",
            allowed_topologies=[
                k8s.core.v1.TopologySelectorTermArgs(
                    match_label_expressions=[
                        k8s.core.v1.TopologySelectorLabelRequirementArgs(key="topology.gke.io/zone", values=[args.zone])
                    ]
                )
            ],
            opts=child,
        )
        source = k8s.apiextensions.CustomResource(
            f"{name}-source",
            api_version=DATA_SOURCE_API,
            kind="GCPDataSource",
            metadata=meta,
            spec=DataSourceSpec(
                cloud_storage=CloudStorageSource(service_account_name=args.service_account, uri=args.source_uri)
            ).to_k8s(),
            opts=child,
        )
        k8s.core.v1.PersistentVolumeClaim(
            f"{name}-claim",
            metadata=meta,
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadOnlyMany"],
                storage_class_name=storage_class.metadata.name,
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": f"{args.size_gib}Gi"}),
                data_source_ref=k8s.core.v1.TypedObjectReferenceArgs(
                    api_group="datalayer.gke.io", kind="GCPDataSource", name=args.claim
                ),
            ),
            # The populator reads the source when the claim is created; the source must not go before the claim.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[source]),
        )
        self.register_outputs({})
