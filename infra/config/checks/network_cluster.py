"""Network ranges, cluster settings and Cloud KMS key ids."""

from __future__ import annotations

import ipaddress
import re

from infra.config.checks.context import CheckContext
from infra.config.errors import ns_path


def check_network(ctx: CheckContext) -> None:
    net = ctx.sections.network
    ranges: dict[str, ipaddress.IPv4Network] = {}
    for field in ("subnet_cidr", "pods_cidr", "services_cidr", "proxy_only_cidr", "master_cidr"):
        value = getattr(net, field)
        if value is None:
            continue
        try:
            ranges[field] = ipaddress.IPv4Network(value)
        except ValueError:
            ctx.add(ns_path("network", field), "not a network address", "a CIDR with no host bits set", value)
    if "master_cidr" in ranges and ranges["master_cidr"].prefixlen != 28:
        ctx.add(ns_path("network", "master_cidr"), "GKE needs a /28 control-plane range", "a /28", net.master_cidr)
    names = sorted(ranges)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if ranges[a].overlaps(ranges[b]):
                ctx.add(ns_path("network", b), f"overlaps network.{a} ({ranges[a]})", "disjoint ranges", str(ranges[b]))


def check_cluster(ctx: CheckContext) -> None:
    c = ctx.sections.cluster
    if c.existing and not ctx.sections.network.existing:
        ctx.add(ns_path("network", "existing"), "an existing cluster runs in an existing VPC", "network.existing naming it", None)
    if c.release_channel == "UNSPECIFIED":
        ctx.add(
            ns_path("cluster", "release_channel"),
            "new clusters must enrol in a release channel",
            "one of RAPID, REGULAR, STABLE",
            c.release_channel,
        )
    if not c.auto_upgrade:
        ctx.add(
            ns_path("cluster", "auto_upgrade"),
            f"GKE rejects auto_upgrade=false on release channel {c.release_channel}; use a maintenance exclusion",
            "true",
            False,
        )
    if c.ip_endpoint == "off" and c.authorized_networks:
        ctx.add(
            ns_path("cluster", "authorized_networks"),
            "the IP endpoint is off (cluster.ip_endpoint: off): there is no endpoint these networks would reach",
            "no authorized networks, or ip_endpoint public or private",
            [n.cidr for n in c.authorized_networks],
        )
    for i, n in enumerate(c.authorized_networks):
        if n.cidr.endswith("/0"):
            ctx.add(
                ns_path("cluster", "authorized_networks", i, "cidr"),
                "opens the control plane to the internet",
                "a specific CIDR",
                n.cidr,
            )
    if c.secrets_encryption_key:
        check_kms_key(ctx, ns_path("cluster", "secrets_encryption_key"), c.secrets_encryption_key, ctx.region)


def check_kms_key(ctx: CheckContext, path: str, key: str, location: str) -> None:
    match = re.fullmatch(r"projects/[^/]+/locations/([^/]+)/keyRings/[^/]+/cryptoKeys/[^/]+", key)
    if not match:
        ctx.add(path, "not a Cloud KMS key id", "projects/P/locations/L/keyRings/R/cryptoKeys/K", key)
    elif match.group(1).lower() != location.lower():
        ctx.add(
            path,
            f"key location {match.group(1)} differs from the resource location",
            f"a key in {location.lower()}",
            match.group(1),
        )
