"""Print the ForceNew fields of the Terraform resources the stack registers, for infra/catalog/replacements.yaml.

Run against a checkout of hashicorp/terraform-provider-google-beta at the release the pinned pulumi-gcp bridges
(pulumi/pulumi-gcp's `upstream` submodule): `python tools/force_new_fields.py CHECKOUT`. It reads each resource's Go
schema (nested blocks by brace depth) and prints, per file, the dotted paths marked `ForceNew: true`. A path whose
block is ForceNew replaces on any change inside it. Review the output before copying it: the scan is textual.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FILES = {
    "gcp:compute/address:Address": ["compute/resource_compute_address.go"],
    "gcp:compute/firewall:Firewall": ["compute/resource_compute_firewall.go"],
    "gcp:compute/network:Network": ["compute/resource_compute_network.go"],
    "gcp:compute/router:Router": ["compute/resource_compute_router.go"],
    "gcp:compute/routerNat:RouterNat": ["compute/resource_compute_router_nat.go"],
    "gcp:compute/subnetwork:Subnetwork": ["compute/resource_compute_subnetwork.go"],
    "gcp:container/cluster:Cluster": ["container/resource_container_cluster.go"],
    "gcp:container/nodePool:NodePool": ["container/resource_container_node_pool.go", "container/node_config.go"],
    "gcp:monitoring/alertPolicy:AlertPolicy": ["monitoring/resource_monitoring_alert_policy.go"],
    "gcp:monitoring/dashboard:Dashboard": ["monitoring/resource_monitoring_dashboard.go"],
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": ["kms/iam_kms_crypto_key.go", "../tpgiamresource/resource_iam_member.go"],
    "gcp:projects/iAMMember:IAMMember": ["resourcemanager/iam_project.go", "../tpgiamresource/resource_iam_member.go"],
    "gcp:projects/service:Service": ["resourcemanager/resource_google_project_service.go"],
    "gcp:serviceaccount/account:Account": ["resourcemanager/resource_google_service_account.go"],
    "gcp:storage/anywhereCache:AnywhereCache": ["storage/resource_storage_anywhere_cache.go"],
    "gcp:storage/bucket:Bucket": ["storage/resource_storage_bucket.go"],
    "gcp:storage/bucketIAMMember:BucketIAMMember": ["storage/iam_storage_bucket.go", "../tpgiamresource/resource_iam_member.go"],
    "gcp:storage/bucketObject:BucketObject": ["storage/resource_storage_bucket_object.go"],
}


def force_new(text: str) -> list[str]:
    """Dotted paths of the schema keys marked ForceNew, nesting followed by brace depth."""
    out: list[str] = []
    stack: list[tuple[str, int]] = []
    depth = 0
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("//"):
            continue
        opened = re.match(r'^"([a-z0-9_]+)":\s*\{', line)
        if opened:
            stack.append((opened[1], depth))
        if re.search(r"\bForceNew:\s*true", line) and stack:
            out.append(".".join(key for key, _ in stack))
        code = re.sub(r'"[^"]*"', '""', line)
        depth += code.count("{") - code.count("}")
        while stack and depth <= stack[-1][1]:
            stack.pop()
    return sorted(set(out))


def main(checkout: Path) -> None:
    services = checkout / "google-beta" / "services"
    for type_, files in FILES.items():
        print(type_)
        for name in files:
            prefix = "node_config." if name.endswith("node_config.go") else ""
            for path in force_new((services / name).read_text()):
                print(f"  {prefix}{path}    # {name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
