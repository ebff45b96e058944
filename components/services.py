"""The Google APIs the stack needs, enabled as resources so a fresh project works on first `up`."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

BASE_SERVICES = (
    "compute.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "storage.googleapis.com",
    "artifactregistry.googleapis.com",
)


def required_services(*, tpus: bool, kms: bool, gateway: bool) -> tuple[str, ...]:
    """Base APIs plus those the configured features need."""
    extra = []
    if tpus:
        extra.append("tpu.googleapis.com")
    if kms:
        extra.append("cloudkms.googleapis.com")
    if gateway:
        extra += ["networkservices.googleapis.com", "certificatemanager.googleapis.com"]
    return tuple(sorted({*BASE_SERVICES, *extra}))


@dataclass(frozen=True)
class ProjectServicesArgs:
    project: str
    services: tuple[str, ...]


class ProjectServices(pulumi.ComponentResource):
    """Enables each API; never disables one on destroy (other workloads may use it)."""

    def __init__(self, name: str, args: ProjectServicesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gke-inference:project:Services", name, None, opts)
        self.enabled = [
            gcp.projects.Service(
                f"{name}-{service.split('.')[0]}",
                project=args.project,
                service=service,
                disable_on_destroy=False,
                disable_dependent_services=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for service in args.services
        ]
        self.register_outputs({})
