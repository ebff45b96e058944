"""The physical names the stacks give GCP resources: every one is derived here, from the **stack** name.

`environment` (dev, staging, prod) only picks defaults (protection, TLS rules, policy config); it never names a
resource. So a stack `qa` copied from staging (environment staging) into staging's project creates `inference-qa`,
`inference-qa-vpc`, `<project>-qa-models`, ... beside `inference-staging`, ..., and never the same names.

- **Prefix** `<cluster.name>-<stack>` (`resource_prefix`): the GKE cluster's name, and the prefix of the network's
  children (`-vpc`, `-nodes`, `-proxy-only`, `-router`, `-nat`, `-allow-health-checks`, in components/network.py),
  the gateway's address (`-gateway`) and the node service accounts (`-nodes`, `-pathways`). At most
  `PREFIX_MAX` characters (GKE's limit on a cluster name, which also keeps every child under GCE's 63).
- **Node service accounts** `<prefix>-nodes` and `<prefix>-pathways` when they fit GCP's 30 characters; a longer
  prefix is cut and a short hash of the whole prefix kept before the suffix, so two stacks whose prefixes share
  their first characters still get distinct accounts.
- **Model bucket** `<project>-<stack>-models`, or `<project>-models` when the stack name is the project id's last
  dash-separated token (`acme-inference-dev` + stack `dev`: no `dev-dev`). The rule drops the stack name for at most
  one stack per project, so it stays unique per stack in a project: `qa` in that project gets
  `acme-inference-dev-qa-models`. (A stack named after an earlier token keeps it: dropping any token would give
  stacks `dev` and `inference` of `acme-inference-dev` one bucket.) `model_storage.bucket_name` overrides it.
  GCS names are global and at most 63 characters (55 with the Pathways scratch bucket): checked in
  infra/config/checks/names.py with these same functions.
- **Pathways scratch bucket** `<model bucket>-scratch`.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.config.model import StackConfig

STACK_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
"""A stack name that can name GCP resources: lowercase letters, digits and '-', a letter first, no trailing '-'."""
PREFIX_MAX = 40
"""GKE's limit on a cluster name; the prefix is the cluster's name."""
SERVICE_ACCOUNT_ID_MAX = 30
"""GCP's limit on a service account id (6-30 characters)."""
BUCKET_NAME_MAX = 63
"""GCS' limit on a bucket name without dots."""
NODES_ACCOUNT_SUFFIX = "nodes"
PATHWAYS_ACCOUNT_SUFFIX = "pathways"
MODELS_SUFFIX = "-models"
SCRATCH_SUFFIX = "-scratch"
GATEWAY_ADDRESS_SUFFIX = "-gateway"
HASH_LENGTH = 4


def resource_prefix(cluster_name: str, stack: str) -> str:
    """Physical-name prefix of every GCP resource of the stack, e.g. 'inference-prod'."""
    return f"{cluster_name}-{stack}"


def stack_prefix(cfg: StackConfig) -> str:
    """The prefix of a checked stack."""
    return resource_prefix(cfg.cluster.name, cfg.stack)


def _account_id(prefix: str, suffix: str) -> str:
    whole = f"{prefix}-{suffix}"
    if len(whole) <= SERVICE_ACCOUNT_ID_MAX:
        return whole
    digest = hashlib.sha256(prefix.encode()).hexdigest()[:HASH_LENGTH]
    keep = SERVICE_ACCOUNT_ID_MAX - len(suffix) - HASH_LENGTH - 2
    return f"{prefix[:keep].rstrip('-')}-{digest}-{suffix}"


def node_account_id(prefix: str) -> str:
    """The general node account: '<prefix>-nodes' (cut with a hash of the prefix when longer than 30)."""
    return _account_id(prefix, NODES_ACCOUNT_SUFFIX)


def pathways_account_id(prefix: str) -> str:
    """The Pathways pools' node account: '<prefix>-pathways' (cut with a hash of the prefix when longer than 30); the
    suffix always survives, so the two accounts of one stack never collapse into one id."""
    return _account_id(prefix, PATHWAYS_ACCOUNT_SUFFIX)


def gateway_address_name(prefix: str) -> str:
    """The regional address the Inference Gateway listens on."""
    return f"{prefix}{GATEWAY_ADDRESS_SUFFIX}"


def default_bucket_name(project: str, stack: str) -> str:
    """`<project>-models` when `stack` is the project id's last dash-separated token, else `<project>-<stack>-models`."""
    if project.rsplit("-", 1)[-1] == stack:
        return f"{project}{MODELS_SUFFIX}"
    return f"{project}-{stack}{MODELS_SUFFIX}"


def bucket_name(cfg: StackConfig) -> str:
    """The model bucket: `model_storage.bucket_name`, else the default."""
    return cfg.model_storage.bucket_name or default_bucket_name(cfg.project, cfg.stack)


def scratch_bucket_name(bucket: str) -> str:
    """The Pathways scratch bucket beside the model bucket `bucket`."""
    return f"{bucket}{SCRATCH_SUFFIX}"
