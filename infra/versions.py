"""Every pinned version in one place: Kubernetes API level, charts, CRDs, images.

Bumping a version is a one-line change here, reviewed in a pull request with its plan diff.
"""

KUBERNETES_MINOR = "1.34"
"""Kubernetes API level the rendered manifests are validated against (GKE REGULAR channel, 2026-11)."""
