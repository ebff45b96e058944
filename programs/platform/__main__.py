"""The platform program: network, cluster, node pools, compute classes, buckets, IAM, the serving namespaces and
the APIs every serving stack relies on; it exports the contract the serving stack reads (infra/contract.py)."""

import pulumi

from infra.config import program_config
from infra.platform.composition import build

for key, value in build(program_config()).items():
    pulumi.export(key, value)
